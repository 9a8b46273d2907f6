"""A SLURM job over SSH that overruns its time limit ends as TIMEOUT (launched early by
test_jobs.py through the session fixture ``slow_job``, or here when run alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.remote.test_jobs import launch, loop, status, wait  # noqa: F401  (loop is a fixture)

pytestmark = pytest.mark.infra


def test_time_limit_ends_as_timeout(slow_job: dict[str, Any], loop: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    if "job" not in slow_job:
        slow_job["job"] = launch(
            tmp_path, loop, "slow", smoke_time="00:01:00", env={"STAND_IN_SLEEP": "300"}
        )[:2]
    root, job_id = slow_job["job"]
    done = wait(root, job_id, "--timeout", "200")
    assert done.returncode == 1, done.stdout + done.stderr
    smoke, full = status(root, job_id)["steps"]
    assert smoke["state"] == "TIMEOUT" and full["state"] == "CANCELLED"
