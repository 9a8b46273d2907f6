"""Byte sources: the one interface through which checkpoint files are listed and read.

Everything above this layer (the checkpoint reader, the gate) asks a ``ByteSource`` for file
names, sizes, byte ranges and small text files, so a remote source (SFTP) can replace the
local one without touching the readers.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

from ptq_validators.errors import InputError


class ByteSource(ABC):
    """A directory of files addressed by plain file names."""

    root: str

    @abstractmethod
    def list_files(self) -> list[str]:
        """Names of the regular files directly in the directory, sorted."""

    @abstractmethod
    def size(self, name: str) -> int:
        """Size in bytes of file ``name``."""

    @abstractmethod
    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes of ``name`` from ``offset`` (fewer only at end of file)."""

    def read_ranges(self, name: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Several ``(offset, length)`` ranges of one file; sources override this to batch."""
        return [self.read_range(name, offset, length) for offset, length in ranges]

    @abstractmethod
    def read_bytes(self, name: str) -> bytes:
        """The whole of a small file."""

    @abstractmethod
    def is_inside(self, name: str) -> bool:
        """True when ``name`` resolves (following symlinks) to a file inside the directory."""

    def display(self, name: str) -> str:
        """How to name the file in messages."""
        return f"{self.root.rstrip('/')}/{name}"


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

    def list_files(self) -> list[str]:
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise InputError(f"{self.root}: cannot list directory: {exc.strerror}") from None
        return sorted(e.name for e in entries if e.is_file())

    def size(self, name: str) -> int:
        try:
            return os.stat(os.path.join(self.root, name)).st_size
        except OSError as exc:
            raise InputError(f"{self.display(name)}: {exc.strerror}") from None

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        try:
            with open(os.path.join(self.root, name), "rb") as handle:
                handle.seek(offset)
                return handle.read(length)
        except OSError as exc:
            raise InputError(f"{self.display(name)}: cannot read: {exc.strerror}") from None

    def read_ranges(self, name: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        try:
            # pread: one syscall per range, and no read-ahead buffer filled for a 4-byte scale.
            descriptor = os.open(os.path.join(self.root, name), os.O_RDONLY)
            try:
                return [os.pread(descriptor, length, offset) for offset, length in ranges]
            finally:
                os.close(descriptor)
        except OSError as exc:
            raise InputError(f"{self.display(name)}: cannot read: {exc.strerror}") from None

    def read_bytes(self, name: str) -> bytes:
        try:
            with open(os.path.join(self.root, name), "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise InputError(f"{self.display(name)}: cannot read: {exc.strerror}") from None

    def is_inside(self, name: str) -> bool:
        real = Path(os.path.realpath(os.path.join(self.root, name)))
        return real.parent == self._real_root or self._real_root in real.parents
