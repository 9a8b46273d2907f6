"""`ptqv render`, `ptqv launch --local` and `ptqv jobs`, run as separate processes."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from tests.launch.conftest import STAND_IN, ptqv, wait_for_status, write_spec


def render_direct(tmp_path: Path, **keys: object) -> tuple[Path, Path]:
    spec = write_spec(
        tmp_path / "job.yaml", model="Qwen/Qwen3-8B", qformat="fp8", quantizer_command=STAND_IN, **keys
    )
    root = tmp_path / "workspaces"
    done = ptqv("render", "direct", "--spec", str(spec), "--out", str(root), "--session", "s1", "--json")
    assert done.returncode == 0, done.stderr
    return root, Path(json.loads(done.stdout)["workspace"])


def test_render_prints_the_paths(tmp_path: Path) -> None:
    done = ptqv(
        "render",
        "slurm",
        "--model",
        "Qwen/Qwen3-8B",
        "--qformat",
        "fp8",
        "--partition",
        "batch",
        "--stand-in",
        "true",
        "--out",
        str(tmp_path),
        "--session",
        "abc",
        env={"CLAUDE_CODE_SESSION_ID": ""},
    )
    assert done.returncode == 0, done.stderr
    ws = tmp_path / "abc" / "Qwen3-8B-fp8" / "scripts"
    assert done.stdout.splitlines() == [
        str(ws / n) for n in ("run.sh", "smoke.sbatch", "full.sbatch", "submit.sh")
    ]


def test_session_id_comes_from_the_agent(tmp_path: Path) -> None:
    done = ptqv(
        "render",
        "direct",
        "--model",
        "m",
        "--qformat",
        "fp8",
        "--stand-in",
        "true",
        "--out",
        str(tmp_path),
        "--json",
        env={"CLAUDE_CODE_SESSION_ID": "sess-42"},
    )
    assert json.loads(done.stdout)["workspace"] == str(tmp_path / "sess-42" / "m-fp8")


def test_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("model: m\nqformat: fp8\nsecret_sauce: 1\n")
    done = ptqv("render", "direct", "--spec", str(spec), "--out", str(tmp_path))
    assert done.returncode == 3
    assert done.stderr.startswith(f"ptqv: error: {spec}: unknown key 'secret_sauce'")
    assert "Traceback" not in done.stderr and done.stdout == ""
    unknown = ptqv("render", "helm", "--model", "m", "--qformat", "fp8")
    assert unknown.returncode == 2 and "unknown kind 'helm'" in unknown.stderr


def test_launch_needs_yes_and_dry_run_prints_exactly_what_runs(tmp_path: Path) -> None:
    _root, ws = render_direct(tmp_path)
    refused = ptqv("launch", str(ws), "--local")
    assert refused.returncode == 2
    assert "add --yes to run it" in refused.stderr
    assert not (ws / "jobs.json").exists()
    dry = ptqv("launch", str(ws), "--local", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    [step] = plan["steps"]
    assert step["argv"] == ["bash", str(ws / "scripts" / "job.sh")]
    assert plan["commands"] == [
        f"cd {shlex.quote(str(ws))} && {shlex.join(step['argv'])} >{shlex.quote(step['log'])} 2>&1"
    ]
    assert not (ws / "jobs.json").exists() and not list((ws / "logs").iterdir())
    assert ptqv("launch", str(ws)).returncode == 2  # --local is required


def test_launch_records_and_status_outlive_the_launcher(tmp_path: Path) -> None:
    root, ws = render_direct(tmp_path)
    done = ptqv("launch", str(ws), "--local", "--yes")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    status = wait_for_status(job_id, root, lambda s: s["status"] != "running")
    assert status["status"] == "succeeded"
    assert status["steps"][0]["exit_code"] == 0
    logs = ptqv("jobs", "logs", job_id, "--root", str(root))
    assert "stand-in quantizer: phase smoke" in logs.stdout and "phase full" in logs.stdout
    as_json = json.loads(ptqv("jobs", "logs", job_id, "--root", str(root), "--json", "--tail", "1").stdout)
    assert as_json["job_id"] == job_id and len(as_json["logs"]) == len(status["steps"])
    assert all(len(log["lines"]) <= 1 for log in as_json["logs"])
    listed = json.loads(ptqv("jobs", "list", "--root", str(root), "--json").stdout)
    assert [j["id"] for j in listed["jobs"]] == [job_id]
    record = json.loads((ws / "jobs.json").read_text())
    assert record["schema_version"] == 2 and record["jobs"][0]["status"] == "succeeded"


def test_failed_smoke_stops_the_job(tmp_path: Path) -> None:
    root, ws = render_direct(tmp_path, env={"STAND_IN_FAIL": "smoke"})
    job_id = ptqv("launch", str(ws), "--local", "--yes").stdout.strip()
    status = wait_for_status(job_id, root, lambda s: s["status"] != "running")
    assert (status["status"], status["steps"][0]["exit_code"]) == ("failed", 3)
    assert not (ws / "output" / "checkpoint").exists()


def test_cancel_stops_a_running_job(tmp_path: Path) -> None:
    root, ws = render_direct(tmp_path, env={"STAND_IN_SLEEP": "60"})
    job_id = ptqv("launch", str(ws), "--local", "--yes").stdout.strip()
    assert wait_for_status(job_id, root, lambda s: s["status"] == "running")["status"] == "running"
    assert ptqv("jobs", "cancel", job_id, "--root", str(root)).returncode == 2  # needs --yes
    done = ptqv("jobs", "cancel", job_id, "--root", str(root), "--yes", "--json")
    assert done.returncode == 0, done.stderr
    status = wait_for_status(job_id, root, lambda s: s["steps"][0]["state"] != "RUNNING", timeout=20)
    assert status["status"] == "cancelled"
    assert status["steps"][0]["exit_code"] == 143  # SIGTERM, recorded by the supervisor
    again = ptqv("jobs", "cancel", job_id, "--root", str(root), "--yes")
    assert again.returncode == 2 and "nothing to cancel" in again.stderr


def test_help_has_examples() -> None:
    for command in (
        ["render"],
        ["launch"],
        ["jobs", "list"],
        ["jobs", "status"],
        ["jobs", "logs"],
        ["jobs", "cancel"],
    ):
        done = ptqv(*command, "--help")
        assert done.returncode == 0 and "Example: ptqv " in done.stdout
