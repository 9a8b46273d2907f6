"""The shell lines the SSH transports send (every value quoted with ``shlex.quote``), and
``ShellRunner``: the ``Runner`` methods that are such a line, shared by both transports.

In: an argv list (and a working directory, environment, log and exit-code file). Out: one line
for the remote login shell. Nothing here interprets user text as shell syntax: a command that
needs pipes is given as ``bash -c '...'`` by the caller.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePath

from ptq_validators.errors import RemoteError, UsageError
from ptq_validators.launch.runner import DEFAULT_TIMEOUT_S, Completed, FileStat, Spawned

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The detached wrapper: runs "$@" in the background of a new session, forwards a SIGTERM sent
# to the group (a cancel) without dying itself, and writes the command's exit code atomically.
_SUPERVISE = (
    'rc_file=$1; shift; printf "%s %s\\n" $$ "$(cut -d" " -f22 /proc/$$/stat)" >"$rc_file.pid"; '
    '"$@" & c=$!; '
    "trap 'kill -TERM \"$c\" 2>/dev/null' TERM; "
    'while :; do wait "$c"; rc=$?; kill -0 "$c" 2>/dev/null || break; done; '
    'printf "%s\\n" "$rc" >"$rc_file.tmp" && mv -f "$rc_file.tmp" "$rc_file"'
)


def command_line(
    argv: Sequence[str],
    *,
    cwd: PurePath | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """``cd CWD && exec [timeout T] env K=V ARGV...``, each word quoted. With ``timeout`` the
    command is also killed on the far side when it overruns: closing an SSH channel does not."""
    if not argv:
        raise UsageError("no command to run")
    words = list(argv)
    if env:
        bad = [k for k in env if not _ENV_NAME.match(k)]
        if bad:
            raise UsageError(f"not an environment variable name: {bad[0]!r}")
        words = ["env", *(f"{k}={v}" for k, v in env.items()), *words]
    if timeout is not None:
        words = ["timeout", "-k", "5", f"{timeout:g}", *words]
    line = "exec " + shlex.join(words)
    return f"cd {shlex.quote(str(cwd))} && {line}" if cwd else line


def spawn_line(argv: Sequence[str], *, cwd: PurePath, log: PurePath, rc_file: PurePath) -> str:
    """Start ``argv`` detached in its own session (so ``kill -- -PID`` reaches the whole job),
    logging to ``log``; prints ``PID START_TIME`` (field 22 of /proc/PID/stat), which the
    wrapper writes to ``RC_FILE.pid`` (``setsid`` may fork, so ``$!`` is not the job's PID)."""
    q = shlex.quote
    pid_file = q(f"{rc_file}.pid")
    return (
        f"cd {q(str(cwd))} && rm -f {pid_file} && "
        f"{{ setsid bash -c {q(_SUPERVISE)} ptqv {q(str(rc_file))} {shlex.join(argv)} "
        f">>{q(str(log))} 2>&1 </dev/null & }} && "
        f"for _ in $(seq 100); do [ -s {pid_file} ] && break; sleep 0.05; done; cat {pid_file}"
    )


class ShellRunner:
    """The ``Runner`` methods that are one shell line on the far side, for any transport that
    can run a line (``exec_line``). Subclasses set ``host`` and may override the file methods
    with something better than a shell command (SFTP)."""

    host: str

    def exec_line(
        self,
        line: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        argv: Sequence[str] | None = None,
        stdin: bytes = b"",
    ) -> Completed:
        raise NotImplementedError

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: PurePath | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> Completed:
        return self.exec_line(command_line(argv, cwd=cwd, env=env, timeout=timeout + 1), timeout, argv)

    def which(self, tool: str) -> str | None:
        done = self.exec_line(f"command -v {shlex.quote(tool)}", 30)
        path = done.stdout.strip()
        return path if done.returncode == 0 and path.startswith("/") else None

    def spawn(self, argv: Sequence[str], *, cwd: PurePath, log: PurePath, rc_file: PurePath) -> Spawned:
        done = self.exec_line(spawn_line(argv, cwd=cwd, log=log, rc_file=rc_file), 60, argv)
        words = done.stdout.split()
        if done.returncode or len(words) < 2 or not words[0].isdigit():
            raise RemoteError(
                f"could not start `{shlex.join(argv)}` on {self.host} (exit {done.returncode}): "
                f"{done.stderr.strip()}",
                hint="check the workspace path and that bash and setsid exist there",
            )
        return Spawned(int(words[0]), words[1])

    def alive(self, pid: int, start_time: str) -> bool:
        done = self.exec_line(f"awk '$3 != \"Z\" {{print $22}}' /proc/{int(pid)}/stat 2>/dev/null", 30)
        now = done.stdout.strip()
        return bool(now) and (not start_time or now == start_time)

    def signal_group(self, pid: int, sig: int) -> bool:
        return self.exec_line(f"kill -{int(sig)} -- -{int(pid)}", 30).returncode == 0

    def mkdir(self, path: PurePath) -> None:
        done = self.exec_line(f"mkdir -p -- {shlex.quote(str(path))}", 30)
        if done.returncode:
            raise RemoteError(f"{self.host}: cannot create {path}: {done.stderr.strip()}")

    # files through shell commands (the OpenSSH transport uses these)

    def read_text(self, path: PurePath, *, max_bytes: int | None = None) -> str | None:
        q = shlex.quote(str(path))
        tool = f"tail -c {int(max_bytes)}" if max_bytes is not None else "cat"
        done = self.exec_line(f"[ -e {q} ] || exit 3; {tool} -- {q}", 120)
        if done.returncode == 3:
            return None
        if done.returncode:
            raise RemoteError(f"{self.host}:{path}: cannot read: {done.stderr.strip()}")
        return done.stdout

    def write_text(self, path: PurePath, text: str, *, mode: int = 0o644) -> None:
        self.write_bytes(path, text.encode("utf-8"), mode=mode)

    def write_bytes(self, path: PurePath, data: bytes, *, mode: int = 0o644) -> None:
        q, tmp = shlex.quote(str(path)), shlex.quote(f"{path}.ptqv-tmp")
        done = self.exec_line(f"cat >{tmp} && chmod {mode:o} {tmp} && mv -f {tmp} {q}", 300, stdin=data)
        if done.returncode:
            raise RemoteError(f"{self.host}:{path}: cannot write: {done.stderr.strip()}")

    def set_mtime(self, path: PurePath, mtime: float) -> None:
        done = self.exec_line(f"touch -m -d @{int(mtime)} -- {shlex.quote(str(path))}", 30)
        if done.returncode:
            raise RemoteError(f"{self.host}:{path}: cannot set its time: {done.stderr.strip()}")

    def stat(self, path: PurePath) -> FileStat | None:
        done = self.exec_line(f"stat -L -c '%s %Y' -- {shlex.quote(str(path))} 2>/dev/null", 30)
        words = done.stdout.split()
        if done.returncode or len(words) != 2:
            return None
        return FileStat(int(words[0]), float(words[1]))

    def list_dir(self, path: PurePath) -> list[str]:
        done = self.exec_line(f"ls -A1 -- {shlex.quote(str(path))} 2>/dev/null", 30)
        return sorted(done.stdout.splitlines()) if done.returncode == 0 else []
