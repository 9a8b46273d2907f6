"""`ptqv skills install` and `ptqv docs`: the agent skill pack and its references, from wherever
the package is installed (a wheel carries them under ``ptq_validators/_data/``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ptq_validators.cli.epilogs import epilog
from ptq_validators.errors import UsageError

skills_app = typer.Typer(
    help="The agent skill pack: install it into an agent's skills folder.",
    epilog=epilog("ptqv skills install --agent claude --scope user"),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@skills_app.command(
    "install",
    epilog=epilog("ptqv skills install --agent claude --scope user", "ptqv skills install --target ./skills"),
)
def install(
    target: Path | None = typer.Option(None, "--target", help="Install into this folder."),
    agent: str | None = typer.Option(
        None, "--agent", help="claude (.claude/skills), codex or agents (.agents/skills) [agents]."
    ),
    scope: str = typer.Option("project", "--scope", help="user (home folder) or project (current folder)."),
    force: bool = typer.Option(
        False, "--force", help="Replace files that were edited since ptqv wrote them."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Copy every skill, with the references it names, into an agent's skills folder.

    Each skill becomes a self-contained folder (no links). Files edited since ptqv installed
    them are not overwritten without --force. Prints each file and what was done to it.
    """
    from ptq_validators import skillpack

    if target is not None and agent is not None:
        raise UsageError("give --target or --agent, not both")
    if target is None:
        target = skillpack.agent_folder(agent or "agents", scope, home=Path.home(), project=Path.cwd())
    rows = skillpack.install(target, force=force)
    if as_json:
        typer.echo(
            json.dumps(
                {"schema_version": 1, "kind": "ptqv-skills-install", "target": str(target), "files": rows}
            )
        )
        return
    for row in rows:
        typer.echo(f"{row['action']}\t{row['path']}")


def docs(
    topic: str | None = typer.Argument(None, help="A reference name (e.g. errors, checkpoint-validation)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print a reference for agents; without TOPIC, list them with what each is for."""
    from ptq_validators.resources import data_dir

    folder = data_dir("references")
    topics = {p.stem: p for p in sorted(folder.glob("*.md"))}
    if topic is None:
        listing = [{"name": name, "path": str(path), "about": _about(path)} for name, path in topics.items()]
        if as_json:
            typer.echo(json.dumps({"schema_version": 1, "kind": "ptqv-docs", "topics": listing}))
        else:
            for item in listing:
                typer.echo(f"{item['name']}\t{item['about']}")
        return
    name = topic.removesuffix(".md")
    if name not in topics:
        raise UsageError(f"no reference {topic!r}", hint=f"choose one of: {', '.join(topics)}")
    text = topics[name].read_text(encoding="utf-8")
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "schema_version": 1,
                    "kind": "ptqv-docs",
                    "name": name,
                    "path": str(topics[name]),
                    "text": text,
                }
            )
        )
    else:
        typer.echo(text, nl=False)


def _about(path: Path) -> str:
    """A reference's one-line purpose: its "Load this ..." sentence, else its title."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Load this"):
            sentence = " ".join(lines[i : i + 3]).split(". ")[0]
            return sentence.rstrip(".") + "."
    return lines[0].lstrip("# ") if lines else ""


def register(app: typer.Typer) -> None:
    """Add the skills group and docs to ``app``."""
    app.add_typer(skills_app, name="skills")
    app.command("docs", epilog=epilog("ptqv docs errors", "ptqv docs --json"))(docs)
