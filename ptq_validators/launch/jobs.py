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
from pathlib import Path, PurePosixPath
from typing import Any

from ptq_validators.errors import InputError, RemoteError, UsageError
from ptq_validators.launch import slurm
from ptq_validators.launch.runner import Runner
from ptq_validators.launch.supervise import write_atomic

JOBS_FILE = "jobs.json"
SCHEMA_VERSION = 2
# states that end a step for good: the scheduler's terminal ones, and a process gone without a code
FINAL = slurm.TERMINAL | {"LOST"}
FAILED = FINAL - {"COMPLETED", "CANCELLED", "LOST"}


@dataclass
class Step:
    """One process (``pid``) or one SLURM job (``slurm_id``) of a launch. ``rc_file`` is where the
    step writes its own exit code (the supervisor for a process, the job script's EXIT trap for a
    SLURM job): when it exists, it wins over the scheduler."""

    name: str
    argv: list[str]
    log: str
    pid: int | None = None
    start_time: str = ""
    rc_file: str | None = None
    slurm_id: str | None = None
    state: str = "UNKNOWN"
    exit_code: int | None = None
    reason: str = ""
    node: str = ""
    source: str = ""  # where the state came from: rc file, sacct, squeue or process


@dataclass
class JobRecord:
    """One launch: ``mode`` is bare, docker or slurm; ``status`` the last computed status.

    ``host`` is where it runs (this machine's name for a local launch); ``cluster`` and ``user``
    are set for a launch on a cluster from ``clusters.yaml`` (``cluster_config`` is that file), and
    then every path in the record is a path on the cluster. ``unknown_since`` is when polls
    started failing (the states are the last ones known), ``failed_polls`` how many in a row.
    """

    id: str
    kind: str
    mode: str
    workspace: str
    submitted: str
    host: str = "localhost"
    user: str | None = None
    cluster: str | None = None
    cluster_config: str | None = None
    steps: list[Step] = field(default_factory=list)
    status: str = "submitted"
    cancelled: bool = False
    unknown_since: str | None = None
    failed_polls: int = 0
    record_dir: str = ""

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
        records = [JobRecord.from_dict(j) for j in data["jobs"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a ptqv job file ({exc})", hint="restore or delete the file") from None
    for record in records:
        record.record_dir = str(workspace)
    return records


def save_record(record: JobRecord) -> None:
    """Insert or replace ``record`` in the job file of its record directory (the workspace for a
    local launch; the local twin of the remote workspace for a cluster launch)."""
    workspace = Path(record.record_dir or record.workspace)
    record.record_dir = str(workspace)
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


def _own_exit_code(runner: Runner, step: Step) -> int | None:
    """The exit code the step wrote itself (first word of its rc file), None when not yet."""
    text = runner.read_text(PurePosixPath(step.rc_file)) if step.rc_file else None
    word = text.split()[0] if text and text.split() else ""
    return int(word) if word.lstrip("-").isdigit() else None


def _refresh_steps(runner: Runner, record: JobRecord) -> None:
    waiting: list[tuple[Step, int | None]] = []
    for step in record.steps:
        if step.state in FINAL:
            continue  # a final state never changes: no need to ask again
        code = _own_exit_code(runner, step)
        if step.slurm_id:
            if code == 0:
                step.state, step.exit_code, step.source = "COMPLETED", 0, "rc file"
            else:
                waiting.append((step, code))
            continue
        if code is None and step.pid and runner.alive(step.pid, step.start_time):
            step.state, step.source = "RUNNING", "process"
            continue
        if code is None:
            # it may have ended between the two reads: its supervisor writes the code, then exits
            code = _own_exit_code(runner, step)
        if code is None:
            step.state, step.source = "LOST", "process"  # gone without an exit code (SIGKILL, reboot)
        else:
            step.state, step.exit_code, step.source = (
                ("COMPLETED" if code == 0 else "FAILED"),
                code,
                "rc file",
            )
    if not waiting:
        return
    ids = [s.slurm_id for s, _ in waiting if s.slurm_id]
    infos = slurm.query(runner, ids, PurePosixPath(record.workspace))
    for step, code in waiting:
        info = infos.get(step.slurm_id or "")
        if code is None and info is not None and info.state in FINAL:
            code = _own_exit_code(runner, step)  # it may have ended between the two reads
        if info is not None:
            step.reason, step.node, step.source = info.reason, info.node or step.node, info.source
        if code == 0:
            step.state, step.exit_code, step.source = "COMPLETED", 0, "rc file"
        elif code is not None:
            # the script ended non-zero: failed, unless the scheduler names a more specific end
            # (TIMEOUT, CANCELLED...) or has not caught up yet (COMPLETING: ask again later)
            step.exit_code = code
            if info is None or info.state == "COMPLETED":
                step.state = "FAILED"
            else:
                step.state = info.state
        elif info is not None:
            step.state = info.state
            if info.state in FINAL:
                # COMPLETED means the script exited 0 (squeue has no exit code column)
                step.exit_code = 0 if info.state == "COMPLETED" and info.exit_code is None else info.exit_code
        # neither the job nor the scheduler knows it: keep the last known state


def overall_status(record: JobRecord) -> str:
    """One word for the launch: running, succeeded, failed, cancelled, lost or unknown."""
    states = [s.state for s in record.steps]
    if record.cancelled:
        return "cancelled"
    if any(s in FAILED for s in states):
        return "failed"
    if "CANCELLED" in states:
        return "cancelled"
    if any(s not in FINAL and s != "UNKNOWN" for s in states):
        return "running"
    if states and all(s == "COMPLETED" for s in states):
        return "succeeded"
    return "lost" if "LOST" in states else "unknown"


def refresh(runner: Runner, record: JobRecord) -> JobRecord:
    """Recompute every step's state and the overall status, and save the record.

    When the runner cannot be reached (``RemoteError``), the last known states stay, the record
    notes since when nothing is known and how many polls failed, and the error is raised again.
    """
    try:
        _refresh_steps(runner, record)
    except RemoteError:
        record.unknown_since = record.unknown_since or time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record.failed_polls += 1
        save_record(record)
        raise
    record.unknown_since, record.failed_polls = None, 0
    record.status = overall_status(record)
    save_record(record)
    return record


def cancel(runner: Runner, record: JobRecord) -> JobRecord:
    """Stop what still runs: ``scancel`` for SLURM steps, SIGTERM to the process group otherwise."""
    record = refresh(runner, record)
    if record.status not in ("running", "unknown"):
        raise UsageError(f"job {record.id} is {record.status}; nothing to cancel")
    live = [s.slurm_id for s in record.steps if s.slurm_id and s.state not in FINAL]
    if live:
        slurm.cancel(runner, live)
    for step in record.steps:
        if step.pid and step.state == "RUNNING":
            runner.signal_group(step.pid, signal.SIGTERM)
    record.cancelled = True
    return refresh(runner, record)


def read_log(runner: Runner, step: Step, tail: int | None = None) -> list[str] | None:
    """The lines of ``step``'s log (the last ``tail`` of them), None when there is no log yet."""
    text = runner.read_text(PurePosixPath(step.log), max_bytes=None if tail is None else tail * 1024)
    if text is None:
        return None
    lines = text.splitlines()
    return lines[-tail:] if tail else lines
