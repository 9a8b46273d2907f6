"""The bundled agent skills: which files make up each skill, and installing them into a folder.

In the checkout (and the plugin built from it) every skill is ``skills/<name>/SKILL.md`` and the
references it names sit beside the skills at ``references/`` (links ``../../references/x.md``).
An installed skill must stand alone, because agents copy or cache skill folders one by one: the
install writes ``<target>/<name>/SKILL.md`` with its links pointing at ``references/x.md`` and
copies those references (and the ones they link to) into ``<target>/<name>/references/``.

The pack's own "``ptqv: command not found``" paragraph (install the checkout two folders up)
is wrong for such a copy, so the install puts in its place the interpreter that ran it, which
has the package: ``<python> -m ptq_validators`` works wherever ``ptqv`` is not on ``PATH``.

Each installed skill keeps ``.ptqv-install.json`` with the hash of every file written, so a later
install can tell a copy it wrote and nobody touched (replaced) from one a person edited
(refused without ``force``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from ptq_validators import __version__
from ptq_validators.errors import InputError, UsageError
from ptq_validators.resources import data_dir

SKILL_FILE = "SKILL.md"
RECORD_FILE = ".ptqv-install.json"
_PACK_REFERENCES = "../../references/"
# A Markdown link target: ``](path)`` or ``](path#anchor)``; external links are filtered later.
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
# The paragraph of a SKILL.md that says what to do when the shell has no ``ptqv``.
INSTALL_HINT = re.compile(r"^`ptqv: command not found`.*?(?=\n\n|\Z)", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class PlannedFile:
    """One file of an install: its path inside the target and the bytes to write."""

    relative: str
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def skill_names() -> list[str]:
    """The bundled skills, sorted (every folder under ``skills/`` that holds a SKILL.md)."""
    root = data_dir("skills")
    return sorted(p.name for p in root.iterdir() if (p / SKILL_FILE).is_file())


def relative_links(text: str) -> list[str]:
    """The relative link targets of a Markdown text (no URLs, no in-page anchors)."""
    return [t for t in _LINK.findall(text) if "://" not in t and not t.startswith("mailto:")]


def _references_named(text: str, prefix: str) -> set[str]:
    return {
        t[len(prefix) :] for t in relative_links(text) if t.startswith(prefix) and "/" not in t[len(prefix) :]
    }


def skill_references(name: str) -> list[str]:
    """File names under ``references/`` that skill ``name`` needs: those its SKILL.md links to,
    and those these link to in turn (references link to each other by bare file name)."""
    references = data_dir("references")
    todo = _references_named(
        (data_dir("skills") / name / SKILL_FILE).read_text(encoding="utf-8"), _PACK_REFERENCES
    )
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        path = references / ref
        if not path.is_file():
            raise InputError(f"{path}: named by skill {name!r} but missing", hint="reinstall ptq-validators")
        seen.add(ref)
        todo |= _references_named(path.read_text(encoding="utf-8"), "") - seen
    return sorted(seen)


def plan_skill(name: str) -> list[PlannedFile]:
    """Every file of the installed, self-contained copy of skill ``name``."""
    source = data_dir("skills") / name
    files = []
    for path in sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        data = path.read_bytes()
        if path.name == SKILL_FILE and path.parent == source:
            text = data.decode("utf-8").replace(f"]({_PACK_REFERENCES}", "](references/")
            data = INSTALL_HINT.sub(_installed_hint(), text, count=1).encode("utf-8")
        files.append(PlannedFile(path.relative_to(source).as_posix(), data))
    references = data_dir("references")
    files += [
        PlannedFile(f"references/{ref}", (references / ref).read_bytes()) for ref in skill_references(name)
    ]
    return files


def _installed_hint() -> str:
    """The "command not found" paragraph of an installed copy: the Python running this install
    has ptq_validators, so its ``-m ptq_validators`` stands in for ``ptqv``."""
    python = shlex.quote(sys.executable or "python")
    return (
        "`ptqv: command not found`: this copy was installed by `ptqv skills install`, run by "
        f"`{python}`; run `{python} -m ptq_validators` wherever a command says `ptqv`."
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recorded(skill_dir: Path) -> dict[str, str]:
    record = skill_dir / RECORD_FILE
    if not record.is_file():
        return {}
    try:
        files = json.loads(record.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError):
        return {}  # an unreadable record proves nothing: every differing file counts as modified
    return files if isinstance(files, dict) else {}


def _action(dest: Path, new: PlannedFile, recorded: dict[str, str]) -> str:
    """``write`` (new), ``unchanged``, ``replace`` (our unmodified copy) or ``conflict``."""
    if dest.is_symlink():
        return "conflict"  # never write through a link into a file we did not create
    if not dest.exists():
        return "write"
    if not dest.is_file():
        return "conflict"
    current = _sha256(dest)
    if current == new.digest:
        return "unchanged"
    return "replace" if recorded.get(new.relative) == current else "conflict"


def install(target: Path, *, force: bool = False) -> list[dict[str, str]]:
    """Install every bundled skill under ``target``; returns ``{skill, path, action}`` per file.

    Nothing is written when a file there was modified since ptqv wrote it, or was not written
    by ptqv at all, unless ``force``: then it is replaced (``action`` ``forced``)."""
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is not a directory", hint="give --target a directory")
    planned = {name: plan_skill(name) for name in skill_names()}
    rows = []
    for name, files in planned.items():
        recorded = _recorded(target / name)
        for item in files:
            rows.append(
                {
                    "skill": name,
                    "path": str(target / name / item.relative),
                    "action": _action(target / name / item.relative, item, recorded),
                }
            )
    conflicts = [row["path"] for row in rows if row["action"] == "conflict"]
    folders = [p for p in conflicts if Path(p).is_dir() and not Path(p).is_symlink()]
    if folders:  # not even --force replaces a folder
        raise UsageError(
            f"{folders[0]} is a folder where the skill pack has a file", hint="move it away and install again"
        )
    if conflicts and not force:
        raise UsageError(
            f"{len(conflicts)} file(s) were changed since ptqv installed them, or were not installed "
            f"by ptqv: {', '.join(conflicts[:5])}",
            hint="keep your edits elsewhere, or pass --force to replace them",
        )
    for name, files in planned.items():
        skill_dir = target / name
        for item in files:
            _write(skill_dir / item.relative, item.data)
        record = {"ptqv_version": __version__, "files": {f.relative: f.digest for f in files}}
        _write(skill_dir / RECORD_FILE, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    for row in rows:
        if row["action"] == "conflict":
            row["action"] = "forced"
    return rows


def _write(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` through a temporary file; a link at ``dest`` is replaced, not followed."""
    if dest.is_dir() and not dest.is_symlink():
        raise UsageError(
            f"{dest} is a directory where the skill pack has a file", hint="move it away and install again"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.ptqv-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


def agent_folder(agent: str, scope: str, *, home: Path, project: Path) -> Path:
    """The skills folder an agent reads: Claude Code ``.claude/skills``; Codex and the
    cross-agent convention ``.agents/skills``; under ``home`` (user) or ``project``."""
    folders = {"claude": ".claude/skills", "codex": ".agents/skills", "agents": ".agents/skills"}
    if agent not in folders:
        raise UsageError(f"unknown agent {agent!r}", hint=f"use one of: {', '.join(folders)}")
    if scope not in ("user", "project"):
        raise UsageError(f"unknown scope {scope!r}", hint="use user or project")
    return (home if scope == "user" else project) / folders[agent]
