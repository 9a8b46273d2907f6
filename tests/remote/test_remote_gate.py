"""`ptqv gate --cluster` and `ptqv scan --cluster` on real-tool fixtures uploaded to the loopback
sshd: the same verdict, checks and layer table as the local gate, from headers, documents and
scalar scales only. The bytes read are counted by the SFTP server itself (sftp-server logs
`close "PATH" bytes read N` at -l INFO), so the bound is checked against the far side's count."""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from ptq_validators.gate import GateOptions, run_gate
from ptq_validators.io.source import LocalSource
from ptq_validators.remote.config import load_cluster
from ptq_validators.remote.connect import connect
from ptq_validators.remote.paramiko_transport import ParamikoRunner
from tests.ckpt_edit import copy_checkpoint, shard
from tests.conftest import FIXTURES
from tests.remote.conftest import ptqv

pytestmark = pytest.mark.infra
CASES = [
    ("modelopt-nvfp4-llama", "src-llama", ["--qformat", "nvfp4"]),
    ("modelopt-fp8-llama", "src-llama", ["--qformat", "fp8"]),
    ("llmc-w4a16-llama", "src-llama", ["--scheme", "W4A16", "--ignore", "lm_head"]),
    ("modelopt-nvfp4-moe", "src-moe", ["--qformat", "nvfp4"]),
]


class CountingSource(LocalSource):
    """A local source that records what the gate asked for: header prefix reads, documents,
    and the other ranges (scalar scales)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.documents = 0
        self.ranges = 0

    def read_bytes(self, name: str) -> bytes:
        data = super().read_bytes(name)
        self.documents += len(data)
        return data

    def read_ranges(self, name: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        chunks = super().read_ranges(name, ranges)
        self.ranges += sum(len(c) for c in chunks)
        return chunks


def header_bytes(directory: Path) -> int:
    """Σ (8 + N) over the shards, from the files themselves."""
    total = 0
    for path in directory.glob("*.safetensors"):
        with open(path, "rb") as handle:
            total += 8 + struct.unpack("<Q", handle.read(8))[0]
    return total


@pytest.fixture
def remote_root(
    cluster_home: Path, ssh_infra: dict[str, str], tmp_path: Path
) -> Iterator[tuple[ParamikoRunner, PurePosixPath, Path]]:
    """The fixtures (and a 3-shard copy of one) uploaded to the loopback host."""
    local = tmp_path / "ckpts"
    for name in {n for case in CASES for n in case[:2]}:
        copy_checkpoint(FIXTURES / name, local / name)
    copy_checkpoint(FIXTURES / "modelopt-nvfp4-llama", local / "sharded")
    shard(local / "sharded", 3)
    runner = connect(load_cluster("loop"))
    assert isinstance(runner, ParamikoRunner)
    root = PurePosixPath(ssh_infra["PTQV_SSH_HOME"]) / "ckpts" / tmp_path.name
    for directory in local.iterdir():
        runner.mkdir(root / directory.name)
        for path in directory.iterdir():
            runner.write_bytes(root / directory.name / path.name, path.read_bytes())
    yield runner, root, local
    runner.run(["rm", "-rf", str(root)])
    runner.close()


def server_bytes_read(ssh_infra: dict[str, str], root: PurePosixPath, since: int, expect: int) -> int:
    """Bytes sftp-server says it read under ``root`` since log offset ``since``; waits up to 5 s
    for the count to reach ``expect`` (the server's log lines can trail the client's exit)."""
    log = Path(ssh_infra["PTQV_SSH_KEY"]).parents[1] / "logs" / "sftp-login.log"
    pattern = re.compile(r'close "' + re.escape(str(root)) + r'/[^"]*" bytes read (\d+)')
    deadline = time.monotonic() + 5
    while True:
        text = log.read_bytes()[since:].decode("utf-8", "replace")
        served = sum(int(m) for m in pattern.findall(text))
        if served >= expect or time.monotonic() > deadline:
            return served
        time.sleep(0.1)


def log_size(ssh_infra: dict[str, str]) -> int:
    return (Path(ssh_infra["PTQV_SSH_KEY"]).parents[1] / "logs" / "sftp-login.log").stat().st_size


def strip_paths(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("source", "output", "path", "transfer")}


@pytest.mark.parametrize(("export", "source", "args"), CASES)
def test_remote_gate_matches_local_and_reads_only_headers(
    remote_root: tuple[ParamikoRunner, PurePosixPath, Path],
    ssh_infra: dict[str, str],
    export: str,
    source: str,
    args: list[str],
) -> None:
    _, root, local = remote_root
    local_done = ptqv("gate", str(local / export), "--source", str(local / source), "--json", *args)
    start = log_size(ssh_infra)
    remote_done = ptqv(
        "gate", str(root / export), "--cluster", "loop", "--source", f"loop:{root / source}", "--json", *args
    )
    assert remote_done.returncode == local_done.returncode, (remote_done.stderr, local_done.stderr)
    local_report, remote_report = json.loads(local_done.stdout), json.loads(remote_done.stdout)
    assert strip_paths(remote_report) == strip_paths(local_report)
    assert remote_report["output"] == f"loop:{root / export}"

    # what the gate needs, measured on the local run
    options = GateOptions(
        qformat=args[1] if args[0] == "--qformat" else None,
        scheme=args[1] if args[0] == "--scheme" else None,
        ignore=args[3:4],
    )
    counted = [CountingSource(local / export), CountingSource(local / source)]
    run_gate(counted[0], counted[1], options)
    need = header_bytes(local / export) + header_bytes(local / source) + sum(c.documents for c in counted)
    need += sum(c.ranges for c in counted) - header_bytes(local / export) - header_bytes(local / source)
    transfer = remote_report["transfer"]
    served = server_bytes_read(ssh_infra, root, start, transfer["bytes_transferred"])
    # the server's own count and ours agree up to ranges that overlap (served once, returned twice)
    assert abs(served - transfer["bytes_transferred"]) <= 0.01 * need, (served, transfer)
    assert max(served, transfer["bytes_transferred"]) <= 1.1 * need, (served, transfer, need)
    assert transfer["round_trips"] > 0


def test_remote_scan_of_a_sharded_export(
    remote_root: tuple[ParamikoRunner, PurePosixPath, Path], ssh_infra: dict[str, str]
) -> None:
    _, root, local = remote_root
    local_done = ptqv("scan", str(local / "sharded"), "--json")
    start = log_size(ssh_infra)
    remote_done = ptqv("scan", str(root / "sharded"), "--cluster", "loop", "--json")
    assert remote_done.returncode == local_done.returncode == 0, remote_done.stderr
    remote_report = json.loads(remote_done.stdout)
    assert strip_paths(remote_report) == strip_paths(json.loads(local_done.stdout))
    weights = sum(p.stat().st_size for p in (local / "sharded").glob("*.safetensors")) - header_bytes(
        local / "sharded"
    )
    served = server_bytes_read(ssh_infra, root, start, remote_report["transfer"]["bytes_transferred"])
    assert served == remote_report["transfer"]["bytes_transferred"] < weights


def test_remote_source_refuses_a_shard_symlinked_outside(
    remote_root: tuple[ParamikoRunner, PurePosixPath, Path],
) -> None:
    runner, root, _ = remote_root
    bad = root / "sharded"
    runner.run(
        [
            "bash",
            "-c",
            f"cp {bad}/model-00001-of-00003.safetensors {root}/outside.safetensors && "
            f"ln -sf {root}/outside.safetensors {bad}/model-00001-of-00003.safetensors",
        ]
    )
    done = ptqv("scan", str(bad), "--cluster", "loop", "--json")
    assert done.returncode == 3  # the same refusal as for a local checkpoint
    assert "leaves the checkpoint directory" in done.stderr and done.stderr.startswith(
        f"ptqv: error: loop:{bad}/"
    )
