"""Job records: every launch is one entry in its workspace's ``jobs.json``.

Records are written atomically (temporary file + ``os.replace``, under a lock file), so a reader
never sees half a file and two ``ptqv`` processes do not lose each other's updates. Status is
computed from the record alone (PID + exit-code file, or the SLURM job ids), so ``ptqv jobs``
works after the launching process is gone.
"""

from __future__ import annotations

import fcntl
import json
import secrets
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ptq_validators.errors import InputError, UsageError
from ptq_validators.launch import slurm
from ptq_validators.launch.runner import Runner
from ptq_validators.launch.supervise import write_atomic

JOBS_FILE = "jobs.json"
SCHEMA_VERSION = 1
FAILED_SLURM = frozenset(
    {
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)


@dataclass
class Step:
    """One process (``pid``) or one SLURM job (``slurm_id``) of a launch."""

    name: str
    argv: list[str]
    log: str
    pid: int | None = None
    start_time: str = ""
    rc_file: str | None = None
    slurm_id: str | None = None
    state: str = "UNKNOWN"
    exit_code: int | None = None


@dataclass
class JobRecord:
    """One launch: ``mode`` is bare, docker or slurm; ``status`` the last computed status."""

    id: str
    kind: str
    mode: str
    workspace: str
    submitted: str
    steps: list[Step] = field(default_factory=list)
    status: str = "submitted"
    cancelled: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        steps = [Step(**s) for s in data.get("steps", [])]
        return cls(**{**data, "steps": steps})


def new_job_id() -> str:
    return f"j{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


@contextmanager
def _locked(workspace: Path) -> Iterator[None]:
    with open(workspace / f".{JOBS_FILE}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read_records(workspace: Path) -> list[JobRecord]:
    path = workspace / JOBS_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [JobRecord.from_dict(j) for j in data["jobs"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a ptqv job file ({exc})", hint="restore or delete the file") from None


def save_record(record: JobRecord) -> None:
    """Insert or replace ``record`` in its workspace's job file."""
    workspace = Path(record.workspace)
    with _locked(workspace):
        records = [r for r in read_records(workspace) if r.id != record.id] + [record]
        records.sort(key=lambda r: r.submitted)
        payload = {"schema_version": SCHEMA_VERSION, "jobs": [asdict(r) for r in records]}
        write_atomic(workspace / JOBS_FILE, json.dumps(payload, indent=2) + "\n")


def all_records(root: Path) -> list[JobRecord]:
    """Every record under a workspaces root (``<root>/<session>/<variant>/jobs.json``) or in one
    workspace directory."""
    files = [root / JOBS_FILE] if (root / JOBS_FILE).is_file() else sorted(root.glob(f"*/*/{JOBS_FILE}"))
    return sorted((r for f in files for r in read_records(f.parent)), key=lambda r: r.submitted)


def find_record(root: Path, job_id: str) -> JobRecord:
    for record in all_records(root):
        if record.id == job_id:
            return record
    raise InputError(f"no job {job_id!r} under {root}", hint="list the jobs with `ptqv jobs list --root DIR`")


def _step_state(runner: Runner, step: Step) -> None:
    if step.slurm_id:
        step.state = slurm.job_state(runner, step.slurm_id)
        return
    rc_path = Path(step.rc_file) if step.rc_file else None
    if rc_path and rc_path.is_file():
        step.exit_code = int(rc_path.read_text().strip())
        step.state = "COMPLETED" if step.exit_code == 0 else "FAILED"
    elif step.pid and runner.alive(step.pid, step.start_time):
        step.state = "RUNNING"
    else:
        step.state = "LOST"  # gone without an exit code (killed with SIGKILL, machine rebooted)


def overall_status(record: JobRecord) -> str:
    """One word for the launch: running, succeeded, failed, cancelled, lost or unknown."""
    states = [s.state for s in record.steps]
    if record.cancelled:
        return "cancelled"
    if any(s in FAILED_SLURM for s in states):
        return "failed"
    if "CANCELLED" in states:
        return "cancelled"
    if any(s not in slurm.TERMINAL and s not in ("LOST", "UNKNOWN") for s in states):
        return "running"
    if states and all(s == "COMPLETED" for s in states):
        return "succeeded"
    return "lost" if "LOST" in states else "unknown"


def refresh(runner: Runner, record: JobRecord) -> JobRecord:
    """Recompute every step's state and the overall status, and save the record."""
    for step in record.steps:
        _step_state(runner, step)
    record.status = overall_status(record)
    save_record(record)
    return record


def cancel(runner: Runner, record: JobRecord) -> JobRecord:
    """Stop what still runs: ``scancel`` for SLURM steps, SIGTERM to the process group otherwise."""
    record = refresh(runner, record)
    if record.status not in ("running", "unknown"):
        raise UsageError(f"job {record.id} is {record.status}; nothing to cancel")
    live = [s.slurm_id for s in record.steps if s.slurm_id and s.state not in slurm.TERMINAL]
    if live:
        slurm.cancel(runner, live)
    for step in record.steps:
        if step.pid and step.state == "RUNNING":
            runner.signal_group(step.pid, signal.SIGTERM)
    record.cancelled = True
    return refresh(runner, record)


def log_paths(record: JobRecord) -> list[tuple[str, Path]]:
    return [(s.name, Path(s.log)) for s in record.steps]
