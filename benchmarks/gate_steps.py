"""Where a gate's time goes: the steps of ``run_gate`` on one export and its source, in one
process, gc paused as the command pauses it, each step's wall time printed in order.

``--stop-after STEP`` leaves (``os._exit``) right after that step, so that an instruction count
of the whole process (``valgrind --tool=callgrind``) taken once per step gives each step's
instructions by difference, as the README's breakdown of the 671B gate was measured:

    python benchmarks/gate_steps.py EXPORT SOURCE [--stop-after table]

Steps: imports (the CLI and the gate's modules), open-source, summary, open-export, table,
scales. The checks and the report are what the command itself costs beyond them (time the real
``ptqv gate``, or count its instructions, and subtract ``--stop-after scales``).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import time

STEPS = ("imports", "open-source", "summary", "open-export", "table", "scales")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("export")
    parser.add_argument("source")
    parser.add_argument("--stop-after", choices=STEPS)
    args = parser.parse_args()
    gc.disable()
    times: list[tuple[str, float]] = []
    start = time.perf_counter()

    def done(step: str) -> None:
        nonlocal start
        now = time.perf_counter()
        times.append((step, now - start))
        start = now
        if args.stop_after == step:
            os._exit(0)

    for module in ("ptq_validators.cli.app", "ptq_validators.cli.gate_commands"):
        importlib.import_module(module)  # typer and the CLI, as the command imports them
    from ptq_validators.checkpoint import Checkpoint
    from ptq_validators.gate import SCALAR_SCALE_ROLES
    from ptq_validators.gate_documents import read_scalar_scales
    from ptq_validators.io.source import LocalSource
    from ptq_validators.layers import build_layer_table
    from ptq_validators.source_summary import summarize

    done("imports")
    source = Checkpoint.open(LocalSource(args.source))
    done("open-source")
    summary = summarize(source)
    done("summary")
    del source
    export = Checkpoint.open(LocalSource(args.export))
    done("open-export")
    table = build_layer_table(export, source_shapes=summary.shapes)
    done("table")
    read_scalar_scales(export, table.grouping, SCALAR_SCALE_ROLES)
    done("scales")
    for step, seconds in times:
        print(f"{step:12s} {seconds * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
