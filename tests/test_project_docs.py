"""Citations in code name files and sections that exist in this repository, and `.ci/run`
runs the README's test command."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CITED_IN = ("ptq_validators", "tests", "benchmarks", "templates", "scripts")
# a Markdown file name followed by section numbers (a section sign and digits) or a P-number
CITATION = re.compile(r"([\w./-]+\.md)[ /]*((?:§[\d.]+[,/ ]*)+|P\d+)")


def _citations() -> list[tuple[str, str, str]]:
    found = []
    for top in CITED_IN:
        for path in sorted((ROOT / top).rglob("*")):
            if (
                not path.is_file()
                or "fixtures/data" in path.as_posix()
                or path.suffix not in {".py", ".j2", ".md"}
            ):
                continue
            for match in CITATION.finditer(path.read_text(encoding="utf-8", errors="replace")):
                found.append((str(path.relative_to(ROOT)), match.group(1), match.group(2)))
    return found


CITATIONS = _citations()


def test_there_are_citations_to_check() -> None:
    assert len(CITATIONS) > 10


@pytest.mark.parametrize(("where", "target", "sections"), CITATIONS, ids=lambda v: str(v))
def test_cited_section_exists(where: str, target: str, sections: str) -> None:
    path = ROOT / target
    assert path.is_file(), f"{where} cites {target}, which is not a file of this repository"
    headings = {m.group(1) for m in re.finditer(r"^#+ ([\d.]+?)\.? ", path.read_text(), re.MULTILINE)}
    for number in re.findall(r"§([\d]+(?:\.\d+)*)", sections):
        assert number in headings, f"{where} cites {target} §{number}, which has no such section"
    assert "§" in sections, f"{where} cites {target} {sections}: cite a numbered section"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"```bash\n(python -m pip install torch==[^\n]*\[test\][^\n]*)\n```", readme)
    assert command, "README.md lost its test set-up command"
    install, run = (part.strip() for part in command.group(1).split("&&"))
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    installs = [i for i, line in enumerate(ci) if line.startswith(install)]
    runs = [i for i, line in enumerate(ci) if line == run]
    assert installs and runs and installs[0] < runs[0], f".ci/run must run {install!r} and then {run!r}"


def test_readme_gate_examples_are_real_output() -> None:
    """The README's report and JSON examples are what the gate prints today."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_examples.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
