"""Large checkpoints are read partly in forked children (the source, the export's scales):
same report, and a child's input errors still surface as one line with the fix (exit 3)."""

from __future__ import annotations

from ptq_validators import forked
from tests.ckpt_edit import copy_checkpoint
from tests.conftest import FIXTURES


def test_parallel_and_serial_reports_agree(ptqv, monkeypatch):
    args = (
        "gate",
        FIXTURES / "modelopt-nvfp4-moe",
        "--source",
        FIXTURES / "src-moe",
        "--qformat",
        "nvfp4",
        "--json",
    )
    serial = ptqv(*args)
    monkeypatch.setattr(forked, "PARALLEL_THRESHOLD_BYTES", 0)
    parallel = ptqv(*args)
    assert parallel.code == serial.code == 0
    assert parallel.json() == serial.json()


def test_worker_errors_keep_their_message_and_fix(ptqv, monkeypatch, tmp_path):
    source = copy_checkpoint(FIXTURES / "src-llama", tmp_path / "src")
    shard = source / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:-10])
    monkeypatch.setattr(forked, "PARALLEL_THRESHOLD_BYTES", 0)
    result = ptqv("gate", FIXTURES / "modelopt-fp8-llama", "--source", source)
    assert result.code == 3
    first, fix = result.stderr.splitlines()[:2]
    assert first.startswith(f"ptqv: error: {shard}: invalid safetensors header (MetadataIncompleteBuffer)")
    assert fix.startswith("ptqv: fix: ")
