"""Turn the checkpoint arguments of `gate` and `scan` into byte sources, local or on a cluster.

In: an argument (a local path, or ``CLUSTER:/abs/path``), an optional ``--cluster`` that puts
the argument itself on that cluster, and the clusters file. Out: a ``ByteSource``; one SSH
connection per cluster is shared by every source of the command. ``transfer()`` sums what the
SFTP sources fetched, for the report's ``transfer`` block.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType
from typing import Any

from ptq_validators.errors import UsageError
from ptq_validators.io.source import ByteSource, open_source
from ptq_validators.remote.config import load_cluster
from ptq_validators.remote.connect import connect
from ptq_validators.remote.paramiko_transport import ParamikoRunner
from ptq_validators.remote.sftp_source import SftpSource

_REMOTE = re.compile(r"^(?P<cluster>[A-Za-z0-9][A-Za-z0-9._-]*):(?P<path>/.*)$")


class SourceOpener:
    """Opens sources for one command and closes their connections at the end (``with``)."""

    def __init__(self, clusters_file: Path | None = None, *, accept_new_host_key: bool = False) -> None:
        self.clusters_file, self.accept_new = clusters_file, accept_new_host_key
        self._runners: dict[str, ParamikoRunner] = {}
        self._sftp: list[SftpSource] = []

    def open(self, argument: str, cluster: str | None = None) -> ByteSource:
        """``argument`` on ``cluster``; else ``CLUSTER:/path`` when no local path has that name;
        else the local directory."""
        remote = _REMOTE.match(argument)
        if cluster is not None:
            return self._remote(
                cluster, remote["path"] if remote and remote["cluster"] == cluster else argument
            )
        if remote and not Path(argument).exists():
            return self._remote(remote["cluster"], remote["path"])
        return open_source(argument)

    def _remote(self, name: str, path: str) -> SftpSource:
        if name not in self._runners:
            spec = load_cluster(name, self.clusters_file)
            runner = connect(spec, accept_new_host_key=self.accept_new)
            if not isinstance(runner, ParamikoRunner):
                raise UsageError(
                    f"cluster {name}: reading a checkpoint needs SFTP, which the openssh transport does not offer",
                    hint="use `transport: paramiko` for gate/scan --cluster (key or agent login)",
                )
            self._runners[name] = runner
        source = SftpSource(self._runners[name], path, label=name)
        self._sftp.append(source)
        return source

    def transfer(self) -> dict[str, Any] | None:
        """Bytes and round trips of the SFTP sources (None when every source was local)."""
        if not self._sftp:
            return None
        return {
            "bytes_transferred": sum(s.bytes_transferred for s in self._sftp),
            "round_trips": sum(s.round_trips for s in self._sftp),
            "sources": {
                s.root: {"bytes": s.bytes_transferred, "round_trips": s.round_trips} for s in self._sftp
            },
        }

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()

    def __enter__(self) -> SourceOpener:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
