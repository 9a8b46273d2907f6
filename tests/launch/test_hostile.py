"""Hostile values render into scripts that run without executing them.

The rendered scripts are run for real, with the stand-in quantizer (which records the arguments
it receives): every value must arrive literally and no `pwned` file may appear anywhere.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ptq_validators.errors import InputError
from ptq_validators.launch.lint import lint_files
from ptq_validators.launch.render import render_job
from ptq_validators.launch.spec import load_spec
from ptq_validators.launch.workspace import Workspace
from tests.launch.conftest import STAND_IN

HOSTILE_MODEL = "$(touch pwned)`touch pwned`;touch pwned"
HOSTILE_NOTE = 'it\'s "quoted" $(touch pwned) > redirect < in | pipe & ${HOME}'
PIN = "transformers>=4.57,<4.58"


def hostile_spec(tmp_path: Path, **changes: object) -> dict[str, object]:
    return {
        "model": HOSTILE_MODEL,
        "qformat": "fp8",
        "dataset": "a dataset; touch pwned",
        "output": str(tmp_path / "out dir 'with' \"quotes\" $(touch pwned)"),
        "hf_cache": str(tmp_path / "hf cache $(touch pwned)"),
        "env": {"NOTE": HOSTILE_NOTE},
        "quantizer_command": STAND_IN,
        **changes,
    }


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    """A working directory whose name has spaces and both quotes."""
    work = tmp_path / "work dir 'single' \"double\""
    work.mkdir()
    return work


def run(script: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script)], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def no_pwned(root: Path) -> None:
    assert not list(root.rglob("pwned")), "a hostile value was executed"


@pytest.mark.parametrize("kind", ["direct", "llmcompressor"])
def test_local_job_runs_with_hostile_values(kind: str, hostile_dir: Path, shellcheck: str) -> None:
    extra = {"qformat": None, "scheme": "W4A16"} if kind == "llmcompressor" else {}
    spec = load_spec(None, {k: v for k, v in hostile_spec(hostile_dir, **extra).items() if v is not None})
    ws = Workspace(hostile_dir / "workspaces" / "s" / "job").create()
    job = render_job(spec, kind, ws)
    assert lint_files(job.files) == []
    done = run(ws.scripts / "job.sh", hostile_dir)
    assert done.returncode == 0, done.stderr
    no_pwned(hostile_dir.parent)
    full = json.loads((Path(spec.output) / "stand_in.json").read_text())  # type: ignore[arg-type]
    smoke = json.loads((ws.output / "smoke" / "stand_in.json").read_text())
    assert (smoke["phase"], full["phase"]) == ("smoke", "full")
    assert full["note"] == HOSTILE_NOTE
    if kind == "direct":
        assert full["argv"][:2] == ["--pyt_ckpt_path", HOSTILE_MODEL]
        assert full["argv"][full["argv"].index("--dataset") + 1] == "a dataset; touch pwned"
        assert full["argv"][full["argv"].index("--export_path") + 1] == spec.output
        assert smoke["argv"][smoke["argv"].index("--calib_size") + 1] == "4"
    else:
        assert full["argv"] == [str(ws.scripts / "quantize.py"), "full"]
        source = (ws.scripts / "quantize.py").read_text()
        namespace: dict[str, object] = {}
        exec(compile(source, "quantize.py", "exec"), namespace)  # constants only; main() is not called
        assert namespace["MODEL"] == HOSTILE_MODEL


def test_nemotron_dotlist_keeps_hostile_values_literal(hostile_dir: Path) -> None:
    spec = load_spec(None, hostile_spec(hostile_dir, hf_cache=None))
    ws = Workspace(hostile_dir / "ws").create()
    render_job(spec, "nemotron", ws)
    done = run(ws.scripts / "job.sh", hostile_dir)
    assert done.returncode == 0, done.stderr
    no_pwned(hostile_dir.parent)
    full = json.loads((ws.output / "megatron" / "stand_in.json").read_text())
    assert f"args.hf_model_id={HOSTILE_MODEL}" in full["argv"]
    assert "args.calib_size=512" in full["argv"]


def test_slurm_and_docker_scripts_with_hostile_values_lint_clean(hostile_dir: Path, shellcheck: str) -> None:
    for kind, extra in (
        ("slurm", {"container": "img:1", "extra_pip": [PIN]}),
        ("docker", {"container": "img:1"}),
    ):
        spec = load_spec(None, hostile_spec(hostile_dir, **extra))
        job = render_job(spec, kind, Workspace(hostile_dir / kind).create())
        assert lint_files(job.files) == []
    run_sh = (hostile_dir / "slurm" / "scripts" / "run.sh").read_text()
    assert f"python -m pip install '{PIN}'" in run_sh


def test_pip_ranges_survive_the_shell(hostile_dir: Path) -> None:
    """The `<`/`>` of a pin reach pip intact (no redirection): checked with a fake `python`."""
    fake_bin = hostile_dir / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").write_text(
        '#!/bin/sh\nif [ "$1" = -m ]; then printf "%s\\n" "$@" > "$PIP_ARGS"; fi\n'
    )
    (fake_bin / "python").chmod(0o755)
    spec = load_spec(None, hostile_spec(hostile_dir, extra_pip=[PIN, "fire"], smoke=False))
    ws = Workspace(hostile_dir / "ws").create()
    render_job(spec, "direct", ws)
    args_file = hostile_dir / "pip-args"
    done = subprocess.run(
        ["bash", str(ws.scripts / "job.sh")],
        cwd=hostile_dir,
        capture_output=True,
        text=True,
        env={"PATH": f"{fake_bin}:/usr/bin:/bin", "PIP_ARGS": str(args_file)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert args_file.read_text().splitlines() == ["-m", "pip", "install", PIN, "fire"]
    assert not list(hostile_dir.glob("4.5*")), "a `>` became a redirection"


def test_launcher_refuses_what_it_cannot_quote(hostile_dir: Path) -> None:
    spec = load_spec(None, hostile_spec(hostile_dir))
    with pytest.raises(InputError, match="needs a Hugging Face repo id"):
        render_job(spec, "launcher", Workspace(hostile_dir / "ws"))
