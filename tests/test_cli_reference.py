"""``python -m ptq_validators.cli_reference`` regenerates references/cli.md only when run bare."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(("argument", "code"), [("--help", 0), ("-h", 0), ("--check", 2)])
def test_an_argument_writes_nothing(argument: str, code: int) -> None:
    target = ROOT / "references" / "cli.md"
    before = target.stat().st_mtime_ns
    result = subprocess.run(
        [sys.executable, "-m", "ptq_validators.cli_reference", argument],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == code
    assert "regenerates references/cli.md" in (result.stdout if code == 0 else result.stderr)
    assert target.stat().st_mtime_ns == before  # not rewritten
