"""The OpenSSH transport (the MFA path): it only ever rides a ControlMaster the person opened.
No master → exit 4 with the command to open one, nothing run; a live master → commands, files
and SLURM jobs; a master that died → exit 4 again. Also: an sshd that goes away during
`jobs status` is retried, reported with the last known state, and never hangs."""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from ptq_validators.remote.config import load_cluster
from ptq_validators.remote.connect import connect
from tests.infra.services import START, STOP
from tests.remote.conftest import loop_cluster, ptqv, write_clusters
from tests.remote.test_jobs import SLOW, STAND_IN, launch, status, wait

pytestmark = pytest.mark.infra


@pytest.fixture
def control_dir() -> Iterator[Path]:
    # a short path: a Unix socket path must stay under 108 bytes
    with tempfile.TemporaryDirectory(prefix="ptqv-cm-", dir="/tmp") as d:
        yield Path(d)


def open_master(command: str, ssh: dict[str, str], home: Path) -> None:
    """Run the command ptqv printed, plus what a person's own ssh setup would supply."""
    argv = shlex.split(command)
    extra = [
        "-i",
        ssh["PTQV_SSH_KEY"],
        "-o",
        f"UserKnownHostsFile={home / '.ssh' / 'known_hosts'}",
        "-o",
        "BatchMode=yes",
    ]
    subprocess.run([argv[0], *extra, *argv[1:]], check=True, timeout=30, stdin=subprocess.DEVNULL)


def through_master(
    control_dir: Path, ssh: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``ssh`` through the test's master socket (``-O exit`` closes it; a command runs over it)."""
    target = ["-o", f"ControlPath={control_dir}/%C", "-p", ssh["PTQV_SSH_PORT"], "-l", ssh["PTQV_SSH_USER"]]
    if args[:1] == ("-O",):
        return subprocess.run(
            ["ssh", *args, *target, ssh["PTQV_SSH_HOST"]], capture_output=True, text=True, timeout=30
        )
    return subprocess.run(["ssh", *target, *args], input=stdin, capture_output=True, text=True, timeout=30)


def test_openssh_needs_a_live_master(
    cluster_home: Path, ssh_infra: dict[str, str], control_dir: Path
) -> None:
    entry = loop_cluster(ssh_infra, transport="openssh", control_path=str(control_dir / "%C"))
    del entry["ssh_key"]  # the master holds the authentication
    write_clusters(cluster_home / ".config" / "modelopt" / "clusters.yaml", {"mfa": entry})
    marker = f"{ssh_infra['PTQV_SSH_HOME']}/ran-without-master"
    done = ptqv("remote", "run", "mfa", "--", "touch", marker)
    assert done.returncode == 4 and "no live ControlMaster" in done.stderr
    command = done.stderr.split("then rerun: ", 1)[1].strip().rstrip(")")
    assert command.startswith("ssh -fN -o ControlMaster=yes") and "ControlPath=" in command
    open_master(command, ssh_infra, cluster_home)
    try:
        assert ptqv("remote", "run", "mfa", "--", "test", "-e", marker).returncode == 1  # nothing ran before
        done = ptqv("remote", "run", "mfa", "--json", "--", "bash", "-c", "echo via master; exit 6")
        assert done.returncode == 6 and json.loads(done.stdout)["stdout"] == "via master\n"
    finally:
        through_master(control_dir, ssh_infra, "-O", "exit")
    done = ptqv("remote", "run", "mfa", "--", "true")  # the master is gone: refused again, no prompt
    assert done.returncode == 4 and "no live ControlMaster" in done.stderr


@pytest.fixture
def master_loop(
    cluster_home: Path, ssh_infra: dict[str, str], slurm_infra: dict[str, str], control_dir: Path
) -> Iterator[dict[str, Any]]:
    """The cluster `loop` over OpenSSH riding a master this test opened (closed after it), with
    the stand-in quantizer uploaded through that master; the ``loop`` dict ``launch`` takes."""
    entry = loop_cluster(ssh_infra, transport="openssh", control_path=str(control_dir / "%C"))
    write_clusters(cluster_home / ".config" / "modelopt" / "clusters.yaml", {"loop": entry})
    probe = ptqv("remote", "run", "loop", "--", "true")
    open_master(probe.stderr.split("then rerun: ", 1)[1].strip().rstrip(")"), ssh_infra, cluster_home)
    try:
        stand_in = f"{entry['workspace']}/stand_in.py"
        script = f"mkdir -p {entry['workspace']} && cat > {stand_in}"
        up = through_master(
            control_dir, ssh_infra, ssh_infra["PTQV_SSH_HOST"], script, stdin=STAND_IN.read_text()
        )
        assert up.returncode == 0, up.stderr
        yield {"stand_in": stand_in, "partition": slurm_infra["PTQV_SLURM_PARTITION"]}
    finally:
        through_master(control_dir, ssh_infra, "-O", "exit")


def test_slurm_jobs_over_a_control_master(
    master_loop: dict[str, Any], slow_job: dict[str, Any], tmp_path: Path
) -> None:
    loop = master_loop
    ok_root, ok_id, _ = launch(tmp_path, loop, "viamaster")
    assert wait(ok_root, ok_id, "--timeout", "120").returncode == 0
    logs = json.loads(ptqv("jobs", "logs", ok_id, "--root", str(ok_root), "--json").stdout)
    assert any("phase smoke" in line for line in logs["logs"][0]["lines"])
    bad_root, bad_id, _ = launch(tmp_path, loop, "viamasterbad", env={"STAND_IN_FAIL": "full"})
    assert wait(bad_root, bad_id, "--timeout", "120").returncode == 1
    assert [s["state"] for s in status(bad_root, bad_id)["steps"]] == ["COMPLETED", "FAILED"]
    c_root, c_id, _ = launch(tmp_path, loop, "viamastercancel", env={"STAND_IN_SLEEP": "120"})
    assert ptqv("jobs", "cancel", c_id, "--root", str(c_root), "--yes").returncode == 0
    assert wait(c_root, c_id, "--timeout", "60").returncode == 1
    assert status(c_root, c_id)["status"] == "cancelled"
    # launched last (the node has 2 cores and test_jobs.py's slow job holds one until its own
    # limit), checked by test_time_limit.py while the tests in between run
    slow_job["openssh"] = launch(tmp_path, loop, "slowviamaster", **SLOW)[:2]


def test_sshd_gone_during_status_is_retried_then_reported(
    cluster_home: Path, ssh_infra: dict[str, str], slurm_infra: dict[str, str], tmp_path: Path
) -> None:
    cluster = load_cluster("loop")
    stand_in = PurePosixPath(str(cluster.workspace)) / "stand_in.py"
    with connect(cluster) as runner:
        runner.mkdir(stand_in.parent)
        runner.write_text(stand_in, STAND_IN.read_text())
    loop = {"stand_in": str(stand_in), "partition": slurm_infra["PTQV_SLURM_PARTITION"]}
    root, job_id, _ = launch(tmp_path, loop, "outage", env={"STAND_IN_SLEEP": "2"})
    subprocess.run(["bash", str(STOP), "ssh"], check=True, capture_output=True, timeout=60)
    try:
        start = time.monotonic()
        done = ptqv("jobs", "status", job_id, "--root", str(root), "--json", timeout=60)
        assert done.returncode == 4, done.stderr
        assert time.monotonic() - start < 30  # retried with backoff, then reported: no hang
        assert "after 4 attempts" in done.stderr and "unknown since" in done.stderr
        (jobs_file,) = root.glob("*/*/jobs.json")
        saved = json.loads(jobs_file.read_text())["jobs"][0]
        assert saved["status"] == "running" and saved["failed_polls"] == 1 and saved["unknown_since"]
        listed = ptqv("jobs", "list", "--root", str(root), "--json", timeout=60)
        assert listed.returncode == 4  # listed with the last known state, and said so
        (job,) = json.loads(listed.stdout)["jobs"]
        assert (job["id"], job["status"], job["failed_polls"]) == (job_id, "running", 2)
    finally:
        subprocess.run(["bash", str(START), "ssh"], check=True, capture_output=True, timeout=120)
    assert wait(root, job_id, "--timeout", "120").returncode == 0
