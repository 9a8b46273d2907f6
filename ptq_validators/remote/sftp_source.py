"""A checkpoint directory on a cluster, read over SFTP: the ``ByteSource`` the gate and scan use
with ``--cluster``, so headers are read where the checkpoint lives and no weight is copied back.

In: a paramiko runner (its SFTP session) and an absolute directory there. Out: the source
contract of ``ptq_validators.io.source``: names, ``stat`` sizes (the safetensors rule
"8 + N + data end == file size" needs no data read), ranged reads pipelined with ``readv``
(never ``prefetch``, which pulls the rest of a multi-GB shard), whole small documents, and
"stays inside" judged on the far side (the server resolves symlinks). ``bytes_transferred``
counts the file bytes received, ``round_trips`` the requests that waited on the server (a
pipelined ``readv`` batch is one).
"""

from __future__ import annotations

import posixpath
import stat as stat_mode
from collections.abc import Callable
from typing import TypeVar

import paramiko

from ptq_validators.errors import InputError, RemoteError
from ptq_validators.io.source import ByteSource, FileStat
from ptq_validators.remote.paramiko_transport import ParamikoRunner

T = TypeVar("T")
_CONNECTION_ERRORS = (EOFError, paramiko.SSHException, ConnectionError, TimeoutError)


class SftpSource(ByteSource):
    """``label:directory`` on the runner's host. ``own_runner``: ``close`` also closes the runner."""

    def __init__(
        self, runner: ParamikoRunner, directory: str, *, label: str, own_runner: bool = False
    ) -> None:
        if not directory.startswith("/"):
            raise InputError(
                f"{label}:{directory}: not an absolute path", hint="`~` does not expand over SFTP"
            )
        self.runner, self.own_runner = runner, own_runner
        self.root = f"{label}:{directory}"
        self.directory = directory
        self.bytes_transferred = 0
        self.round_trips = 0
        attrs = self._call(None, lambda s: s.stat(directory))
        if not stat_mode.S_ISDIR(attrs.st_mode or 0):
            raise InputError(f"{self.root}: not a directory", hint="pass the checkpoint directory")
        self._real = self._call(None, lambda s: s.normalize(directory))

    def _call(self, name: str | None, fn: Callable[[paramiko.SFTPClient], T], trips: int = 1) -> T:
        where = self.display(name) if name is not None else self.root
        try:
            result = fn(self.runner.sftp())
        except FileNotFoundError:
            raise InputError(f"{where}: no such file or directory") from None
        except PermissionError:
            raise InputError(f"{where}: permission denied") from None
        except _CONNECTION_ERRORS as exc:
            self.runner.close()
            raise RemoteError(
                f"{where}: the SFTP connection failed: {exc}", hint="check the cluster is reachable"
            ) from None
        except OSError as exc:
            raise InputError(f"{where}: {exc.strerror or exc}") from None
        self.round_trips += trips
        return result

    def _path(self, name: str) -> str:
        return posixpath.join(self.directory, name)

    def list_files(self) -> list[str]:
        entries = self._call(None, lambda s: s.listdir_attr(self.directory))
        names = []
        for entry in entries:
            mode = entry.st_mode or 0
            if stat_mode.S_ISLNK(mode):  # follow it: a symlink to a regular file counts as one
                try:
                    mode = self._target_mode(entry.filename)
                except InputError:
                    continue  # dangling
            if stat_mode.S_ISREG(mode):
                names.append(entry.filename)
        return sorted(names)

    def stat_mode(self, name: str) -> int:
        """The mode of what ``name`` points to."""
        path = self._path(name)
        attrs: paramiko.SFTPAttributes = self._call(name, lambda s: s.stat(path))
        return attrs.st_mode or 0

    def _target_mode(self, name: str) -> int:
        """The mode of what ``name`` points to (symlinks followed by the server)."""
        path = self._path(name)
        attrs: paramiko.SFTPAttributes = self._call(name, lambda s: s.stat(path))
        return attrs.st_mode or 0

    def stat(self, name: str) -> FileStat:
        attrs = self._call(name, lambda s: s.stat(self._path(name)))
        if not stat_mode.S_ISREG(attrs.st_mode or 0):
            raise InputError(f"{self.display(name)}: not a regular file")
        return FileStat(int(attrs.st_size or 0), float(attrs.st_mtime or 0))

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        return self.read_ranges(name, [(offset, length)])[0]

    def read_ranges(self, name: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """One open, one stat (to clamp at the end of the file), one pipelined ``readv``."""

        def read(sftp: paramiko.SFTPClient) -> list[bytes]:
            # unbuffered: a buffered file reads ahead (8 KiB) around the ranges asked for
            with sftp.open(self._path(name), "rb", bufsize=0) as handle:
                size = int(handle.stat().st_size or 0)
                wanted = [(o, min(n, size - o)) for o, n in ranges if o < size and n > 0]
                got = iter(handle.readv(wanted) if wanted else [])
                return [next(got) if o < size and n > 0 else b"" for o, n in ranges]

        chunks = self._call(name, read, trips=4)  # open, fstat, the readv batch, close
        self.bytes_transferred += sum(len(c) for c in chunks)
        return chunks

    def read_bytes(self, name: str) -> bytes:
        return self.read_ranges(name, [(0, self.stat(name).size)])[0]

    def is_inside(self, name: str) -> bool:
        try:
            real = self._call(name, lambda s: s.normalize(self._path(name)))
        except (InputError, RemoteError):
            real = posixpath.normpath(self._path(name))  # judged by where it would resolve
        return real.startswith(self._real.rstrip("/") + "/")

    def close(self) -> None:
        if self.own_runner:
            self.runner.close()
