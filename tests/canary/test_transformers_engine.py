"""`ptqv canary --engine transformers` on the real-tool fixtures, against their sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptq_validators.canary.run import CanaryRequest, run_canary
from tests.canary.conftest import broken_copy
from tests.conftest import FIXTURES, manifest

pytest.importorskip(
    "compressed_tensors", reason="transformers needs compressed-tensors to load these exports"
)

COMPRESSED = {e["name"]: e["source"] for e in manifest() if e.get("format_family") == "compressed-tensors"}
# transformers 5.23 + compressed-tensors 0.19 drop the experts' input_global_scale and load the
# NVFP4 MoE experts wrong (KL 0.055 against src-moe): the load report shows it, so the canary fails it.
TRANSFORMERS_MISLOADS = {"llmc-nvfp4-moe"}
# The packed embedding the config does not declare: transformers re-initialises it at random.
BROKEN = {"llmc-w4a16-embedq-llama"}
GOOD = sorted(set(COMPRESSED) - TRANSFORMERS_MISLOADS - BROKEN)

pytestmark = pytest.mark.engine


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The fixtures are tiny: on a shared, oversubscribed CPU one thread is ~40x faster than two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def canary(checkpoint: Path | str, source: str | None) -> dict:
    request = CanaryRequest("in-process", "transformers", str(checkpoint),
                            str(FIXTURES / source) if source else None)  # fmt: skip
    return run_canary(request).to_json()


def statuses(record: dict) -> dict[str, str]:
    return {check["id"]: check["status"] for check in record["checks"]}


@pytest.mark.parametrize("name", GOOD)
def test_compressed_tensors_exports_pass_against_their_source(name: str) -> None:
    record = canary(FIXTURES / name, COMPRESSED[name])
    assert record["verdict"] == "pass", record["checks"]
    metrics = record["metrics"]
    assert metrics["tokens_compared"] > 100 and metrics["mean_kl"] < 0.005
    assert record["engine"]["transformers_version"] and record["load_report"]["unexpected"] == []


def test_the_load_report_fails_a_packed_embedding() -> None:
    record = canary(FIXTURES / "llmc-w4a16-embedq-llama", "src-llama")
    assert record["verdict"] == "fail"
    start = next(c for c in record["checks"] if c["id"] == "start")
    assert start["status"] == "fail" and "MISSING model.embed_tokens.weight" in start["detail"]


def test_the_load_report_fails_the_nvfp4_moe_experts_transformers_misloads() -> None:
    record = canary(FIXTURES / "llmc-nvfp4-moe", "src-moe")
    assert record["verdict"] == "fail" and "UNEXPECTED" in record["start"]["message"]


@pytest.mark.parametrize("kind", ["nan", "huge"])
def test_a_broken_scale_fails(tmp_path: Path, kind: str) -> None:
    record = canary(broken_copy(tmp_path, "llmc-w4a16-llama", kind), "src-llama")
    assert record["verdict"] == "fail"
    json.dumps(record, allow_nan=False)  # the record of a NaN run is still strict JSON
    failed = {check for check, status in statuses(record).items() if status == "fail"}
    assert failed & {"logprobs_finite", "source_agreement"}, record["checks"]


def test_modelopt_exports_are_refused_with_the_engine_to_use(ptqv) -> None:
    result = ptqv("canary", FIXTURES / "modelopt-fp8-llama", "--engine", "transformers", "--json")
    assert result.code == 1
    start = result.json()["start"]
    assert start["status"] == "incompatible" and "--serve vllm" in start["message"]


def test_cli_writes_the_record(ptqv, tmp_path: Path) -> None:
    out = tmp_path / "canary.json"
    result = ptqv("canary", FIXTURES / "llmc-fp8dynamic-llama", "--engine", "transformers",
                  "--source", FIXTURES / "src-llama", "--out", out)  # fmt: skip
    assert result.code == 0, result.stdout
    assert (
        result.stdout.startswith("| Check | Result |") and "Agreement with the source | PASS" in result.stdout
    )
    assert '"kind": "ptqv-canary"' in out.read_text()
