"""The Typer application. Each command group lives in its own module and registers itself here.

Command modules import their heavy dependencies inside the command bodies, so that
``ptqv --help`` and the header-only commands stay fast.
"""

from __future__ import annotations

import typer

from ptq_validators import __version__
from ptq_validators.cli import (
    canary_commands,
    gate_commands,
    launch_commands,
    preflight_commands,
    remote_commands,
    skills_commands,
)

app = typer.Typer(
    name="ptqv",
    help=(
        "Pre-flight checks, job templates and the post-PTQ gate for quantized LLM checkpoints.\n\n"
        "Exit codes: 0 pass, 1 a check failed, 2 usage, 3 bad input, 4 remote, 5 template, "
        "70 internal error."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ptqv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Pre-flight checks, job templates and the post-PTQ gate for quantized LLM checkpoints."""


for _module in (
    gate_commands,
    preflight_commands,
    launch_commands,
    canary_commands,
    remote_commands,
    skills_commands,
):
    _module.register(app)
