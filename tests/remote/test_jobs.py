"""SLURM jobs launched over SSH on the loopback cluster: complete, fail, time out, cancelled.

Each `ptqv` call is a new process, so every status below is read by a client that did not
launch the job (the record in the local workspaces root, the truth on the cluster). The SLURM
here has no slurmdbd: states come from the job's own result file and squeue.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from ptq_validators.remote.config import load_cluster
from ptq_validators.remote.connect import connect
from tests.remote.conftest import REPO, ptqv

pytestmark = pytest.mark.infra
STAND_IN = REPO / "tests" / "launch" / "stand_in.py"
SLOW = {"smoke_time": "00:01:00", "env": {"STAND_IN_SLEEP": "300"}}  # launch() keys of a job that overruns


@pytest.fixture
def loop(cluster_home: Path, ssh_infra: dict[str, str], slurm_infra: dict[str, str]) -> dict[str, Any]:
    """The cluster `loop` with the stand-in quantizer uploaded to its workspace."""
    cluster = load_cluster("loop")
    assert cluster.workspace
    stand_in = PurePosixPath(cluster.workspace) / "stand_in.py"
    with connect(cluster) as runner:
        runner.mkdir(stand_in.parent)
        runner.write_text(stand_in, STAND_IN.read_text())
    return {"stand_in": str(stand_in), "partition": slurm_infra["PTQV_SLURM_PARTITION"], "home": cluster_home}


def launch(tmp_path: Path, loop: dict[str, Any], name: str, **keys: Any) -> tuple[Path, str, dict[str, Any]]:
    spec = tmp_path / f"{name}.yaml"
    values = {
        "model": f"org/{name}",
        "qformat": "fp8",
        "partition": loop["partition"],
        "gpus": 0,
        "time": "00:05:00",
        "smoke_time": "00:02:00",
        "quantizer_command": ["python3", loop["stand_in"]],
        **keys,
    }
    spec.write_text(json.dumps(values))
    root = tmp_path / "workspaces"
    done = ptqv(
        "launch",
        "--spec",
        str(spec),
        "--kind",
        "slurm",
        "--cluster",
        "loop",
        "--out",
        str(root),
        "--yes",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    return root, json.loads(done.stdout)["job_id"], json.loads(done.stdout)


def status(root: Path, job_id: str) -> dict[str, Any]:
    done = ptqv("jobs", "status", job_id, "--root", str(root), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait(root: Path, job_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return ptqv("jobs", "wait", job_id, "--root", str(root), "--max-interval", "1", *extra, timeout=300)


def test_complete_fail_and_cancel(
    tmp_path: Path, loop: dict[str, Any], ssh_infra: dict[str, str], slow_job: dict[str, Any]
) -> None:
    slow_job["job"] = launch(tmp_path, loop, "slow", **SLOW)[:2]
    ok_root, ok_id, launched = launch(tmp_path, loop, "good")
    assert launched["host"] == "127.0.0.1" and launched["cluster"] == "loop"
    assert launched["workspace"].startswith(f"{ssh_infra['PTQV_SSH_HOME']}/ptqv-ws/")

    done = wait(ok_root, ok_id, "--timeout", "120")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout.splitlines()[-1]
    record = status(ok_root, ok_id)
    assert (record["host"], record["user"], record["cluster"]) == (
        "127.0.0.1",
        ssh_infra["PTQV_SSH_USER"],
        "loop",
    )
    assert [(s["name"], s["state"], s["exit_code"]) for s in record["steps"]] == [
        ("smoke", "COMPLETED", 0),
        ("full", "COMPLETED", 0),
    ]
    logs = ptqv("jobs", "logs", ok_id, "--root", str(ok_root), "--step", "full", "--json")
    assert logs.returncode == 0, logs.stderr
    assert any(
        "stand-in quantizer: phase full" in line for line in json.loads(logs.stdout)["logs"][0]["lines"]
    )

    bad_root, bad_id, _ = launch(tmp_path, loop, "bad", env={"STAND_IN_FAIL": "smoke"})
    done = wait(bad_root, bad_id, "--timeout", "120")
    assert done.returncode == 1, done.stdout + done.stderr
    smoke, full = status(bad_root, bad_id)["steps"]
    assert (smoke["state"], smoke["exit_code"], full["state"]) == ("FAILED", 3, "CANCELLED")
    assert (smoke["source"], full["source"]) == ("squeue", "squeue")  # no slurmdbd here: sacct cannot answer

    c_root, c_id, _ = launch(tmp_path, loop, "cancelme", env={"STAND_IN_SLEEP": "120"})
    deadline = time.monotonic() + 60
    while status(c_root, c_id)["steps"][0]["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert wait(c_root, c_id, "--timeout", "1").returncode == 124  # still running
    done = ptqv("jobs", "cancel", c_id, "--root", str(c_root), "--yes", "--json")
    assert done.returncode == 0, done.stderr
    done = wait(c_root, c_id, "--timeout", "60")
    assert done.returncode == 1
    assert [s["state"] for s in status(c_root, c_id)["steps"]] == ["CANCELLED", "CANCELLED"]


def test_env_of_a_cluster(cluster_home: Path, ssh_infra: dict[str, str], slurm_infra: dict[str, str]) -> None:
    from tests.remote.conftest import loop_cluster, write_clusters

    write_clusters(
        cluster_home / ".config" / "modelopt" / "clusters.yaml",
        {"loop": loop_cluster(ssh_infra, gpu_type="H100")},
    )
    done = ptqv("env", "--cluster", "loop", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["cluster"], report["env_type"], report["host"]) == ("loop", "slurm", "127.0.0.1")
    partition = report["slurm"]["partitions"][0]
    assert partition["name"] == slurm_infra["PTQV_SLURM_PARTITION"] and partition["gpu_gres"] == ["gpu:1"]
    assert (
        report["recommendation"]["calibration_gpu"]["name"] == "H100"
    )  # from gpu_type: the login node has none
    assert report["disk"]["free_gib"] > 0
    # a workspace not made yet: the disk it will be on; the text leaves out what a login node
    # is not probed for (checkout, packages, clusters.yaml)
    write_clusters(
        cluster_home / ".config" / "modelopt" / "clusters.yaml",
        {"loop": loop_cluster(ssh_infra, workspace=f"{ssh_infra['PTQV_SSH_HOME']}/not-yet/ws")},
    )
    text = ptqv("env", "--cluster", "loop")
    assert text.returncode == 0, text.stderr
    assert re.search(r"free disk: [0-9.]+ GiB in \S+/not-yet/ws$", text.stdout, re.M), text.stdout
    unprobed = ("packages:", "clusters.yaml:", "ModelOpt checkout:")
    assert not any(line.startswith(unprobed) for line in text.stdout.splitlines()), text.stdout
    unreachable = ptqv("env", "--cluster", "nope")
    assert unreachable.returncode == 2 and "no cluster 'nope'" in unreachable.stderr


def test_direct_kind_runs_detached_over_ssh(tmp_path: Path, loop: dict[str, Any]) -> None:
    spec = tmp_path / "direct.yaml"
    spec.write_text(
        json.dumps(
            {"model": "org/direct", "qformat": "fp8", "quantizer_command": ["python3", loop["stand_in"]]}
        )
    )
    root = tmp_path / "workspaces"
    args = (
        "launch",
        "--spec",
        str(spec),
        "--kind",
        "direct",
        "--cluster",
        "loop",
        "--out",
        str(root),
        "--yes",
        "--json",
    )
    done = ptqv(*args)
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["job_id"]
    step = status(root, job_id)["steps"][0]
    assert step["pid"] and step["rc_file"].endswith(".rc")
    assert wait(root, job_id, "--timeout", "120").returncode == 0
    final = status(root, job_id)["steps"][0]
    assert (final["state"], final["exit_code"]) == ("COMPLETED", 0)
    logs = json.loads(ptqv("jobs", "logs", job_id, "--root", str(root), "--json").stdout)
    assert any("stand-in quantizer" in line for line in logs["logs"][0]["lines"])
    # a long one, cancelled: SIGTERM reaches the job's process group on the far side
    spec.write_text(
        json.dumps(
            {
                "model": "org/direct2",
                "qformat": "fp8",
                "quantizer_command": ["python3", loop["stand_in"]],
                "env": {"STAND_IN_SLEEP": "120"},
            }
        )
    )
    job_id = json.loads(ptqv(*args).stdout)["job_id"]
    assert status(root, job_id)["steps"][0]["state"] == "RUNNING"
    assert ptqv("jobs", "cancel", job_id, "--root", str(root), "--yes").returncode == 0
    assert wait(root, job_id, "--timeout", "60").returncode == 1
    assert status(root, job_id)["status"] == "cancelled"
