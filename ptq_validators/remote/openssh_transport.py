"""The MFA transport: the system ``ssh`` binary through an already open ControlMaster.

In: a ``Cluster`` with ``transport: openssh``. Out: a ``Runner`` whose every command goes through
the user's live master socket (``ssh -o ControlPath=... -o BatchMode=yes``): the person opened it
once and answered the MFA prompt; ptqv never prompts and never opens a new interactive login.
When no master is alive, ``RemoteError`` (exit 4) carries the exact command that opens one.
``ssh`` itself reads ``~/.ssh/config`` (aliases, ProxyJump, Include), so the destination is the
``login_node`` as written; files go through shell commands (``ShellRunner``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence

from ptq_validators.errors import RemoteError
from ptq_validators.launch.runner import DEFAULT_TIMEOUT_S, Completed, timed_out
from ptq_validators.remote.config import Cluster
from ptq_validators.remote.shell import ShellRunner

DEFAULT_CONTROL_PATH = "~/.ssh/ptqv-cm-%C"
SSH_FAILED = 255  # ssh's own exit code for a connection or protocol failure


class OpenSSHRunner(ShellRunner):
    """A ``Runner`` through a live OpenSSH ControlMaster. ``check()`` runs on creation."""

    def __init__(self, cluster: Cluster, *, ssh: str = "ssh", connect_timeout: float = 15) -> None:
        self.cluster = cluster
        self.host = cluster.login_node
        self.user = cluster.user
        self.ssh = ssh
        self.control_path = os.path.expanduser(cluster.control_path or DEFAULT_CONTROL_PATH)
        self.connect_timeout = connect_timeout
        self.check()

    def _target(self) -> list[str]:
        """The options that name the master (ssh hashes host, port and user into ``%C``)."""
        opts = ["-o", f"ControlPath={self.control_path}"]
        if self.cluster.port:
            opts += ["-p", str(self.cluster.port)]
        if self.cluster.user:
            opts += ["-l", self.cluster.user]
        return opts

    def _options(self) -> list[str]:
        return [*self._target(), "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(self.connect_timeout)}"]

    def master_command(self) -> str:
        """The command a person runs (and answers MFA in) to open the master ptqv reuses."""
        argv = [
            self.ssh,
            "-fN",
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=8h",
            *self._target(),
            self.host,
        ]
        return shlex.join(argv)

    def check(self) -> None:
        """Exit 4 with the command to open a master when none is alive (``ssh -O check``)."""
        argv = [self.ssh, "-O", "check", *self._options(), self.host]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.connect_timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise timed_out(argv, self.connect_timeout, "localhost") from None
        except FileNotFoundError:
            raise RemoteError(f"{self.ssh}: not installed", hint="install the OpenSSH client") from None
        if done.returncode:
            raise RemoteError(
                f"no live ControlMaster for {self.cluster.name} ({self.host}) at {self.control_path}: "
                f"{done.stderr.strip()}",
                hint=f"open one yourself (it may ask for your password and MFA), then rerun: "
                f"{self.master_command()}",
            )

    def exec_line(
        self,
        line: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        argv: Sequence[str] | None = None,
        stdin: bytes = b"",
    ) -> Completed:
        ssh_argv = [self.ssh, *self._options(), "-o", "ControlMaster=no", self.host, "--", line]
        try:
            done = subprocess.run(ssh_argv, capture_output=True, input=stdin, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise timed_out(argv or [line], timeout, self.host) from None
        stderr = done.stderr.decode("utf-8", "replace")
        if done.returncode == SSH_FAILED:
            self.check()  # the master died: say so, with the command to reopen it
            raise RemoteError(f"ssh to {self.host} failed: {stderr.strip()}", hint="`ssh -v` shows why")
        return Completed(done.returncode, done.stdout.decode("utf-8", "replace"), stderr)
