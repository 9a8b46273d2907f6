"""SLURM through its command-line tools: submit with dependencies, read job states, cancel.

All calls go through a ``Runner`` (argv lists), so the same code works locally and over SSH.
States are SLURM's own words (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED...).

Reading a state (``query``): ``sacct -P`` first (whole state words; ``-X`` drops the step rows),
because ``squeue`` forgets a job after MinJobAge and lags in COMPLETING; ``squeue`` for what
sacct cannot say (accounting disabled, a job sacct has not caught up with: it can read PENDING
for a moment after the job ended) and for the pending reason and node. ``CANCELLED by 1001`` is
reduced to its first word.

Job ids are not unique over time: a controller whose state was reset (a rebuilt cluster, a
wrapped MaxJobId) numbers from 1 again while slurmdbd keeps the old jobs, and until the new job's
record reaches slurmdbd, ``sacct -j ID`` answers with an old job of that number. So ``query`` asks
with ``-D`` (every job of that number) and keeps only rows submitted from the job's workspace.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath

from ptq_validators.errors import RemoteError
from ptq_validators.launch.runner import Runner

# every state after which the job's processes are gone; COMPLETING is not one of them
TERMINAL = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
SACCT_FIELDS = ("JobIDRaw", "State", "ExitCode", "Elapsed", "NodeList", "Reason", "WorkDir")
_JOB_ID = re.compile(r"^(\d+)(?:;\S+)?$")


@dataclass(frozen=True)
class JobInfo:
    """What the scheduler says about one job. ``exit_code`` is the script's code (None when the
    scheduler has none); ``source`` is ``sacct`` or ``squeue``."""

    job_id: str
    state: str
    exit_code: int | None = None
    reason: str = ""
    node: str = ""
    elapsed: str = ""
    source: str = "sacct"


def log_file(logs: PurePath, job_name: str, job_id: str) -> PurePath:
    """The job's log (``#SBATCH --output=logs/%x_%j.log`` in the rendered script)."""
    return logs / f"{job_name}_{job_id}.log"


def result_file(logs: PurePath, job_name: str, job_id: str) -> PurePath:
    """The job's own result file, written by the rendered script's EXIT trap: ``CODE EPOCH``."""
    return logs / f"{job_name}_{job_id}.result"


def sbatch_argv(script: PurePath, after_ok: str | None = None) -> list[str]:
    """The sbatch command for ``script``; with ``after_ok``, it starts only after that job succeeded."""
    argv = ["sbatch", "--parsable"]
    if after_ok:
        argv.append(f"--dependency=afterok:{after_ok}")
    return [*argv, str(script)]


def parse_job_id(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` output (``ID`` or ``ID;cluster``)."""
    match = _JOB_ID.match(stdout.strip().splitlines()[-1].strip() if stdout.strip() else "")
    if not match:
        raise RemoteError(
            f"sbatch printed no job id: {stdout.strip()!r}", hint="check the sbatch output above"
        )
    return match.group(1)


def submit(runner: Runner, script: PurePath, *, cwd: PurePath, after_ok: str | None = None) -> str:
    """Submit ``script`` from ``cwd`` (relative #SBATCH --output paths resolve there); the job id."""
    done = runner.run(sbatch_argv(script, after_ok), cwd=cwd, timeout=60)
    if done.returncode:
        raise RemoteError(
            f"`sbatch {script}` on {runner.host} failed (exit {done.returncode}): {done.stderr.strip()}",
            hint="read the sbatch error; `sinfo -o '%P %G'` shows partitions and GPUs",
        )
    return parse_job_id(done.stdout)


def state_word(text: str) -> str:
    """``CANCELLED by 1001`` → ``CANCELLED``; a truncated ``OUT_OF_ME+`` stays what it is (we
    always ask with -P, so it cannot occur)."""
    words = text.split()
    return words[0] if words else ""


def parse_exit_code(text: str) -> int | None:
    """sacct's ``code:signal`` → the code (a signal N reads as 128 + N, the shell's way)."""
    code, _, sig = text.partition(":")
    if not code.isdigit():
        return None
    return 128 + int(sig) if sig.isdigit() and int(sig) else int(code)


def same_directory(recorded: str, workspace: PurePath) -> bool:
    """Whether sacct's WorkDir is ``workspace``. sbatch records its working directory resolved,
    so a symlinked parent (a /home that links to /lustre) differs: the last two parts
    (``<session>/<variant>``, which ptqv names uniquely) are what must agree."""
    recorded_parts = PurePosixPath(recorded).parts
    return bool(recorded_parts) and recorded_parts[-2:] == PurePosixPath(workspace).parts[-2:]


def parse_sacct(stdout: str, workspace: PurePath | None = None) -> dict[str, JobInfo]:
    """Rows of ``sacct -P -n -X -o JobIDRaw,State,ExitCode,Elapsed,NodeList,Reason,WorkDir``;
    with ``workspace``, only rows submitted from it (another job of the same number is not ours)
    and, of several, the last (sacct lists them in submission order)."""
    infos = {}
    for line in stdout.splitlines():
        fields = line.split("|")
        if len(fields) < len(SACCT_FIELDS) or not fields[0].strip():
            continue
        job_id, state, exit_code, elapsed, node, reason = (f.strip() for f in fields[:6])
        if workspace is not None and not same_directory("|".join(fields[6:]).strip(), workspace):
            continue
        infos[job_id] = JobInfo(
            job_id, state_word(state), parse_exit_code(exit_code), reason, node, elapsed, "sacct"
        )
    return infos


def parse_squeue(stdout: str) -> dict[str, JobInfo]:
    """Rows of ``squeue -h -t all -o %i|%T|%r|%N``."""
    infos = {}
    for line in stdout.splitlines():
        fields = [*line.split("|"), "", "", ""][:4]
        if fields[0].strip():
            job_id, state, reason, node = (f.strip() for f in fields)
            infos[job_id] = JobInfo(job_id, state_word(state), None, reason, node, "", "squeue")
    return infos


def query(runner: Runner, job_ids: Sequence[str], workspace: PurePath | None = None) -> dict[str, JobInfo]:
    """The scheduler's word on each job it knows (a job neither tool knows is left out). With
    ``workspace`` (where the jobs were submitted from), sacct's rows for other jobs that carried
    the same number are left out; squeue only knows live jobs, which are unique.

    A runner that cannot be reached raises ``RemoteError``; a tool that answers with an error is
    treated as not knowing.
    """
    ids = ",".join(job_ids)
    argv = ["sacct", "-P", "-n", "-X", *(["-D"] if workspace is not None else []), "-j", ids]
    sacct = runner.run([*argv, "-o", ",".join(SACCT_FIELDS)], timeout=30)
    infos = parse_sacct(sacct.stdout, workspace) if sacct.returncode == 0 else {}
    unsure = [j for j in job_ids if j not in infos or infos[j].state not in TERMINAL]
    if unsure:
        squeue = runner.run(
            ["squeue", "-h", "-t", "all", "-j", ",".join(unsure), "-o", "%i|%T|%r|%N"], timeout=30
        )
        queued = parse_squeue(squeue.stdout) if squeue.returncode == 0 else {}
        for job_id in unsure:
            seen = queued.get(job_id)
            if seen is None:
                continue
            known = infos.get(job_id)
            if known is None or seen.state in TERMINAL:
                infos[job_id] = seen  # sacct lags or accounting is off: squeue is newer
            else:
                infos[job_id] = JobInfo(
                    job_id, known.state, known.exit_code, seen.reason, seen.node or known.node, known.elapsed
                )
    return infos


def cancel(runner: Runner, job_ids: Sequence[str]) -> None:
    done = runner.run(["scancel", *job_ids], timeout=60)
    if done.returncode:
        raise RemoteError(
            f"`scancel {' '.join(job_ids)}` on {runner.host} failed: {done.stderr.strip()}",
            hint="check squeue",
        )
