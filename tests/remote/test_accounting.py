"""The same SLURM over SSH with accounting (MariaDB + slurmdbd): states come from `sacct -P`.

The default infrastructure has no slurmdbd (sacct says "accounting storage is disabled", and
test_jobs.py gets its states from squeue); this module restarts the loopback SLURM with
PTQV_INFRA_SLURMDBD=1 and puts it back without accounting afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from ptq_validators.launch import slurm
from ptq_validators.remote.config import find_file, load_file, select
from ptq_validators.remote.connect import connect
from tests.infra.services import START
from tests.remote.conftest import ptqv
from tests.remote.test_jobs import launch, loop, settled, status, wait  # noqa: F401  (loop is a fixture)

pytestmark = pytest.mark.infra


def restart_slurm(accounting: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PTQV_INFRA_SLURMDBD": "1" if accounting else "0"}
    return subprocess.run(
        ["bash", str(START), "slurm"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def accounting(slurm_infra: dict[str, str]) -> Iterator[None]:
    done = restart_slurm(True)
    if done.returncode:
        restart_slurm(False)
        pytest.skip(f"slurmdbd could not start: {done.stderr.strip().splitlines()[-1:]}")
    yield
    restart_slurm(False)


def cluster_file() -> Path:
    path = find_file(None)
    assert path is not None, "the loop fixture writes clusters.yaml under HOME"
    return path


def test_states_from_sacct(accounting: None, loop: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    root, job_id, _ = launch(tmp_path, loop, "acct", env={"STAND_IN_FAIL": "smoke"})
    done = wait(root, job_id, "--timeout", "120")
    assert done.returncode == 1, done.stdout + done.stderr
    record = status(root, job_id)
    smoke, full = record["steps"]
    # which tool `wait` heard the end from is timing: slurmdbd records a job's end asynchronously,
    # and until it has, ptqv rightly falls back on squeue (a final state is never asked again)
    assert (smoke["state"], smoke["exit_code"]) == ("FAILED", 3) and smoke["source"] in ("sacct", "squeue")
    # once slurmdbd has caught up, sacct is what the query reads, exit code included
    runner = connect(select(load_file(cluster_file()), "loop"))
    # the loopback controller numbers from 1 after each fresh start while slurmdbd keeps every
    # earlier run's jobs: only the rows from this job's workspace are its own
    workspace = PurePosixPath(record["workspace"])
    deadline = time.monotonic() + 60
    info = slurm.query(runner, [smoke["slurm_id"]], workspace).get(smoke["slurm_id"])
    while (info is None or info.source != "sacct") and time.monotonic() < deadline:
        time.sleep(1)
        info = slurm.query(runner, [smoke["slurm_id"]], workspace).get(smoke["slurm_id"])
    assert info is not None and (info.state, info.exit_code, info.source) == ("FAILED", 3, "sacct")
    full = settled(root, job_id)["steps"][1]  # sacct may say PENDING a moment longer than squeue
    assert full["state"] == "CANCELLED" and full["source"] in ("sacct", "squeue")
    ok_root, ok_id, _ = launch(tmp_path, loop, "acctok")
    assert wait(ok_root, ok_id, "--timeout", "120").returncode == 0
    assert [s["source"] for s in status(ok_root, ok_id)["steps"]] == ["rc file", "rc file"]
    sacct = json.loads(
        ptqv(
            "remote",
            "run",
            "loop",
            "--json",
            "--",
            "sacct",
            "-P",
            "-n",
            "-X",
            "-j",
            smoke["slurm_id"],
            "-o",
            "State",
        ).stdout
    )
    assert sacct["stdout"].strip() == "FAILED"
