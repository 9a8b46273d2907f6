"""Where to connect: a cluster's ``login_node`` resolved through ``~/.ssh/config``.

In: a ``Cluster`` (``login_node`` may be an alias) and the ssh_config file. Out: an ``Endpoint``
(host name, port, user, identity files, ProxyCommand, and the ProxyJump chain as endpoints of
their own). paramiko parses the file but does not expand ``Include`` (paramiko #1609), so
``Include`` lines are inlined here first, the way OpenSSH reads them (relative paths are under
``~/.ssh``, globs allowed). Keys set in ``clusters.yaml`` win over ssh_config.
"""

from __future__ import annotations

import getpass
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from ptq_validators.errors import InputError
from ptq_validators.remote.config import Cluster

MAX_INCLUDE_DEPTH = 16
_INCLUDE = re.compile(r"^\s*include\s+(.+?)\s*$", re.IGNORECASE)
_HOP = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:\s]+)(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to reach, and how (``jumps`` first, in order)."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...] = ()
    proxy_command: str | None = None
    jumps: tuple[Endpoint, ...] = field(default=())

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this server (``[host]:port`` for ports other than 22)."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    def describe(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def expand_tokens(command: str, host: str, port: int, user: str) -> str:
    """OpenSSH's ProxyCommand tokens: ``%h`` host, ``%p`` port, ``%r`` user, ``%%`` a percent."""
    values = {"h": host, "p": str(port), "r": user, "%": "%"}
    return re.sub(r"%([hpr%])", lambda m: values[m.group(1)], command)


def ssh_config_path() -> Path:
    return Path.home() / ".ssh" / "config"


def expand_includes(path: Path, depth: int = 0) -> str:
    """The text of ``path`` with every ``Include`` replaced by the files it names."""
    if depth > MAX_INCLUDE_DEPTH:
        raise InputError(
            f"{path}: Include nested deeper than {MAX_INCLUDE_DEPTH}", hint="look for an Include loop"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    out = []
    for line in lines:
        match = _INCLUDE.match(line)
        if not match:
            out.append(line)
            continue
        for pattern in match.group(1).split():
            pattern = os.path.expanduser(pattern.strip('"'))
            if not os.path.isabs(pattern):
                pattern = str(Path.home() / ".ssh" / pattern)
            for included in sorted(glob.glob(pattern)):
                out.append(expand_includes(Path(included), depth + 1))
    return "\n".join(out)


def read_ssh_config(path: Path | None = None) -> paramiko.SSHConfig:
    """The parsed ssh_config (an empty one when the file does not exist)."""
    path = ssh_config_path() if path is None else path
    if not path.is_file():
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_text(expand_includes(path))
    except (paramiko.ConfigParseError, ValueError) as exc:
        raise InputError(f"{path}: {exc}", hint="fix the ssh_config line") from None


def _endpoint(
    config: paramiko.SSHConfig,
    alias: str,
    *,
    user: str | None = None,
    port: int | None = None,
    key: str | None = None,
    proxy_command: str | None = None,
    proxy_jump: str | None = None,
    depth: int = 0,
) -> Endpoint:
    if depth > MAX_INCLUDE_DEPTH:
        raise InputError(f"ProxyJump chain through {alias!r} is too long", hint="look for a ProxyJump loop")
    found = config.lookup(alias)
    jump_spec = proxy_jump or found.get("proxyjump")
    jumps: list[Endpoint] = []
    if jump_spec and jump_spec.lower() != "none":
        for hop in jump_spec.split(","):
            match = _HOP.match(hop.strip())
            if not match:
                raise InputError(f"ProxyJump hop {hop!r} is not [user@]host[:port]", hint="fix proxy_jump")
            jumps.append(
                _endpoint(
                    config,
                    match["host"].strip("[]"),
                    user=match["user"],
                    port=int(match["port"]) if match["port"] else None,
                    depth=depth + 1,
                )
            )
    hostname = found.get("hostname", alias)
    port = port or int(found.get("port", 22))
    user = user or found.get("user") or getpass.getuser()
    proxy = found.get("proxycommand")  # paramiko expanded its tokens; ssh_proxy's are ours to expand
    if proxy_command:
        proxy = expand_tokens(proxy_command, hostname, port, user)
    return Endpoint(
        alias=alias,
        hostname=hostname,
        port=port,
        user=user,
        identity_files=(os.path.expanduser(key),) if key else tuple(found.get("identityfile", ())),
        proxy_command=None if proxy in (None, "none") or jumps else proxy,
        jumps=tuple(jumps),
    )


def resolve(cluster: Cluster, config_path: Path | None = None) -> Endpoint:
    """The endpoint of ``cluster``'s login node (ProxyJump wins over ProxyCommand, as in OpenSSH).
    A configured ``ssh_key`` that does not exist is an input error here, before any connection
    (retrying cannot find it)."""
    if cluster.ssh_key and not os.path.isfile(os.path.expanduser(cluster.ssh_key)):
        raise InputError(
            f"{cluster.source}: cluster {cluster.name!r}: ssh_key {cluster.ssh_key} does not exist",
            hint="fix the path of ssh_key, or remove it to use ssh-agent and ~/.ssh/config",
        )
    return _endpoint(
        read_ssh_config(config_path),
        cluster.login_node,
        user=cluster.user,
        port=cluster.port,
        key=cluster.ssh_key,
        proxy_command=cluster.ssh_proxy,
        proxy_jump=cluster.proxy_jump,
    )
