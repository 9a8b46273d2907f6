"""The wheel carries the bundled data, and `ptqv demo` works from an installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("ptq_validators-*.whl")
    return built


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "ptq_validators/cli/app.py",
        "ptq_validators/recipes/data/modelopt_qformats.yaml",
        "ptq_validators/recipes/data/llmc_schemes.yaml",
        "ptq_validators/preflight/data/gpus.yaml",
        "ptq_validators/_data/examples/tiny-llama/source/model.safetensors",
        "ptq_validators/_data/examples/tiny-llama/nvfp4/hf_quant_config.json",
        "ptq_validators/_data/templates/sbatch.sh.j2",
        "ptq_validators/_data/references/launcher.md",
    }
    assert expected <= names, expected - names
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


@pytest.mark.slow
def test_demo_runs_from_the_installed_wheel(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    # System site packages provide the dependencies (typer, pydantic, ...); the package itself
    # comes from the wheel, and the demo runs outside the checkout.
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--force-reinstall",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(env_dir / "bin" / "ptqv"), "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "/_data/examples/tiny-llama/" in result.stderr
    assert result.stdout.startswith("| Check | Result |")
