"""Rewrite the README's gate examples from real output: the Markdown report's head and the JSON
document shapes, each between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` markers.

The examples are made by running ``ptqv`` on the committed real-tool fixtures, so they cannot
drift from the code: ``--check`` exits 1 naming each stale block (a test runs it), and without
it the blocks are rewritten in place.

Usage::

    python scripts/readme_examples.py [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FIXTURES = "tests/fixtures/data"
# A real contradiction: a full-NVFP4 ModelOpt export gated as nvfp4_mlp_only.
REPORT_ARGS = (
    f"{FIXTURES}/modelopt-nvfp4-moe",
    "--source",
    f"{FIXTURES}/src-moe",
    "--qformat",
    "nvfp4_mlp_only",
)
PASSING_ARGS = (f"{FIXTURES}/modelopt-nvfp4-llama", "--source", f"{FIXTURES}/src-llama", "--qformat", "nvfp4")


def _ptqv(*args: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
    }
    done = subprocess.run(
        [sys.executable, "-m", "ptq_validators", *args], capture_output=True, text=True, cwd=ROOT, env=env
    )
    return done.stdout


def report_block() -> str:
    """The report down to the end of its check table."""
    lines = _ptqv("gate", *REPORT_ARGS).splitlines()
    end = next(
        i
        for i, line in enumerate(lines)
        if i > 5 and not line.startswith("|") and lines[i - 1].startswith("|")
    )
    command = "ptqv gate " + " ".join(REPORT_ARGS)
    return "\n".join(["```", f"$ {command}", *lines[:end], "```"])


def _shape(value: Any) -> Any:
    """A real document with lists of objects cut to their first element, lists of values to
    three (what a reader needs to see its shape)."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_shape(value[0])]
    if isinstance(value, list):
        return value[:3]
    return value


def _one_key_a_line(document: dict[str, Any]) -> str:
    items = [
        f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in document.items()
    ]
    return "{\n" + ",\n".join(items) + "\n}"


def json_block() -> str:
    """The gate document (one element per list), and an error document."""
    gate = json.loads(_ptqv("gate", *PASSING_ARGS, "--json"))
    gate["group_counts"] = dict(list(gate["group_counts"].items())[:1])
    error = json.loads(
        _ptqv("gate", f"{FIXTURES}/no-such-export", "--source", f"{FIXTURES}/src-llama", "--json")
    )
    body = [
        "$ ptqv gate " + " ".join(PASSING_ARGS) + " --json   # lists cut short",
        _one_key_a_line(_shape(gate)),
        "$ ptqv gate tests/fixtures/data/no-such-export --source tests/fixtures/data/src-llama --json",
        json.dumps(error, ensure_ascii=False),
    ]
    return "\n".join(["```", *body, "```"])


BLOCKS = {"gate-report": report_block, "gate-json": json_block}


def rewrite(text: str) -> tuple[str, list[str]]:
    """``text`` with every block regenerated, and the names of the blocks that changed."""
    stale = []
    for name, make in BLOCKS.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        head, found, rest = text.partition(begin)
        old, found_end, tail = rest.partition(end)
        if not found or not found_end:
            raise SystemExit(f"README.md: markers {begin} … {end} are missing")
        new = "\n" + make() + "\n"
        if new != old:
            stale.append(name)
        text = head + begin + new + end + tail
    return text, stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a block is stale; change nothing")
    args = parser.parse_args()
    text, stale = rewrite(README.read_text(encoding="utf-8"))
    if args.check:
        for name in stale:
            print(
                f"README.md: block {name} is stale (run python scripts/readme_examples.py)", file=sys.stderr
            )
        return 1 if stale else 0
    README.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
