"""Run one command detached from the caller, log its output and record its exit code.

Usage: ``python -m ptq_validators.launch.supervise --log LOG --rc-file RC --cwd DIR -- ARGV...``
Prints the PID of the detached supervisor (the leader of a new session, so ``killpg(pid)``
reaches the whole job) and returns at once. The supervisor ignores SIGTERM itself, waits for the
command, and writes its exit code to RC atomically: so status survives the launching process.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory + rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="supervise")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--rc-file", type=Path, required=True)
    parser.add_argument("--cwd", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")

    pid = os.fork()
    if pid:  # the caller's side: report the detached PID and return
        print(pid, flush=True)
        return 0
    os.setsid()
    log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    # a cancel signals the whole group: the command gets SIGTERM, the supervisor stays to record it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        rc = subprocess.call(
            command, cwd=args.cwd, preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)
        )
    except OSError as exc:
        print(f"supervise: cannot run {command[0]}: {exc}", flush=True)
        rc = 127
    # a command killed by signal N reports -N; record it the shell's way (128 + N)
    write_atomic(args.rc_file, f"{rc if rc >= 0 else 128 - rc}\n")
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
