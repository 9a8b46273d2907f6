"""The `ptqv` entry point: help, version, exit codes, error lines, and the header-only promise."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import FIXTURES, ROOT
from tests.conftest import run_ptqv as run


def test_help_lists_the_commands_and_exit_codes():
    from ptq_validators.cli.epilogs import exit_code_lines

    result = run("--help")
    assert result.returncode == 0
    for command in ("gate", "scan", "demo", "env", "inspect", "plan", "render", "launch", "jobs"):
        assert f"\n  {command} " in result.stdout, command
    for line in exit_code_lines():
        assert f"\n    {line}\n" in result.stdout, line


def test_every_command_help_has_an_example():
    for command in ("gate", "scan", "demo"):
        result = run(command, "--help")
        assert result.returncode == 0 and "Example" in result.stdout, command


def test_version(ptqv):
    from ptq_validators import __version__

    assert ptqv("--version").stdout == f"ptqv {__version__}\n"


def test_unknown_option_is_a_usage_error(ptqv):
    assert ptqv("gate", "--bogus").code == 2


def test_debug_variable_shows_the_traceback():
    quiet = run("scan", "/nonexistent/ckpt")
    assert quiet.returncode == 3 and "Traceback" not in quiet.stderr
    assert quiet.stderr.splitlines()[0] == "ptqv: error: /nonexistent/ckpt: no such directory"
    loud = run("scan", "/nonexistent/ckpt", env={"PTQV_DEBUG": "1"})
    assert loud.returncode != 0 and "Traceback" in loud.stderr


def test_gate_and_scan_never_import_torch_or_transformers():
    program = textwrap.dedent(f"""
        import json, sys
        from ptq_validators.cli import main
        for argv in (["gate", {str(FIXTURES / "modelopt-nvfp4-moe")!r}, "--source",
                      {str(FIXTURES / "src-moe")!r}, "--qformat", "nvfp4", "--json"],
                     ["scan", {str(FIXTURES / "llmc-nvfp4-llama")!r}, "--json"]):
            try:
                main(argv)
            except SystemExit as exc:
                assert exc.code == 0, (argv, exc.code)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "numpy"))
        print(json.dumps(heavy), file=sys.stderr)
    """)
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []


def test_demo_runs_the_gate_on_the_bundled_pair(ptqv):
    result = ptqv("demo")
    assert result.code == 0, result.stdout
    assert result.stdout.startswith("**Verdict: PASS** — all ")
    assert "| Check | Result |\n|---|---|\n| Size vs source | PASS" in result.stdout
    assert ptqv("demo", "--json").json()["verdict"] == "pass"


def test_bundled_example_is_the_real_tool_fixture():
    for example, fixture in (("source", "src-llama"), ("nvfp4", "modelopt-nvfp4-llama")):
        left, right = ROOT / "examples" / "tiny-llama" / example, FIXTURES / fixture
        names = sorted(p.name for p in left.iterdir())
        assert names == sorted(p.name for p in right.iterdir())
        for name in names:
            assert (left / name).read_bytes() == (right / name).read_bytes(), name


def _entry_point(*args: str) -> subprocess.CompletedProcess[str]:
    """``ptqv ARGS`` through the process entry point, with an atexit handler that reports."""
    program = textwrap.dedent(f"""
        import atexit, sys
        atexit.register(lambda: print("atexit ran", file=sys.stderr))
        sys.argv = ["ptqv", *{list(args)!r}]
        from ptq_validators.cli import main
        main()
    """)
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_only_gate_scan_and_the_top_level_help_skip_the_interpreter_teardown():
    # Every other command exits the ordinary way: atexit handlers run, files and connections close.
    cases = (
        (("--version",), 0),
        (("--help",), 0),
        (("docs",), 0),
        (("scan", "/nonexistent/ckpt"), 3),
        (("scan", "--bogus"), 2),
    )
    for args, code in cases:
        result = _entry_point(*args)
        assert result.returncode == code, result.stderr
        ordinary = args[0] not in ("gate", "scan", "--help", "--version")
        assert ("atexit ran" in result.stderr) is ordinary, (args, result.stderr)
        assert result.stdout or code, args  # the output was flushed before the fast exit
    scanned = _entry_point("scan", str(FIXTURES / "llmc-nvfp4-llama"), "--json")
    assert scanned.returncode == 0 and json.loads(scanned.stdout)["kind"] == "ptqv-scan"
