"""Shared test helpers: the real-tool fixtures, gate runs on them, and `ptqv` runners (in process and as a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ptq_validators.cli import main
from tests.ckpt_edit import copy_checkpoint

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "data"
SRC_LLAMA = FIXTURES / "src-llama"


def manifest() -> list[dict[str, Any]]:
    return json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]


def quantized_fixtures() -> list[dict[str, Any]]:
    return [entry for entry in manifest() if entry.get("source")]


def recipe_args(entry: dict[str, Any]) -> list[str]:
    """The gate flags that state the recipe a fixture was made with."""
    recipe = entry["recipe"]
    if "auto_quantize" in recipe.get("entrypoint", ""):
        return []  # the per-layer choice is the recipe; MIXED_PRECISION metadata records it
    if recipe.get("qformat"):
        return ["--qformat", recipe["qformat"]]
    if not recipe.get("scheme"):
        return []  # GPTQModel, AutoAWQ, transformers-native: the written metadata is the recipe
    args = ["--scheme", recipe["scheme"]]
    for pattern in recipe.get("ignore") or []:
        args += ["--ignore", pattern]
    return args


def variant(tmp_path: Path, fixture: str) -> Path:
    """A private copy of the committed fixture FIXTURE, to edit into a broken variant."""
    return copy_checkpoint(FIXTURES / fixture, tmp_path / fixture)


def gate(
    ptqv: Callable[..., CliResult], output: Path, source: Path | str = SRC_LLAMA, *args: str
) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
    """`ptqv gate OUTPUT --source SOURCE --json ARGS…`: exit code, checks by id, whole report.

    SOURCE is a path, or the name of a committed fixture. Every broken variant also checks the
    Markdown report's first line: the verdict and the failing (or warning) check ids."""
    result = ptqv("gate", output, "--source", FIXTURES / source, "--json", *args)
    report = result.json()
    markdown = ptqv("gate", output, "--source", FIXTURES / source, *args)
    assert markdown.code == result.code
    assert markdown.stdout.splitlines()[0].startswith(verdict_prefix(report)), markdown.stdout[:300]
    return result.code, {check["id"]: check for check in report["checks"]}, report


def verdict_prefix(report: dict[str, Any]) -> str:
    """How the Markdown report of the JSON ``report`` must begin (what ``| head -1`` shows)."""
    failed = [c["id"] for c in report["checks"] if c["status"] == "fail"]
    warned = [c["id"] for c in report["checks"] if c["status"] == "warn"]
    if failed:
        return f"**Verdict: FAIL** — {', '.join(failed)}: "
    if warned:
        return f"**Verdict: PASS** — warnings: {', '.join(warned)}: "
    return "**Verdict: PASS** — all "


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_ptqv(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a separate process, this checkout's package first on the path."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "ptq_validators", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def ptqv(capsys: pytest.CaptureFixture[str]):
    """Run `ptqv ARGS…` in process; returns exit code, stdout and stderr."""

    def run(*args: str | Path) -> CliResult:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
