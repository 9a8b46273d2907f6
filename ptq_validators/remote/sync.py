"""`ptqv remote sync`: copy a local directory to a cluster, skipping what is already there.

In: a runner, a local directory, a remote directory and exclude patterns. Out: the plan (each
file: upload or skip, judged by size and modification time, like rsync's quick check) and,
when carried out, the files written atomically with the local modification time kept, so the
next sync skips them. Nothing on the far side is deleted.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ptq_validators.errors import InputError
from ptq_validators.remote.shell import ShellRunner

DEFAULT_EXCLUDES = (".git", "__pycache__", "*.pyc", ".claude", "node_modules", "*.egg-info")


@dataclass(frozen=True)
class SyncItem:
    path: str  # relative, with /
    size: int
    mtime: int
    upload: bool


def _excluded(parts: Sequence[str], excludes: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in excludes)


def plan_sync(
    runner: ShellRunner, local: Path, remote: PurePosixPath, excludes: Sequence[str]
) -> list[SyncItem]:
    """Every file under ``local`` that is not excluded, and whether it must be uploaded."""
    if not local.is_dir():
        raise InputError(f"{local}: not a directory", hint="give the local directory to copy")
    items = []
    for path in sorted(local.rglob("*")):
        rel = path.relative_to(local)
        if _excluded(rel.parts, excludes) or not path.is_file():
            continue
        st = path.stat()
        there = runner.stat(remote / rel.as_posix())
        same = there is not None and there.size == st.st_size and int(there.mtime) == int(st.st_mtime)
        items.append(SyncItem(rel.as_posix(), st.st_size, int(st.st_mtime), not same))
    return items


def run_sync(
    runner: ShellRunner,
    items: Sequence[SyncItem],
    local: Path,
    remote: PurePosixPath,
    progress: Callable[[int, int, str], None] | None = None,
) -> None:
    """Upload the items marked for upload (directories created, mtimes kept)."""
    todo = [i for i in items if i.upload]
    made: set[PurePosixPath] = set()
    for number, item in enumerate(todo, 1):
        target = remote / item.path
        if target.parent not in made:
            runner.mkdir(target.parent)
            made.add(target.parent)
        runner.write_bytes(
            target, (local / item.path).read_bytes(), mode=(local / item.path).stat().st_mode & 0o777
        )
        runner.set_mtime(target, item.mtime)
        if progress:
            progress(number, len(todo), item.path)
