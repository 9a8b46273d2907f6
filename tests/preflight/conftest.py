"""Shared helpers for the pre-flight tests: stand-in executables and the real-config models."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parent / "configs"
FAMILIES = sorted(p.name for p in CONFIGS.iterdir() if (p / "config.json").is_file())


def write_stand_in(bin_dir: Path, name: str, script: str) -> Path:
    """Write an executable ``#!/bin/sh`` stand-in for a tool this machine does not have."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def bare_environ(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds only an empty stand-in folder (no GPU, SLURM, docker)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    return {"PATH": str(bin_dir), "HOME": str(home), "LANG": os.environ.get("LANG", "C.UTF-8")}


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def copy_config(family: str, dest: Path) -> Path:
    """A fresh model directory holding only the real-architecture config of ``family``."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text((CONFIGS / family / "config.json").read_text("utf-8"), encoding="utf-8")
    return dest
