"""Rendered SLURM jobs on a real single-node SLURM on 127.0.0.1 (scripts/test-infra/start.sh).

The quantizer is the stand-in; the smoke job runs first and the full job only after it succeeded.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.launch.conftest import STAND_IN, ptqv, wait_for_status, write_spec

pytestmark = pytest.mark.infra


def launch_slurm(tmp_path: Path, partition: str, **keys: object) -> tuple[Path, Path, str]:
    # a workspace path with a space and a quote: sbatch runs from it
    root = tmp_path / "work space's"
    spec = write_spec(
        tmp_path / "job.yaml",
        model="$(touch pwned)/tiny model",
        qformat="fp8",
        partition=partition,
        gpus=1,
        time="00:05:00",
        smoke_time="00:02:00",
        quantizer_command=STAND_IN,
        **keys,
    )
    done = ptqv(
        "launch",
        "--spec",
        str(spec),
        "--kind",
        "slurm",
        "--out",
        str(root),
        "--local",
        "--yes",
        "--json",
        env={"CLAUDE_CODE_SESSION_ID": "slurm-test"},
    )
    assert done.returncode == 0, done.stderr
    launched = json.loads(done.stdout)
    return root, Path(launched["workspace"]), launched["job_id"]


def scontrol(job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def test_smoke_then_full(slurm_infra: dict[str, str], tmp_path: Path) -> None:
    root, ws, job_id = launch_slurm(tmp_path, slurm_infra["PTQV_SLURM_PARTITION"])
    status = wait_for_status(job_id, root, lambda s: s["status"] != "running", timeout=90)
    assert status["status"] == "succeeded", status
    smoke, full = status["steps"]
    assert (smoke["name"], full["name"]) == ("smoke", "full")
    assert full["argv"][2] == f"--dependency=afterok:{smoke['slurm_id']}"
    assert scontrol(full["slurm_id"])["StartTime"] >= scontrol(smoke["slurm_id"])["EndTime"]
    smoke_run = json.loads((ws / "output" / "smoke" / "stand_in.json").read_text())
    full_run = json.loads((ws / "output" / "checkpoint" / "stand_in.json").read_text())
    assert smoke_run["time"] < full_run["time"]
    assert full_run["argv"][:2] == ["--pyt_ckpt_path", "$(touch pwned)/tiny model"]
    assert not list(tmp_path.rglob("pwned"))
    logs = ptqv("jobs", "logs", job_id, "--root", str(root), "--step", "full")
    assert "stand-in quantizer: phase full" in logs.stdout


def test_failed_smoke_cancels_the_full_job(slurm_infra: dict[str, str], tmp_path: Path) -> None:
    root, ws, job_id = launch_slurm(
        tmp_path, slurm_infra["PTQV_SLURM_PARTITION"], env={"STAND_IN_FAIL": "smoke"}
    )
    status = wait_for_status(job_id, root, lambda s: s["steps"][1]["state"] != "PENDING", timeout=90)
    smoke, full = status["steps"]
    assert smoke["state"] == "FAILED"
    # --kill-on-invalid-dep=yes: DependencyNeverSatisfied ends as CANCELLED instead of pending forever
    assert full["state"] == "CANCELLED"
    assert status["status"] == "failed"
    assert not (ws / "output" / "checkpoint").exists()


def test_cancel_a_pending_chain(slurm_infra: dict[str, str], tmp_path: Path) -> None:
    root, _, job_id = launch_slurm(
        tmp_path, slurm_infra["PTQV_SLURM_PARTITION"], env={"STAND_IN_SLEEP": "60"}
    )
    wait_for_status(job_id, root, lambda s: s["steps"][0]["state"] == "RUNNING", timeout=30)
    done = ptqv("jobs", "cancel", job_id, "--root", str(root), "--yes", "--json")
    assert done.returncode == 0, done.stderr
    status = wait_for_status(
        job_id, root, lambda s: all(st["state"] == "CANCELLED" for st in s["steps"]), timeout=30
    )
    assert status["status"] == "cancelled"
    assert [s["state"] for s in status["steps"]] == ["CANCELLED", "CANCELLED"]
