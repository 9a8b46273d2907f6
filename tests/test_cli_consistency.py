"""One exit-code table everywhere, help examples that do not wrap, and the small consistency
promises of `jobs list`, `env` and `inspect`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ptq_validators.cli.epilogs import exit_code_lines
from ptq_validators.launch.runner import LocalRunner
from tests.conftest import FIXTURES, ROOT


def command_paths() -> list[tuple[str, ...]]:
    """Every command and subcommand of ``ptqv``, read from the app itself."""
    import typer

    from ptq_validators.cli.app import app

    root = typer.main.get_command(app)
    paths: list[tuple[str, ...]] = []

    def walk(group, prefix: tuple[str, ...]) -> None:
        for name in group.list_commands(None):
            command = group.get_command(None, name)
            paths.append((*prefix, name))
            if hasattr(command, "list_commands"):
                walk(command, (*prefix, name))

    walk(root, ())
    return paths


def test_every_command_is_walked():
    names = {" ".join(path) for path in command_paths()}
    assert {"gate", "scan", "render", "launch", "jobs", "jobs list", "env", "inspect", "plan"} <= names


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_help_shows_the_exit_codes_and_unwrapped_examples(ptqv, monkeypatch, path):
    monkeypatch.setenv("COLUMNS", "80")
    result = ptqv(*path, "--help")
    assert result.code == 0
    lines = result.stdout.splitlines()
    table = "\n".join(f"    {line}" for line in exit_code_lines())
    assert f"  Exit codes:\n{table}\n" in result.stdout + "\n", path
    starts = [i for i, line in enumerate(lines) if line.strip() in ("Example:", "Examples:")]
    assert starts, f"{path}: no examples"
    block = lines[starts[0] + 1 :]
    examples = block[: block.index("")] if "" in block else block
    assert examples and all(line.startswith("    ptqv ") for line in examples), examples
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]


def test_readme_shows_the_same_exit_code_table():
    from ptq_validators.errors import EXIT_CODES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\d+)` \| (.+) \|$", readme, flags=re.MULTILINE)
    assert [(int(code), meaning) for code, meaning in rows] == list(EXIT_CODES)


def test_jobs_list_says_no_jobs(ptqv, tmp_path: Path):
    result = ptqv("jobs", "list", "--root", tmp_path)
    assert result.code == 0 and result.stdout == ""
    assert result.stderr == f"ptqv: no jobs under {tmp_path}\n"


def _fake_tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_env_does_not_recommend_slurm_when_the_controller_does_not_answer(tmp_path: Path, monkeypatch):
    # Real processes: an sbatch that exists and an sinfo that hangs as it does when slurmctld is
    # down; the probe must give up after its timeout and not send the user to SLURM.
    from ptq_validators.preflight import env

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_tool(bin_dir, "sbatch", "exit 0")
    _fake_tool(bin_dir, "sinfo", "exec sleep 30")
    monkeypatch.setattr(env, "TOOL_TIMEOUT_S", 0.5)
    environ = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    slurm = env.detect_slurm(LocalRunner(environ))
    assert slurm["available"] and "did not finish within" in slurm["error"]
    mode = env.run_mode([], slurm, [])
    assert mode["mode"] == "none" and "controller did not answer" in mode["reason"]
    _fake_tool(bin_dir, "sinfo", "echo 'batch*|up|4:00:00|2|gpu:h100:8'")
    answered = env.detect_slurm(LocalRunner(environ))
    assert env.run_mode([], answered, [])["mode"] == "slurm"


def test_env_probes_have_short_timeouts():
    from ptq_validators.preflight.env import TOOL_TIMEOUT_S

    assert TOOL_TIMEOUT_S <= 5


def test_inspect_uses_units_that_fit_a_small_model(ptqv):
    result = ptqv("inspect", FIXTURES / "src-llama", "--gpu", "H100")
    weights = next(line for line in result.stdout.splitlines() if line.startswith("weights: "))
    assert weights == "weights: 344.7 K parameters, 673.2 KiB in 1 file(s)"
    sizing = next(line for line in result.stdout.splitlines() if line.startswith("calibration: "))
    assert sizing.endswith("needs ~841.6 KiB")


def test_units():
    from ptq_validators.units import binary_size, count

    assert [count(n) for n in (999, 1000, 344_704, 8_030_000_000, 1_000_000_000_000)] == [
        "999",
        "1.0 K",
        "344.7 K",
        "8.0 B",
        "1.0 T",
    ]
    assert [binary_size(n) for n in (1023, 1024, 689_408, 16 * 2**30, 5 * 2**40)] == [
        "1023 B",
        "1.0 KiB",
        "673.2 KiB",
        "16.0 GiB",
        "5.0 TiB",
    ]
