"""The wheel carries the bundled data, and `ptqv demo` works from the wheel in its own venv.

The venv has no system site packages: pip installs the wheel *with its dependencies* (from the
package index pip is configured with), so a missing or wrong runtime dependency fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
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


@pytest.fixture(scope="session")
def wheel_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site packages) holding the wheel and its dependencies."""
    env_dir = tmp_path_factory.mktemp("wheel-venv")
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    # The outer pip installs into the venv (`--python`), so the venv needs no pip of its own.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return env_dir


def test_wheel_contents(wheel: Path) -> None:
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
def test_demo_runs_from_the_wheel_venv(wheel_venv: Path, tmp_path: Path) -> None:
    # Outside the checkout and without PYTHONPATH, only the venv's own packages are importable.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(wheel_venv / "bin" / "ptqv"), "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "/_data/examples/tiny-llama/" in result.stderr
    assert result.stdout.startswith("**Verdict: PASS** — ")
    assert "| Check | Result |" in result.stdout


def test_wheel_venv_sees_no_system_packages(wheel_venv: Path) -> None:
    """The demo above proves the declared dependencies suffice only if nothing else leaks in."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('pytest') is not None)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", probe], env=env, timeout=60)
    assert result.returncode == 0, "pytest is importable in the wheel venv: system site packages leak in"
