"""SLURM through its command-line tools: submit with dependencies, read job states, cancel.

All calls go through a ``Runner`` (argv lists), so the same code works locally and, later, over
SSH. States are SLURM's own words (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED...).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ptq_validators.errors import RemoteError
from ptq_validators.launch.runner import Runner

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
_JOB_ID = re.compile(r"^(\d+)(?:;\S+)?$")


def sbatch_argv(script: Path, after_ok: str | None = None) -> list[str]:
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


def submit(runner: Runner, script: Path, *, cwd: Path, after_ok: str | None = None) -> str:
    """Submit ``script`` from ``cwd`` (relative #SBATCH --output paths resolve there); the job id."""
    done = runner.run(sbatch_argv(script, after_ok), cwd=cwd, timeout=60)
    if done.returncode:
        raise RemoteError(
            f"sbatch {script.name} failed (exit {done.returncode}): {done.stderr.strip()}",
            hint="read the sbatch error; `sinfo -o '%P %G'` shows partitions and GPUs",
        )
    return parse_job_id(done.stdout)


def job_state(runner: Runner, job_id: str) -> str:
    """The job's state from ``squeue`` (finished jobs stay visible for MinJobAge), else ``sacct``,
    else ``UNKNOWN``. ``CANCELLED by 0`` is reduced to ``CANCELLED``."""
    done = runner.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], timeout=30)
    state = (
        done.stdout.strip().splitlines()[0].strip() if done.returncode == 0 and done.stdout.strip() else ""
    )
    if not state:
        done = runner.run(["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State"], timeout=30)
        if done.returncode == 0 and done.stdout.strip():
            state = done.stdout.strip().splitlines()[0]
    return state.split()[0] if state else "UNKNOWN"


def cancel(runner: Runner, job_ids: Sequence[str]) -> None:
    done = runner.run(["scancel", *job_ids], timeout=60)
    if done.returncode:
        raise RemoteError(f"scancel {' '.join(job_ids)} failed: {done.stderr.strip()}", hint="check squeue")
