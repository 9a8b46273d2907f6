"""Byte sources: the one interface through which checkpoint files are listed, stat'ed and read.

Everything above this layer (the checkpoint reader, the gate, scan, plan) asks a ``ByteSource``
for file names, sizes, byte ranges and small files, so a remote source (SFTP) can replace the
local one without touching the readers. ``open_source`` turns a command-line argument into a
source.

The contract every source keeps (the readers rely on it, the tests of ``LocalSource`` pin it):

* A source is one directory. Files are addressed by plain names directly in it; sub-directories
  are never listed or read.
* Unreadable input (no such file, permission denied, not a regular file) raises ``InputError``
  whose message starts with ``display(name)``; a remote source raises ``RemoteError`` when the
  connection, not the file, fails. No other exception escapes.
* Symlinks are followed for ``list_files``, ``stat`` and reads; ``is_inside`` says whether the
  target is still inside the directory, and callers refuse files for which it is False.
* Sources hold no state that a read changes; ``close`` releases what the source holds (a
  connection). ``with source:`` closes it on leaving.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ptq_validators.errors import InputError


@dataclass(frozen=True)
class FileStat:
    """What a source says about one file (after following symlinks)."""

    size: int  # bytes
    mtime: float  # modification time, seconds since the Unix epoch


class ByteSource(ABC):
    """A directory of files addressed by plain file names."""

    # How the directory is named in reports and messages (a path, or CLUSTER:PATH).
    root: str

    @abstractmethod
    def list_files(self) -> list[str]:
        """Names of the regular files directly in the directory (symlinks to regular files
        included), sorted. ``InputError`` when the directory cannot be listed."""

    @abstractmethod
    def stat(self, name: str) -> FileStat:
        """Size and modification time of file ``name``. ``InputError`` when it does not exist
        or cannot be stat'ed."""

    def size(self, name: str) -> int:
        """Size in bytes of file ``name`` (``stat(name).size``)."""
        return self.stat(name).size

    @abstractmethod
    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes of ``name`` from ``offset`` (both >= 0): exactly ``length`` bytes,
        fewer only when the range runs past the end of the file, ``b""`` from or past the end.
        Callers compare the length they got with the one they asked for. ``InputError`` when the
        file cannot be opened or read."""

    def read_ranges(self, name: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Several ``(offset, length)`` ranges of one file, in the order given, each as
        ``read_range`` returns it; sources override this to batch (one open, one round trip)."""
        return [self.read_range(name, offset, length) for offset, length in ranges]

    @abstractmethod
    def read_bytes(self, name: str) -> bytes:
        """The whole of a small file (documents, the index). ``InputError`` as for reads."""

    @abstractmethod
    def is_inside(self, name: str) -> bool:
        """True when ``name`` resolves (following every symlink) to a file inside the directory
        or one of its sub-directories; False when it leaves it. Resolution only: never raises
        (a name that does not exist is judged by where it would resolve)."""

    def display(self, name: str) -> str:
        """How to name file ``name`` in messages: ``root/name``."""
        return f"{self.root.rstrip('/')}/{name}"

    def close(self) -> None:  # noqa: B027 - a local source holds nothing; remote ones override
        """Release what the source holds (a connection). Further calls are not allowed."""

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_source(argument: str | os.PathLike[str]) -> ByteSource:
    """The source a command-line argument names: today a local directory (``LocalSource``,
    ``InputError`` when it is missing or not a directory)."""
    return LocalSource(argument)


class LocalSource(ByteSource):
    """A local checkpoint directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        directory = Path(path)
        if not directory.exists():
            raise InputError(f"{directory}: no such directory", hint="pass a checkpoint directory")
        if not directory.is_dir():
            raise InputError(
                f"{directory}: not a directory",
                hint="pass the checkpoint directory, not one of its files",
            )
        self.root = str(directory)
        self._real_root = directory.resolve()

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def list_files(self) -> list[str]:
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise InputError(f"{self.root}: cannot list directory: {exc.strerror}") from None
        return sorted(e.name for e in entries if e.is_file())

    def stat(self, name: str) -> FileStat:
        try:
            status = os.stat(self._path(name))
        except OSError as exc:
            raise InputError(f"{self.display(name)}: {exc.strerror}") from None
        return FileStat(status.st_size, status.st_mtime)

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        return self.read_ranges(name, [(offset, length)])[0]

    def read_ranges(self, name: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        try:
            # pread: one syscall per range, and no read-ahead buffer filled for a 4-byte scale.
            descriptor = os.open(self._path(name), os.O_RDONLY)
            try:
                return [os.pread(descriptor, length, offset) for offset, length in ranges]
            finally:
                os.close(descriptor)
        except OSError as exc:
            raise InputError(f"{self.display(name)}: cannot read: {exc.strerror}") from None

    def read_bytes(self, name: str) -> bytes:
        try:
            with open(self._path(name), "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise InputError(f"{self.display(name)}: cannot read: {exc.strerror}") from None

    def is_inside(self, name: str) -> bool:
        path = self._path(name)
        if "/" not in name and name not in ("", ".", "..") and not os.path.islink(path):
            return True  # a file of the directory itself, not a link: one lstat (per shard)
        return self._real_root in Path(os.path.realpath(path)).parents
