"""The Typer application. Each command group lives in its own module and registers itself there.

A command module is imported only when one of its commands runs (or when the top-level help
lists them all): ``COMMANDS`` maps each command name to its module, so ``ptqv gate`` never
compiles or imports the launch or pre-flight code. Command modules import their heavy
dependencies inside the command bodies.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from ptq_validators import __version__
from ptq_validators.cli.epilogs import exit_code_lines

# Command name -> module under ptq_validators.cli whose ``register(app)`` adds it, in the order
# the top-level help lists them.
COMMANDS: dict[str, str] = {
    "gate": "gate_commands",
    "scan": "gate_commands",
    "demo": "gate_commands",
    "env": "preflight_commands",
    "inspect": "preflight_commands",
    "plan": "preflight_commands",
    "render": "launch_commands",
    "launch": "launch_commands",
    "jobs": "launch_commands",
    "canary": "canary_commands",
    "remote": "remote_commands",
    "skills": "skills_commands",
    "docs": "skills_commands",
}
# Settings every Typer of ptqv shares (the root app and the one each module registers into).
SETTINGS = {"add_completion": False, "pretty_exceptions_enable": False, "rich_markup_mode": None}


class LazyGroup(TyperGroup):
    """The root command group: loads a command's module on first use."""

    # ``ctx`` is typed Any: typer's Context class differs between the typer versions allowed.
    def list_commands(self, ctx: Any) -> list[str]:
        return list(dict.fromkeys([*COMMANDS, *self.commands]))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self._load(COMMANDS[cmd_name])
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and not args[0].startswith("-") and args[0] not in COMMANDS:
            # an unknown name: load every module so the "did you mean" hint sees every command
            for module in dict.fromkeys(COMMANDS.values()):
                self._load(module)
        return super().resolve_command(ctx, args)

    def _load(self, module_name: str) -> None:
        module = importlib.import_module(f"ptq_validators.cli.{module_name}")
        holder = typer.Typer(**SETTINGS)  # type: ignore[arg-type]
        holder.callback()(_no_op)  # a callback keeps a one-command module a group
        module.register(holder)
        for name, command in typer.main.get_group(holder).commands.items():
            self.commands.setdefault(name, command)


def _no_op() -> None:
    """Placeholder callback of a module's holder app (never shown)."""


app = typer.Typer(
    name="ptqv",
    cls=LazyGroup,
    help="\n\n".join(
        [
            "Pre-flight checks, job templates and the post-PTQ gate for quantized LLM checkpoints.",
            "\b\nExit codes (every command):\n" + "\n".join(f"  {line}" for line in exit_code_lines()),
        ]
    ),
    no_args_is_help=True,
    **SETTINGS,  # type: ignore[arg-type]
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
