"""Test infrastructure as pytest fixtures: shellcheck, a loopback SLURM, a Docker engine, sshd.

Each fixture runs ``scripts/test-infra/start.sh <part>`` (which installs missing Debian packages)
once per session, skips the tests that need it with the reason when it cannot start, and stops
at the end what this session started (never what was already running).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
START = REPO / "scripts" / "test-infra" / "start.sh"
STOP = REPO / "scripts" / "test-infra" / "stop.sh"
INFRA_DIR = Path(os.environ.get("PTQV_INFRA_DIR", "/tmp/ptqv-infra"))
PID_FILES = {"slurm": "slurmctld.pid", "docker": "dockerd.pid", "ssh": "sshd-login.pid"}


def _running(part: str) -> bool:
    pid_file = INFRA_DIR / "pids" / PID_FILES[part]
    try:
        pid = int(pid_file.read_text().strip())
        return Path(f"/proc/{pid}").exists()
    except (OSError, ValueError):
        return False


def start(part: str) -> tuple[dict[str, str] | None, str]:
    """Start ``part``; (the env file's KEY=VALUE pairs, "") or (None, why it could not start)."""
    if os.geteuid() != 0:
        return None, "needs root (the start script installs packages and starts daemons)"
    done = subprocess.run(
        ["bash", str(START), part],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode:
        return None, f"{START.name} {part} failed: {done.stderr.strip().splitlines()[-1:]}"
    pairs = dict(line.split("=", 1) for line in (INFRA_DIR / "env").read_text().splitlines() if "=" in line)
    return pairs, ""


def stop(part: str) -> None:
    subprocess.run(["bash", str(STOP), part], capture_output=True, timeout=120, check=False)


def _service(part: str, what: str) -> Iterator[dict[str, str]]:
    was_running = _running(part)
    env, reason = start(part)
    if env is None:
        pytest.skip(f"{what} is not available: {reason}")
    yield env
    if not was_running:
        stop(part)


@pytest.fixture(scope="session")
def slurm_infra() -> Iterator[dict[str, str]]:
    """A single-node SLURM on 127.0.0.1 with one fake GPU; yields the env file's pairs."""
    yield from _service("slurm", "the loopback SLURM")


@pytest.fixture(scope="session")
def docker_infra() -> Iterator[dict[str, str]]:
    """A Docker engine without networking plus a local busybox image (PTQV_DOCKER_HOST/IMAGE)."""
    yield from _service("docker", "a Docker engine")


@pytest.fixture(scope="session")
def ssh_infra() -> Iterator[dict[str, str]]:
    """Three sshd on 127.0.0.1 (login node, jump host, password-only); yields the env file's pairs
    (PTQV_SSH_HOST, PTQV_SSH_PORT, PTQV_SSH_JUMP_PORT, PTQV_SSH_PASSWORD_PORT, PTQV_SSH_USER,
    PTQV_SSH_KEY, PTQV_SSH_KNOWN_HOSTS, PTQV_SSH_HOME)."""
    yield from _service("ssh", "a loopback sshd")


@pytest.fixture(scope="session")
def shellcheck() -> str:
    """The shellcheck binary; installed if missing. The lint tests need it: no skip."""
    if shutil.which("shellcheck") is None:
        env, reason = start("tools")
        if env is None or shutil.which("shellcheck") is None:
            pytest.fail(f"shellcheck is required by the lint tests and could not be installed: {reason}")
    path = shutil.which("shellcheck")
    assert path
    return path
