"""``references/cli.md``: every command's help text, generated from the CLI itself.

The reference is the ``--help`` output of each command (groups first, then their commands, in
the order the CLI lists them) at a fixed width, so it reads the same on every machine and a
test can tell when the committed file no longer matches the code. Regenerate it with
``python -m ptq_validators.cli_reference`` from a checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

WIDTH = 100
_USAGE = "usage: python -m ptq_validators.cli_reference  (regenerates references/cli.md; no arguments)"
_HEADER = (
    "# ptqv command reference\n\n"
    "Load this for the exact flags of a command. Generated from the CLI's own `--help` by\n"
    "`python -m ptq_validators.cli_reference`; do not edit by hand (a test fails when it is stale).\n"
)


def _walk(command: Any, ctx: Any) -> list[tuple[str, str]]:
    # Typer carries its own copy of click, so groups are recognised by what they can do.
    sections = [(ctx.command_path, command.get_help(ctx))]
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True)
            sections += _walk(sub, sub_ctx)
    return sections


def render() -> str:
    """The text of ``references/cli.md`` for the CLI as it is now."""
    import typer

    from ptq_validators.cli.app import app

    root = typer.main.get_command(app)
    ctx = root.make_context("ptqv", [], resilient_parsing=True, terminal_width=WIDTH, max_content_width=WIDTH)
    parts = [_HEADER]
    for path, text in _walk(root, ctx):
        parts.append(f"\n## `{path}`\n\n```text\n{text.rstrip()}\n```\n")
    return "".join(parts)


def main(arguments: list[str]) -> None:
    """Write ``references/cli.md`` of the checkout this module was imported from; with any
    argument (``--help`` included), say what it does and write nothing."""
    if arguments:
        asked = arguments[0] in ("-h", "--help")
        print(_USAGE, file=sys.stdout if asked else sys.stderr)
        sys.exit(0 if asked else 2)
    target = Path(__file__).resolve().parent.parent / "references" / "cli.md"
    if not target.parent.is_dir():
        sys.exit(f"{target.parent}: not a checkout; run this from a clone of ptq-validators")
    target.write_text(render(), encoding="utf-8")
    print(target)


if __name__ == "__main__":
    main(sys.argv[1:])
