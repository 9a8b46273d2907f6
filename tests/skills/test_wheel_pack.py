"""The built wheel carries the whole pack, and an installed wheel installs self-contained skills.

The wheel and the fresh venv (no system site packages; the wheel and its declared dependencies
only) are tests/test_wheel.py's fixtures.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from ptq_validators.skillpack import relative_links
from tests.conftest import ROOT
from tests.test_wheel import wheel, wheel_venv  # noqa: F401  (fixtures)


def test_wheel_holds_every_skill_reference_and_template(wheel: Path) -> None:  # noqa: F811
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("skills", "references", "templates"):
        files = [p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files, folder
        missing = {f"ptq_validators/_data/{p.relative_to(ROOT).as_posix()}" for p in files} - names
        assert not missing, missing


@pytest.mark.slow
def test_installed_wheel_installs_skills_whose_links_resolve(wheel_venv: Path, tmp_path: Path) -> None:  # noqa: F811
    env_dir = wheel_venv
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    target = tmp_path / "agent-skills"
    done = subprocess.run(
        [str(env_dir / "bin" / "ptqv"), "skills", "install", "--target", str(target), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert all("/_data/" not in row["path"] for row in json.loads(done.stdout)["files"])
    where = subprocess.run(
        [str(python), "-c", "import ptq_validators; print(ptq_validators.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    ).stdout
    assert str(env_dir) in where  # the wheel's copy ran, not the checkout
    skills = sorted(target.glob("*/SKILL.md"))
    assert [p.parent.name for p in skills] == ["ptq", "ptq-gate", "ptq-jobs"]
    for doc in skills + sorted(target.glob("*/references/*.md")):
        for link in relative_links(doc.read_text(encoding="utf-8")):
            assert (doc.parent / link).is_file(), f"{doc}: {link}"
    docs = subprocess.run(
        [str(env_dir / "bin" / "ptqv"), "docs", "errors"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert docs.returncode == 0 and docs.stdout == (ROOT / "references" / "errors.md").read_text(
        encoding="utf-8"
    )
