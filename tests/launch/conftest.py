"""Fixtures for the launch tests: the infrastructure, a stand-in quantizer and a CLI runner."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import run_ptqv as ptqv
from tests.infra.services import docker_infra, shellcheck, slurm_infra  # noqa: F401  (fixtures)

HERE = Path(__file__).resolve().parent
STAND_IN = [sys.executable, str(HERE / "stand_in.py")]


def wait_for_status(
    job_id: str,
    root: Path,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll `ptqv jobs status --json` until ``done(status)``; the last status."""
    end = time.monotonic() + timeout
    while True:
        result = ptqv("jobs", "status", job_id, "--root", str(root), "--json", env=env)
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        if done(status) or time.monotonic() > end:
            return status
        time.sleep(0.3)


def write_spec(path: Path, **keys: Any) -> Path:
    """A spec YAML (JSON is valid YAML) with ``keys``."""
    path.write_text(json.dumps(keys), encoding="utf-8")
    return path
