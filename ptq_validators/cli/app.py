"""The Typer application. Each command group lives in its own module and registers itself there.

A command module is imported only when one of its commands runs: ``COMMANDS`` maps each command
name to its module, so ``ptqv gate`` never compiles or imports the launch or pre-flight code, and
``SUMMARIES`` holds the first sentence of each command's help, so the top-level help lists them
all without importing any (``tests/test_cli_imports.py`` checks both against the loaded commands).
Command modules import their heavy dependencies inside the command bodies.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

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
# Command name -> the first sentence of its help, all the top-level listing shows of it.
SUMMARIES: dict[str, str] = {
    "gate": "Judge an exported checkpoint against its source: size, bits, coverage, metadata drift.",
    "scan": "Inventory of one checkpoint: format, declared config, precision counts, bits per weight.",
    "demo": "Run the whole gate on a bundled tiny source / NVFP4 export pair (made by ModelOpt).",
    "env": "Detect GPUs, SLURM, containers, the ModelOpt checkout and package versions; say where to "
    "run and which format to choose.",
    "inspect": "Inspect a model: architecture, remote code and its imports, MoE/VLM/hybrid/MTP, source "
    "quantization, parameters and GPU sizing, ModelOpt support, and the path to take.",
    "plan": "Apply a recipe to the model's real module names (built on the meta device, no weights) "
    "and report per-group coverage, pattern problems and the verdict.",
    "render": "Render a job's files into its workspace and print their paths.",
    "launch": "Run a rendered job here (--local) or on a cluster (--cluster) and record it in jobs.json.",
    "jobs": "Launched jobs, local or on a cluster: list, status, logs, cancel, wait.",
    "canary": "Serve the export (or reach a server), ask a fixed prompt set, and judge the answers.",
    "remote": "Run commands and copy files on a cluster from clusters.yaml.",
    "skills": "The agent skill pack: install it into an agent's skills folder.",
    "docs": "Print a reference for agents; without TOPIC, list them with what each is for.",
}
# Settings every Typer of ptqv shares (the root app and the one each module registers into).
SETTINGS = {"add_completion": False, "pretty_exceptions_enable": False, "rich_markup_mode": None}


class LazyGroup(TyperGroup):
    """The root command group: loads a command's module on first use; its help lists the
    commands from ``SUMMARIES``."""

    _listing = False  # True while the help lists the commands

    # ``ctx`` is typed Any: typer's Context class differs between the typer versions allowed.
    def list_commands(self, ctx: Any) -> list[str]:
        return list(dict.fromkeys([*COMMANDS, *self.commands]))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            if self._listing:  # a stand-in that carries only the summary the listing shows
                return TyperCommand(cmd_name, help=SUMMARIES[cmd_name])
            self._load(COMMANDS[cmd_name])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False

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
