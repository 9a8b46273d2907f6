"""Shared test helpers: the real-tool fixtures and an in-process `ptqv` runner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ptq_validators.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "data"


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


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


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
