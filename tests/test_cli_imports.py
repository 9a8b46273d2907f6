"""The small commands stay near the interpreter's start-up: no pydantic, jinja2 or (for help)
yaml, and only the command module that runs. Checked in fresh processes, so the gain cannot
silently rot when someone adds a top-level import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import FIXTURES, ROOT

# Records, for each watched package, the file of the frame whose import first reached it.
PROBE = textwrap.dedent("""
    import json, sys, traceback
    WATCHED = {"pydantic", "jinja2", "yaml", "torch", "transformers"}
    first = {}

    class Watch:
        def find_spec(self, name, path, target=None):
            top = name.split(".")[0]
            if top in WATCHED and top not in first:
                frames = [f.filename for f in traceback.extract_stack()[:-1]]
                importer = [f for f in frames if not f.startswith("<frozen") and "importlib" not in f]
                first[top] = importer[-1] if importer else "?"
            return None

    sys.meta_path.insert(0, Watch())
    from ptq_validators.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
    modules = sorted(m for m in sys.modules if m.startswith("ptq_validators.cli."))
    print(json.dumps({"first_importer": first, "cli_modules": modules}), file=sys.stderr)
""")


def imports_of(*args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    report: dict[str, object] = json.loads(result.stderr.strip().splitlines()[-1])
    return report


def typer_needs_pydantic() -> bool:
    """typer 0.29 coerces every parameter through a pydantic TypeAdapter (its own import)."""
    from importlib.metadata import version

    major, minor = (int(part) for part in version("typer").split(".")[:2])
    return (major, minor) >= (0, 29)


TINY_GATE = [
    "gate",
    str(FIXTURES / "modelopt-nvfp4-llama"),
    "--source",
    str(FIXTURES / "src-llama"),
    "--qformat",
    "nvfp4",
]


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["gate", "--help"], ["scan", str(FIXTURES / "src-llama")], TINY_GATE],
    ids=["help", "gate-help", "scan", "gate"],
)
def test_no_pydantic_or_jinja2_from_our_code(argv):
    report = imports_of(*argv)
    first = report["first_importer"]
    assert isinstance(first, dict)
    assert "jinja2" not in first and "torch" not in first and "transformers" not in first, first
    if "pydantic" in first:
        # only typer itself may bring it in, and only the typer that needs it
        assert typer_needs_pydantic() and "/typer/" in first["pydantic"], first
    if argv[-1] == "--help":
        assert "yaml" not in first, first


def test_a_command_imports_only_its_own_module():
    report = imports_of("gate", "--help")
    assert report["cli_modules"] == [
        "ptq_validators.cli.app",
        "ptq_validators.cli.epilogs",
        "ptq_validators.cli.gate_commands",
        "ptq_validators.cli.options",
    ]


def test_top_level_help_imports_no_command_module():
    assert imports_of("--help")["cli_modules"] == ["ptq_validators.cli.app", "ptq_validators.cli.epilogs"]


def test_help_summaries_are_the_commands_own():
    """The listing's stand-ins shorten to what each loaded command would show, at any width."""
    import typer
    from typer.core import TyperCommand

    from ptq_validators.cli.app import COMMANDS, SUMMARIES, app

    group = typer.main.get_group(app)
    assert list(SUMMARIES) == list(COMMANDS)
    for name in COMMANDS:
        real = group.get_command(None, name)  # loads the module
        for limit in (30, 45, 70, 200):
            shown = TyperCommand(name, help=SUMMARIES[name]).get_short_help_str(limit)
            assert shown == real.get_short_help_str(limit), (name, limit)
