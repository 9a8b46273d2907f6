"""The rendered Docker job on a real Docker engine (dockerd started by scripts/test-infra/start.sh,
no network, an image built locally FROM scratch with bash and busybox)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.launch.conftest import ptqv, wait_for_status, write_spec

pytestmark = pytest.mark.docker

# the image has no Python: a shell stand-in that records its phase and arguments
SH_STAND_IN = [
    "sh",
    "-c",
    'mkdir -p "$PTQV_EXPORT_PATH" && printf "%s\\n" "$PTQV_PHASE" "$@" > "$PTQV_EXPORT_PATH/stand_in.txt"',
    "stand-in",
]


def test_docker_job_runs_in_a_container(docker_infra: dict[str, str], tmp_path: Path) -> None:
    env = {"DOCKER_HOST": docker_infra["PTQV_DOCKER_HOST"], "CLAUDE_CODE_SESSION_ID": "docker-test"}
    root = tmp_path / "work space"
    spec = write_spec(
        tmp_path / "job.yaml",
        model="$(touch pwned)",
        qformat="fp8",
        container=docker_infra["PTQV_DOCKER_IMAGE"],
        docker_network="none",
        docker_ulimits=False,
        quantizer_command=SH_STAND_IN,
        env={"NOTE": "a > b"},
    )
    dry = ptqv(
        "launch",
        "--spec",
        str(spec),
        "--kind",
        "docker",
        "--out",
        str(root),
        "--local",
        "--dry-run",
        "--json",
        env=env,
    )
    assert dry.returncode == 0, dry.stderr
    argv = json.loads(dry.stdout)["steps"][0]["argv"]
    assert argv[:3] == ["docker", "run", "--rm"] and "--network=none" in argv
    assert not any(a.startswith("--gpus") for a in argv)  # no NVIDIA runtime on this engine
    done = ptqv(
        "launch", "--spec", str(spec), "--kind", "docker", "--out", str(root), "--local", "--yes", env=env
    )
    assert done.returncode == 0, done.stderr
    status = wait_for_status(
        done.stdout.strip(), root, lambda s: s["status"] != "running", timeout=60, env=env
    )
    assert status["status"] == "succeeded", ptqv(
        "jobs", "logs", done.stdout.strip(), "--root", str(root)
    ).stdout
    ws = Path(status["workspace"])
    lines = (ws / "output" / "checkpoint" / "stand_in.txt").read_text().splitlines()
    assert lines[:3] == ["full", "--pyt_ckpt_path", "$(touch pwned)"]
    assert (ws / "output" / "smoke" / "stand_in.txt").read_text().startswith("smoke\n")
    assert not list(tmp_path.rglob("pwned"))
