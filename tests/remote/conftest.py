"""Fixtures for the remote tests: a real sshd (and SLURM) on 127.0.0.1, a private HOME with
known_hosts and a clusters.yaml pointing at it, and the CLI run in a separate process (``ptqv``, HOME and the rest of the environment inherited)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_ptqv as ptqv  # noqa: F401  (used by the remote tests)
from tests.infra.services import slurm_infra, ssh_infra  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty HOME for this test (ssh_config, known_hosts and clusters.yaml live under it)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PTQV_CLUSTERS", raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    yield home


def write_clusters(path: Path, clusters: dict[str, Any], default: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"clusters": clusters}
    if default:
        data["default_cluster"] = default
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    return path


def loop_cluster(ssh: dict[str, str], **extra: Any) -> dict[str, Any]:
    """The clusters.yaml entry of the loopback login node."""
    return {
        "login_node": ssh["PTQV_SSH_HOST"],
        "port": int(ssh["PTQV_SSH_PORT"]),
        "user": ssh["PTQV_SSH_USER"],
        "ssh_key": ssh["PTQV_SSH_KEY"],
        "workspace": f"{ssh['PTQV_SSH_HOME']}/ptqv-ws",
        **extra,
    }


@pytest.fixture
def cluster_home(home: Path, ssh_infra: dict[str, str]) -> Path:  # noqa: F811  (the fixture)
    """HOME with the test servers' known_hosts and ~/.config/modelopt/clusters.yaml (cluster `loop`)."""
    shutil.copy(ssh_infra["PTQV_SSH_KNOWN_HOSTS"], home / ".ssh" / "known_hosts")
    write_clusters(home / ".config" / "modelopt" / "clusters.yaml", {"loop": loop_cluster(ssh_infra)})
    return home


@pytest.fixture(scope="session")
def slow_job() -> dict[str, Any]:
    """Jobs that overrun their 1-minute limit, launched by test_jobs.py's first test (``job``,
    over paramiko) and test_openssh.py's SLURM test (``openssh``, over a ControlMaster) and
    checked by test_time_limit.py, so the tests in between run while SLURM waits (its limits are
    whole minutes, checked every 30 s)."""
    return {}
