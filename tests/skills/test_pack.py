"""The skill pack obeys the Agent Skills rules, its links resolve, and every command it names is
one the CLI accepts, flags included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ptq_validators.skillpack import INSTALL_HINT, relative_links
from tests.skills.pack import (
    GENERATED,
    REFERENCES,
    SKILLS,
    argv_of,
    command_lines,
    documents,
    front_matter,
    parse,
    skill_dirs,
)

ALLOWED_FIELDS = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SKILL_NAMES = [d.name for d in skill_dirs()]


def test_the_pack_has_its_three_skills_and_nothing_else_under_skills() -> None:
    assert SKILL_NAMES == ["ptq", "ptq-gate", "ptq-jobs"]
    # Codex plugin validation wants a SKILL.md in every folder under skills/
    assert all((d / "SKILL.md").is_file() for d in SKILLS.rglob("*") if d.is_dir())


@pytest.mark.parametrize("name", SKILL_NAMES)
def test_front_matter_follows_the_spec(name: str) -> None:
    meta, body = front_matter(SKILLS / name / "SKILL.md")
    assert set(meta) <= ALLOWED_FIELDS, set(meta) - ALLOWED_FIELDS
    assert meta["name"] == name and len(name) <= 64 and NAME.match(name)
    description = meta["description"]
    assert isinstance(description, str) and 1 <= len(description) <= 1024
    assert "<" not in description and ">" not in description
    assert "Use when" in description and "Do NOT use" in description
    if "compatibility" in meta:
        assert isinstance(meta["compatibility"], str) and len(meta["compatibility"]) <= 500
    metadata = meta.get("metadata", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    lines = (SKILLS / name / "SKILL.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, lines
    # the first command doubles as the check that ptqv is installed: the skill says what to do
    # when the shell cannot find it, before its first command
    first_command = body.index("```bash")
    assert "`ptqv: command not found`" in body[:first_command] and "pip install" in body[:first_command]
    # ... in one paragraph of its own, which `ptqv skills install` replaces in its copies
    hints = list(INSTALL_HINT.finditer(body))
    assert len(hints) == 1 and hints[0].end() < first_command and "pip install" in hints[0].group()


@pytest.mark.parametrize("name", SKILL_NAMES)
def test_the_reference_validator_accepts_each_skill(name: str) -> None:
    validator = pytest.importorskip("skills_ref.validator", reason="skills-ref needs Python 3.11+")
    assert validator.validate(SKILLS / name) == []


def test_descriptions_share_a_small_budget() -> None:
    total = sum(len(front_matter(SKILLS / n / "SKILL.md")[0]["description"]) for n in SKILL_NAMES)
    assert total <= 2000, total


def test_the_reference_validator_would_catch_a_bad_skill(tmp_path: Path) -> None:
    validator = pytest.importorskip("skills_ref.validator", reason="skills-ref needs Python 3.11+")
    bad = tmp_path / "ptq"
    bad.mkdir()
    (bad / "SKILL.md").write_text("---\nname: other\ndescription: x\ntriggers: a\n---\nbody\n")
    assert len(validator.validate(bad)) == 2  # unexpected field, name differs from the folder


@pytest.mark.parametrize("path", documents(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_relative_link_resolves(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for target in relative_links(text):
        assert (path.parent / target).is_file(), f"{path}: {target}"


def test_every_reference_is_reachable_and_says_when_to_read_it() -> None:
    skill_text = "".join((SKILLS / n / "SKILL.md").read_text(encoding="utf-8") for n in SKILL_NAMES)
    for ref in sorted(REFERENCES.glob("*.md")):
        # a "reference | when to read" row in at least one skill
        assert re.search(
            rf"^\| \[{re.escape(ref.name)}\]\(\.\./\.\./references/{re.escape(ref.name)}\) \| \S",
            skill_text,
            re.M,
        ), ref.name


def test_references_are_one_level_deep() -> None:
    assert not [p for p in REFERENCES.iterdir() if p.is_dir()]


COMMANDS = [c for doc in documents() if doc.name not in GENERATED for c in command_lines(doc)]


def test_the_documents_name_commands() -> None:
    assert len(COMMANDS) > 40
    assert any(c.strict for c in COMMANDS) and any(not c.strict for c in COMMANDS)


@pytest.mark.parametrize("line", COMMANDS, ids=lambda c: f"{c.file.name}: {c.text}")
def test_every_ptqv_line_parses_with_its_flags(line) -> None:
    parse(argv_of(line.text), strict=line.strict)


@pytest.mark.parametrize(
    "line",
    [
        "ptqv gate OUTPUT --source SOURCE --qformat",  # missing value
        "ptqv gate OUTPUT --source SOURCE --plans plan.json",  # misspelt flag
        "ptqv jobs frobnicate JOB_ID",  # no such command
        "ptqv launch WORKSPACE --teleport --yes",  # no such flag
        "ptqv env extra",  # unexpected argument
    ],
)
def test_the_parse_check_fails_on_wrong_commands(line: str) -> None:
    with pytest.raises(Exception) as raised:
        parse(argv_of(line), strict=False)
    assert "UsageError" in [cls.__name__ for cls in type(raised.value).__mro__]  # click's, not a crash


def test_a_missing_required_argument_fails_only_in_code_blocks() -> None:
    with pytest.raises(Exception, match="Missing"):
        parse(["gate", "OUTPUT"], strict=True)
    assert parse(["gate", "OUTPUT"], strict=False) == "ptqv gate"
