"""Kind canary on the real loopback SLURM: `ptqv canary` runs as the job, its record is gated.

The engine is transformers in the job's own process on CPU (the loopback node's GPU is a fake
gres; vLLM on a GPU node is the same script with `--serve vllm`). The export is a real
compressed-tensors W4A16 fixture, compared with its source.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT
from tests.launch.conftest import ptqv, write_spec

pytest.importorskip("compressed_tensors", reason="transformers needs compressed-tensors to load the export")

pytestmark = [pytest.mark.infra, pytest.mark.engine]
EXPORT = FIXTURES / "llmc-w4a16-llama"
SOURCE = FIXTURES / "src-llama"


def test_canary_job_runs_the_checks_and_its_record_gates(slurm_infra: dict[str, str], tmp_path: Path) -> None:
    root = tmp_path / "work space's"
    spec = write_spec(
        tmp_path / "canary.yaml",
        model="tiny-llama",
        export=str(EXPORT),
        source=str(SOURCE),
        engine="transformers",
        partition=slurm_infra["PTQV_SLURM_PARTITION"],
        time="00:10:00",
        # this checkout's ptqv; one torch thread (the fixtures are tiny, the CPU is shared)
        quantizer_command=[sys.executable, "-m", "ptq_validators"],
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        env_passthrough=[],
    )
    launched = ptqv(
        "launch", "--spec", str(spec), "--kind", "canary", "--out", str(root), "--local", "--yes", "--json",
        env={"CLAUDE_CODE_SESSION_ID": "canary-test"},
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr
    job = json.loads(launched.stdout)
    waited = ptqv(
        "jobs", "wait", job["job_id"], "--root", str(root), "--json", "--timeout", "540", timeout=600
    )
    status = json.loads(waited.stdout)
    logs = ptqv("jobs", "logs", job["job_id"], "--root", str(root)).stdout
    assert waited.returncode == 0, (status, logs)
    [step] = status["steps"]
    assert (step["name"], step["state"]) == ("serve", "COMPLETED")
    record = json.loads((Path(job["workspace"]) / "output" / "canary.json").read_text())
    assert record["verdict"] == "pass", record["checks"]
    assert record["engine"]["mode"] == "in-process" and record["metrics"]["tokens_compared"] > 100
    gated = ptqv(
        "gate", str(EXPORT), "--source", str(SOURCE), "--canary", str(Path(job["workspace"]) / "output" / "canary.json"),
        "--json",
    )  # fmt: skip
    canary = next(c for c in json.loads(gated.stdout)["checks"] if c["id"] == "canary")
    assert canary["status"] == "pass", canary
