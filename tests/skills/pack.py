"""Reading the skill pack as data: front matter, links, `ptqv` command lines, runnable blocks.

The tests hold the Markdown to what the CLI really accepts, so this module extracts commands
from the files themselves (never from a retyped list) and parses them with the CLI's own parser.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from tests.conftest import ROOT

SKILLS = ROOT / "skills"
REFERENCES = ROOT / "references"
GENERATED = {"cli.md"}  # generated from the CLI itself: its usage lines are not commands
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
_RUNNABLE = re.compile(r"<!-- runnable: ([a-z0-9-]+) -->\n```bash\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`(ptqv [^`]+)`")


def skill_dirs() -> list[Path]:
    return sorted(p for p in SKILLS.iterdir() if p.is_dir())


def front_matter(skill_md: Path) -> tuple[dict[str, Any], str]:
    text = skill_md.read_text(encoding="utf-8")
    assert text.startswith("---\n"), f"{skill_md}: no front matter"
    head, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(head), body


def documents() -> list[Path]:
    """Every Markdown file agents read: the skills and the references."""
    return [d / "SKILL.md" for d in skill_dirs()] + sorted(REFERENCES.glob("*.md"))


@dataclass(frozen=True)
class CommandLine:
    file: Path
    text: str
    strict: bool  # a line of a code block (complete); inline mentions may leave out arguments


def command_lines(path: Path) -> list[CommandLine]:
    """The `ptqv …` commands of a document: lines of code blocks, and inline code spans in the
    prose. HTML comments (notes for maintainers) are left out."""
    text = _COMMENT.sub("", path.read_text(encoding="utf-8"))
    found = []
    for block in _FENCE.findall(text):
        found += [
            CommandLine(path, line.strip(), True)
            for line in block.splitlines()
            if line.strip().startswith("ptqv ")
        ]
    prose = _FENCE.sub("", text)
    found += [CommandLine(path, span, False) for span in _INLINE.findall(prose)]
    return found


def runnable_blocks(path: Path) -> dict[str, list[str]]:
    """``<!-- runnable: ID -->`` code blocks: their id and command lines."""
    return {
        block_id: [line.strip() for line in body.splitlines() if line.strip()]
        for block_id, body in _RUNNABLE.findall(path.read_text(encoding="utf-8"))
    }


def all_runnable() -> dict[str, list[str]]:
    """Runnable blocks of every skill, keyed ``skill#id``."""
    return {f"{d.name}#{k}": v for d in skill_dirs() for k, v in runnable_blocks(d / "SKILL.md").items()}


def parse(argv: list[str], *, strict: bool) -> str:
    """Parse ``ptqv ARGV`` with the CLI's own parser down to the leaf command, running nothing.
    Returns the command path; raises the parser's error for an unknown command or flag, a
    missing value or an extra argument. ``strict=False`` (a mention in prose) lets a required
    argument be left out: click checks those after every flag has been matched."""
    from ptq_validators.cli.app import app

    command = typer.main.get_command(app)
    name, args, parent = "ptqv", list(argv), None
    while True:
        try:
            ctx = command.make_context(name, args, parent=parent)
        except typer.Exit as done:  # an eager flag such as --version or --help
            assert done.exit_code == 0
            return name
        except Exception as error:
            # prose may name a command without its required arguments, or a group alone
            if strict or type(error).__name__ not in ("MissingParameter", "NoArgsIsHelpError"):
                raise
            return f"{parent.command_path} {name}" if parent else name
        rest = [*ctx._protected_args, *ctx.args]
        if not hasattr(command, "resolve_command") or not rest:
            return ctx.command_path
        name, command, args = command.resolve_command(ctx, rest)
        parent = ctx


def argv_of(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    assert words[0] == "ptqv", line
    return words[1:]
