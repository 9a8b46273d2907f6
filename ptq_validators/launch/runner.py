"""Where commands run and files live. ``Runner`` is the interface; ``LocalRunner`` is this machine.

One interface for processes *and* files, so launch, jobs, lint and env probing do not care
whether they act here or on a cluster over SSH (``ptq_validators.remote.transport`` implements
the same methods there):

* ``run``: an argv list (never a shell string), waited for under a timeout, output captured.
  A command that does not exist is exit 127 (the shell's answer, a probe can report it); a
  command that outlives its timeout is a ``RemoteError`` (exit 4) naming it.
* ``spawn`` / ``alive`` / ``signal_group``: a detached process that logs to a file and records
  its exit code in another, polled and cancelled by PID.
* ``read_text`` / ``write_text`` / ``stat`` / ``list_dir`` / ``mkdir``: files on the runner's side.
* ``which``: a tool on the runner's PATH; ``host``: where it all happens (``localhost`` here).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Protocol

from ptq_validators.errors import RemoteError
from ptq_validators.io.source import FileStat

DEFAULT_TIMEOUT_S = 60.0
NOT_FOUND = 127


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
    host: str

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: PurePath | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> Completed: ...

    def which(self, tool: str) -> str | None: ...

    def spawn(self, argv: Sequence[str], *, cwd: PurePath, log: PurePath, rc_file: PurePath) -> Spawned: ...

    def alive(self, pid: int, start_time: str) -> bool: ...

    def signal_group(self, pid: int, sig: int) -> bool: ...

    def read_text(self, path: PurePath, *, max_bytes: int | None = None) -> str | None: ...

    def write_text(self, path: PurePath, text: str, *, mode: int = 0o644) -> None: ...

    def stat(self, path: PurePath) -> FileStat | None: ...

    def list_dir(self, path: PurePath) -> list[str]: ...

    def mkdir(self, path: PurePath) -> None: ...


class CommandTimeout(RemoteError):
    """A command that outlived its timeout (exit 4); the host itself answered."""


def timed_out(argv: Sequence[str], timeout: float, host: str) -> CommandTimeout:
    """The error for a command that outlived its timeout (the same words on every runner)."""
    return CommandTimeout(
        f"`{shlex.join(argv)}` on {host} did not finish within {timeout:g} s",
        hint="the tool hangs or the machine is overloaded; run the command by hand to see why",
    )


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
    """Runs commands and touches files on this machine. ``environ`` is the environment the
    commands see and whose PATH ``which`` searches (tests substitute it)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.host = socket.gethostname().split(".")[0] or "localhost"

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: PurePath | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> Completed:
        exe = self.which(argv[0]) if "/" not in argv[0] else argv[0]
        if exe is None:
            return Completed(NOT_FOUND, "", f"{argv[0]}: command not found")
        try:
            done = subprocess.run(
                [exe, *argv[1:]],
                cwd=cwd,
                env={**self.environ, **(env or {})},
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise timed_out(argv, timeout, self.host) from None
        except OSError as exc:
            return Completed(126 if exc.errno != 2 else NOT_FOUND, "", f"{argv[0]}: {exc.strerror}")
        return Completed(done.returncode, done.stdout, done.stderr)

    def which(self, tool: str) -> str | None:
        return shutil.which(tool, path=self.environ.get("PATH", ""))

    def spawn(self, argv: Sequence[str], *, cwd: PurePath, log: PurePath, rc_file: PurePath) -> Spawned:
        """Start ``argv`` detached (own session, survives this process) through
        ``ptq_validators.launch.supervise``, which logs to ``log`` and writes the exit code."""
        supervisor = [sys.executable, "-m", "ptq_validators.launch.supervise"]
        supervisor += ["--log", str(log), "--rc-file", str(rc_file), "--cwd", str(cwd), "--", *argv]
        # the supervisor must import this very package, also from a source checkout
        package_root = str(Path(__file__).resolve().parents[2])
        env = {"PYTHONPATH": os.pathsep.join(p for p in (package_root, self.environ.get("PYTHONPATH")) if p)}
        done = self.run(supervisor, env=env, timeout=DEFAULT_TIMEOUT_S)
        if done.returncode:
            raise RemoteError(
                f"could not start `{shlex.join(argv)}`: {done.stderr.strip()}", hint="see the error above"
            )
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

    def read_text(self, path: PurePath, *, max_bytes: int | None = None) -> str | None:
        """The file's text (only its last ``max_bytes``), or None when it does not exist (yet)."""
        try:
            with open(path, "rb") as handle:
                if max_bytes is not None:
                    handle.seek(max(0, os.fstat(handle.fileno()).st_size - max_bytes))
                return handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None

    def write_text(self, path: PurePath, text: str, *, mode: int = 0o644) -> None:
        from ptq_validators.launch.supervise import write_atomic

        write_atomic(Path(path), text)
        Path(path).chmod(mode)

    def stat(self, path: PurePath) -> FileStat | None:
        try:
            st = Path(path).stat()
        except FileNotFoundError:
            return None
        return FileStat(st.st_size, st.st_mtime)

    def list_dir(self, path: PurePath) -> list[str]:
        try:
            return sorted(p.name for p in Path(path).iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def mkdir(self, path: PurePath) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
