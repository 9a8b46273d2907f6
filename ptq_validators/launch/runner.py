"""Where commands run. ``Runner`` is the interface; ``LocalRunner`` runs on this machine.

Commands are argv lists, never shell strings (no ``shell=True``). An SSH runner can implement
the same three operations later: ``run`` (wait, capture), ``spawn`` (detach, log to a file,
record the exit code) and ``signal_group``/``alive`` (cancel and poll by PID).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Completed:
    """A finished command: exit code and captured output."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Spawned:
    """A detached process: its PID (also its process-group id) and its start time (to tell it
    from a later process that reuses the PID)."""

    pid: int
    start_time: str


class Runner(Protocol):
    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Completed: ...

    def spawn(self, argv: Sequence[str], *, cwd: Path, log: Path, rc_file: Path) -> Spawned: ...

    def alive(self, pid: int, start_time: str) -> bool: ...

    def signal_group(self, pid: int, sig: int) -> bool: ...


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None when the PID is gone or a
    zombie (where PID 1 is not an init, exited processes stay zombies for a while)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    return None if fields[0] == "Z" else fields[19]


class LocalRunner:
    """Runs commands on this machine."""

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Completed:
        try:
            done = subprocess.run(
                list(argv),
                cwd=cwd,
                env=None if env is None else dict(env),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            return Completed(127, "", f"{argv[0]}: command not found")
        return Completed(done.returncode, done.stdout, done.stderr)

    def spawn(self, argv: Sequence[str], *, cwd: Path, log: Path, rc_file: Path) -> Spawned:
        """Start ``argv`` detached (own session, survives this process) through
        ``ptq_validators.launch.supervise``, which logs to ``log`` and writes the exit code."""
        supervisor = [
            sys.executable,
            "-m",
            "ptq_validators.launch.supervise",
            "--log",
            str(log),
            "--rc-file",
            str(rc_file),
            "--cwd",
            str(cwd),
            "--",
            *argv,
        ]
        env = dict(os.environ)
        # the supervisor must import this very package, also from a source checkout
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        done = subprocess.run(
            supervisor, capture_output=True, text=True, env=env, check=False, stdin=subprocess.DEVNULL
        )
        if done.returncode:
            raise OSError(f"could not start the job: {done.stderr.strip()}")
        pid = int(done.stdout.split()[0])
        return Spawned(pid, process_start_time(pid) or "")

    def alive(self, pid: int, start_time: str) -> bool:
        now = process_start_time(pid)
        return now is not None and (not start_time or now == start_time)

    def signal_group(self, pid: int, sig: int = signal.SIGTERM) -> bool:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return False
        return True
