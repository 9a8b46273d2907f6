"""The default SSH transport: paramiko, with OpenSSH's safety rules done by hand.

In: an ``Endpoint``. Out: a ``Runner`` whose commands run on that host and whose files are read
and written over SFTP. What paramiko does not do for us, and this module does:

* host keys: checked against ``~/.ssh/known_hosts`` (hashed and ``[host]:port`` entries); an
  unknown key is refused unless ``accept_new_host_key`` (then it is appended: OpenSSH's
  accept-new); a changed key is always refused, with both fingerprints;
* auth: only the configured key when one is given (agent keys would exhaust MaxAuthTries), else
  the agent and ``~/.ssh/id_*``; never a prompt: a server that wants a password or
  keyboard-interactive answers is an error that points to the OpenSSH transport;
* ProxyJump through ``direct-tcpip`` channels (a chain of hops), ProxyCommand as a socket (in
  its own process group, all of which ends with the connection, as OpenSSH's does);
* connect, banner, auth and command timeouts, keepalive, retries with backoff on connection
  failures only (never on a remote command's own failure);
* stdout and stderr drained together under the command's deadline (``recv_exit_status`` before
  draining deadlocks past the ~2 MiB channel window), the remote exit code passed through.

One connection (and one SFTP session) is reused across all calls of one command.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import select
import shlex
import signal
import stat as stat_mode
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any, cast

import paramiko

from ptq_validators.errors import RemoteError
from ptq_validators.launch.runner import DEFAULT_TIMEOUT_S, Completed, FileStat, timed_out
from ptq_validators.remote.shell import ShellRunner
from ptq_validators.remote.ssh_config import Endpoint

# paramiko logs a failed handshake from its transport thread, traceback included; with no
# handler configured, Python's last-resort handler prints that to stderr around our one error
# line. The failure reaches the caller as an exception either way, so its log stays quiet.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

CONNECT_TIMEOUT_S = 15.0
KEEPALIVE_S = 30
RETRIES = 3
BACKOFF_S = (1.0, 2.0, 4.0)
_CHUNK = 1 << 16


def known_hosts_path() -> Path:
    return Path.home() / ".ssh" / "known_hosts"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of ``key``."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Unknown host: refuse, or with ``accept_new`` append the key to known_hosts and go on."""

    def __init__(self, endpoint: Endpoint, accept_new: bool, path: Path) -> None:
        self.endpoint, self.accept_new, self.path = endpoint, accept_new, path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        name = self.endpoint.known_hosts_name
        if not self.accept_new:
            raise RemoteError(
                f"{name} is not in {self.path} (its {key.get_name()} key is {fingerprint(key)})",
                hint="check the fingerprint with the cluster's admins, then rerun with --accept-new-host-key "
                "to record it (nothing was run)",
            )
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")


def _refuse_auth(endpoint: Endpoint, allowed: Sequence[str]) -> RemoteError:
    if any(a in ("password", "keyboard-interactive") for a in allowed) and "publickey" not in allowed:
        return RemoteError(
            f"{endpoint.describe()} asks for {' or '.join(allowed)} authentication; ptqv never prompts",
            hint="for password or MFA logins use `transport: openssh` in clusters.yaml and open a "
            "ControlMaster yourself first (`ptqv remote run --help` shows the command)",
        )
    return RemoteError(
        f"{endpoint.describe()} refused the key(s) offered ({', '.join(allowed) or 'no method'} accepted)",
        hint="check ssh_key / IdentityFile and the authorized_keys on the cluster",
    )


def _connect_failure(exc: Exception | None) -> str:
    """Why a connection failed, in words: paramiko's own messages are empty for a peer that
    hangs up mid-handshake and cryptic for one that is not an SSH server."""
    text = str(exc or "").strip()
    if isinstance(exc, paramiko.SSHException) and "protocol banner" in text:
        return f"no SSH banner: the port answers but is not an SSH server ({text})"
    if isinstance(exc, EOFError | ConnectionResetError) or not text:
        return "the server closed the connection during the SSH handshake (is the port an SSH server?)"
    return text


class ParamikoRunner(ShellRunner):
    """A ``Runner`` on one SSH host. Connects on first use; ``close()`` ends the connection."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        accept_new_host_key: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        retries: int = RETRIES,
    ) -> None:
        self.endpoint = endpoint
        self.host = endpoint.hostname
        self.user = endpoint.user
        self.accept_new = accept_new_host_key
        self.connect_timeout = connect_timeout
        self.retries = retries
        self._clients: list[paramiko.SSHClient] = []
        self._sftp: paramiko.SFTPClient | None = None
        self._proxy: GroupProxyCommand | None = None
        self.round_trips = 0  # SFTP requests sent through this runner's byte sources

    # ------------------------------------------------------------------ connection

    def _client(self, endpoint: Endpoint, sock: Any) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        path = known_hosts_path()
        if path.is_file():
            client.load_host_keys(str(path))
        client.set_missing_host_key_policy(_HostKeyPolicy(endpoint, self.accept_new, path))
        keys = list(endpoint.identity_files)
        try:
            client.connect(
                endpoint.hostname,
                port=endpoint.port,
                username=endpoint.user,
                key_filename=cast(Any, keys or None),  # paramiko takes a list too
                allow_agent=not keys,
                look_for_keys=not keys,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                channel_timeout=self.connect_timeout,
                sock=sock,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise RemoteError(
                f"the host key of {endpoint.known_hosts_name} CHANGED: known_hosts has "
                f"{fingerprint(exc.expected_key)}, the server now offers {fingerprint(exc.key)}",
                hint=f"this may be an attack; if the admins confirm a new key, remove the old line with "
                f"`ssh-keygen -R '{endpoint.known_hosts_name}' -f {path}` and reconnect (nothing was run)",
            ) from None
        except paramiko.BadAuthenticationType as exc:
            client.close()
            raise _refuse_auth(endpoint, exc.allowed_types) from None
        except paramiko.AuthenticationException:
            client.close()
            allowed = self._allowed_auth(client)
            raise _refuse_auth(endpoint, allowed) from None
        except RemoteError:
            client.close()
            raise
        transport = client.get_transport()
        assert transport is not None  # connect() succeeded
        transport.set_keepalive(KEEPALIVE_S)
        return client

    @staticmethod
    def _allowed_auth(client: paramiko.SSHClient) -> list[str]:
        transport = client.get_transport()
        if transport is None:
            return []
        try:
            transport.auth_none("")
        except paramiko.BadAuthenticationType as exc:
            return list(exc.allowed_types)
        except paramiko.SSHException:
            return []
        return []

    def _connect_once(self) -> paramiko.SSHClient:
        sock: Any = None
        hops = [*self.endpoint.jumps, self.endpoint]
        if self.endpoint.proxy_command:
            sock = self._proxy = GroupProxyCommand(self.endpoint.proxy_command)
        clients = []
        try:
            for i, hop in enumerate(hops):
                client = self._client(hop, sock)
                clients.append(client)
                if i + 1 < len(hops):
                    target = hops[i + 1]
                    transport = client.get_transport()
                    assert transport is not None
                    sock = transport.open_channel(
                        "direct-tcpip",
                        (target.hostname, target.port),
                        ("127.0.0.1", 0),
                        timeout=self.connect_timeout,
                    )
        except BaseException:
            for c in reversed(clients):
                c.close()
            raise
        self._clients = clients
        return clients[-1]

    def _live(self) -> paramiko.SSHClient:
        """The connection, (re)opened with retries and backoff when there is none."""
        if self._clients:
            transport = self._clients[-1].get_transport()
            if transport is not None and transport.is_active():
                return self._clients[-1]
            self.close()
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return self._connect_once()
            except RemoteError:
                raise  # host key or auth: retrying cannot help
            except (OSError, EOFError, paramiko.SSHException) as exc:
                last = exc
                if attempt < self.retries:
                    time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
        raise RemoteError(
            f"cannot connect to {self.endpoint.describe()}"
            + (f" via {', '.join(j.describe() for j in self.endpoint.jumps)}" if self.endpoint.jumps else "")
            + f" after {self.retries + 1} attempts: {_connect_failure(last)}",
            hint="check the host, port and network (VPN?); `ssh -v` shows more",
        )

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        transports = [c.get_transport() for c in self._clients]
        for client in reversed(self._clients):
            client.close()
        for transport in transports:  # their threads close the sockets (the proxy command too)
            if transport is not None and transport.is_alive():
                transport.join(5)
        self._clients = []
        if self._proxy is not None:  # closing the transport signals the command; reap it too
            process = self._proxy.process
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
            self._proxy.end_group()
            self._proxy = None

    def __enter__(self) -> ParamikoRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ commands

    def exec_line(
        self,
        line: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        argv: Sequence[str] | None = None,
        stdin: bytes = b"",
    ) -> Completed:
        """Run one shell line on the host; stdout and stderr drained together until the deadline."""
        transport = self._live().get_transport()
        assert transport is not None
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
            channel.exec_command(line)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()  # no stdin: a command that reads it sees end of file
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise RemoteError(f"{self.host}: the connection failed while starting a command: {exc}") from None
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        try:
            while True:
                got = False
                while channel.recv_ready():
                    out += channel.recv(_CHUNK)
                    got = True
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(_CHUNK)
                    got = True
                if (
                    channel.exit_status_ready()
                    and channel.eof_received
                    and not (channel.recv_ready() or channel.recv_stderr_ready())
                ):
                    break
                if channel.closed and not got:
                    break
                if not got:
                    if time.monotonic() > deadline:
                        raise timed_out(argv or [line], timeout, self.host)
                    select.select([channel], [], [], 0.05)
            code = channel.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise RemoteError(f"{self.host}: the connection dropped during `{line[:200]}`: {exc}") from None
        finally:
            channel.close()
        return Completed(
            code if code >= 0 else 255, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )

    # ------------------------------------------------------------------ files (SFTP)

    def sftp(self) -> paramiko.SFTPClient:
        client = self._live()
        if self._sftp is None:
            try:
                self._sftp = client.open_sftp()
            except (OSError, EOFError, paramiko.SSHException) as exc:
                raise RemoteError(
                    f"{self.host}: no SFTP subsystem: {exc}", hint="ask the admins to enable sftp"
                ) from None
        return self._sftp

    def _sftp_call(self, what: str, path: PurePath, fn: Any) -> Any:
        try:
            return fn(self.sftp())
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise RemoteError(f"{self.host}:{path}: permission denied ({what})") from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise RemoteError(f"{self.host}:{path}: {what} failed: {exc}") from None

    def read_text(self, path: PurePath, *, max_bytes: int | None = None) -> str | None:
        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(str(path), "rb") as handle:
                if max_bytes is not None:
                    handle.seek(max(0, (handle.stat().st_size or 0) - max_bytes))
                return handle.read()

        try:
            data = self._sftp_call("read", path, read)
        except FileNotFoundError:
            return None
        return data.decode("utf-8", errors="replace")

    def write_text(self, path: PurePath, text: str, *, mode: int = 0o644) -> None:
        self.write_bytes(path, text.encode("utf-8"), mode=mode)

    def write_bytes(self, path: PurePath, data: bytes, *, mode: int = 0o644) -> None:
        """Write through a temporary name + rename, so readers never see half a file."""
        tmp = f"{path}.ptqv-tmp"

        def write(sftp: paramiko.SFTPClient) -> None:
            with sftp.open(tmp, "wb") as handle:
                handle.set_pipelined(True)
                handle.write(data)
            sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, str(path))

        self._sftp_call("write", path, write)

    def set_mtime(self, path: PurePath, mtime: float) -> None:
        self._sftp_call("utime", path, lambda s: s.utime(str(path), (mtime, mtime)))

    def stat(self, path: PurePath) -> FileStat | None:
        try:
            st = self._sftp_call("stat", path, lambda s: s.stat(str(path)))
        except FileNotFoundError:
            return None
        return FileStat(int(st.st_size or 0), float(st.st_mtime or 0))

    def list_dir(self, path: PurePath) -> list[str]:
        try:
            return sorted(self._sftp_call("list", path, lambda s: s.listdir(str(path))))
        except FileNotFoundError:
            return []

    def is_dir(self, path: PurePath) -> bool:
        try:
            st = self._sftp_call("stat", path, lambda s: s.stat(str(path)))
        except FileNotFoundError:
            return False
        return stat_mode.S_ISDIR(st.st_mode or 0)


class GroupProxyCommand(paramiko.ProxyCommand):
    """paramiko's ProxyCommand (the command's stdin/stdout as the socket), started in a process
    group of its own: a shell command's background helpers (``cat <&3 &``) would otherwise
    outlive the connection, holding its TCP stream and the server's session open."""

    def __init__(self, command_line: str) -> None:  # paramiko's, with a new session
        self.cmd = shlex.split(command_line)
        self.process = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
        )
        self.timeout = None

    def close(self) -> None:
        self.end_group()

    def end_group(self) -> None:
        """SIGTERM to whatever is left of the command's process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
            os.killpg(self.process.pid, signal.SIGTERM)
