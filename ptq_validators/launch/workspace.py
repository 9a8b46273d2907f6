"""Job workspaces, after ModelOpt's convention: ``<root>/<session-id>/<model-variant>/``
holding ``scripts/`` (rendered files), ``logs/`` and ``output/``.

The session id comes from the agent's environment (``CLAUDE_CODE_SESSION_ID``,
``CODEX_THREAD_ID``), else from ``<root>/.session-id``, created once with a generated id, so that
every command in the same workspaces root agrees on it.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ptq_validators.errors import InputError

SESSION_ENV_VARS = ("CLAUDE_CODE_SESSION_ID", "CODEX_THREAD_ID")
SESSION_FILE = ".session-id"
DEFAULT_ROOT = Path("workspaces")
ROOT_ENV_VAR = "PTQV_WORKSPACES"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """``text`` reduced to a file-name-safe word (letters, digits, ``._-``)."""
    name = _UNSAFE.sub("_", text).strip("._")
    return name[:80] or "job"


def default_root(environ: Mapping[str, str] = os.environ) -> Path:
    """The workspaces root when none is given: ``$PTQV_WORKSPACES``, else ``./workspaces``."""
    return Path(environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT)


def session_id(root: Path, environ: Mapping[str, str] = os.environ) -> str:
    """The agent's session id, or the id stored under ``root`` (generated on first use)."""
    for var in SESSION_ENV_VARS:
        if environ.get(var):
            return safe_name(environ[var])
    stored = root / SESSION_FILE
    if stored.is_file():
        return safe_name(stored.read_text(encoding="utf-8").strip())
    new = f"manual-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    root.mkdir(parents=True, exist_ok=True)
    stored.write_text(new + "\n", encoding="utf-8")
    return new


def model_variant(model: str, fmt: str) -> str:
    """``<model basename>-<format>``, e.g. ``Qwen3-8B-nvfp4`` for ``Qwen/Qwen3-8B`` + nvfp4."""
    base = model.rstrip("/").rsplit("/", 1)[-1]
    fmt_base = fmt.rstrip("/").rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
    return safe_name(f"{base}-{fmt_base}")


@dataclass(frozen=True)
class Workspace:
    """One job's directory. ``path`` is absolute."""

    path: Path

    @property
    def scripts(self) -> Path:
        return self.path / "scripts"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def output(self) -> Path:
        return self.path / "output"

    def create(self) -> Workspace:
        """Make the directories; an unwritable root is bad input (exit 3)."""
        try:
            for sub in (self.scripts, self.logs, self.output):
                sub.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"{self.path}: cannot create the workspace: {exc.strerror}",
                hint="choose a writable --out directory",
            ) from None
        return self


def workspace_for(root: Path, session: str, variant: str) -> Workspace:
    """The workspace of ``variant`` in ``session`` under ``root``."""
    return Workspace((root / safe_name(session) / safe_name(variant)).absolute())
