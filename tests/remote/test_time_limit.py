"""A SLURM job over SSH that overruns its time limit ends as TIMEOUT, over paramiko and over
OpenSSH with a ControlMaster. Both are launched early through the session fixture ``slow_job``
(by test_jobs.py and test_openssh.py) so their minute overlaps the tests in between, or here when
run alone; each is checked by a new client process (and, over OpenSSH, through a new master)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.remote.test_jobs import SLOW, launch, loop, settled, wait  # noqa: F401  (loop is a fixture)
from tests.remote.test_openssh import control_dir, master_loop  # noqa: F401  (fixtures)

pytestmark = pytest.mark.infra


def ends_as_timeout(job: tuple[Path, str]) -> None:
    root, job_id = job
    done = wait(root, job_id, "--timeout", "200")
    assert done.returncode == 1, done.stdout + done.stderr
    smoke, full = settled(root, job_id)["steps"]
    assert smoke["state"] == "TIMEOUT" and full["state"] == "CANCELLED"


def test_time_limit_ends_as_timeout(slow_job: dict[str, Any], loop: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    if "job" not in slow_job:
        slow_job["job"] = launch(tmp_path, loop, "slow", **SLOW)[:2]
    ends_as_timeout(slow_job["job"])


def test_time_limit_over_a_control_master(
    slow_job: dict[str, Any],
    master_loop: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    if "openssh" not in slow_job:
        slow_job["openssh"] = launch(tmp_path, master_loop, "slowviamaster", **SLOW)[:2]
    ends_as_timeout(slow_job["openssh"])
