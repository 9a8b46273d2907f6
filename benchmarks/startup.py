"""Time the small cases, where start-up and imports are the whole cost: `ptqv --help`,
`ptqv gate --help`, and the gate and scan on a tiny fixture, beside the interpreter's own
start-up (`python -c pass`) measured in the same run. Each runs in a fresh process; wall and CPU
time are medians of ``--repeat`` runs. Run it twice to see both sides of Python's bytecode
cache: once as is, once with ``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__`` (every module
of this package compiled on each start).

    python benchmarks/startup.py [--repeat 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TINY = HERE.parent / "tests" / "fixtures" / "data"
# Times the child from inside a wrapper process, so that the wrapper's own start-up (as long as
# the cases here) is not counted; gate_at_scale.py times its cases the same way.
WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, code)
"""


def measure(argv: list[str], repeat: int) -> dict[str, float]:
    """Median wall and CPU seconds of ``argv`` over ``repeat`` fresh processes, peak RSS in MiB."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, check=True
        )
        runs.append([float(x) for x in out.stdout.split()])
    return {
        "wall_s": statistics.median(r[0] for r in runs),
        "cpu_s": statistics.median(r[1] for r in runs),
        "peak_mib": max(r[2] for r in runs) / 1024,
        "exit": int(runs[-1][3]),
    }


def cases() -> list[tuple[str, list[str]]]:
    ptqv = [sys.executable, "-m", "ptq_validators"]
    gate = [*ptqv, "gate", str(TINY / "modelopt-nvfp4-moe"), "--source", str(TINY / "src-moe")]
    return [
        ("python -c pass (interpreter start-up)", [sys.executable, "-c", "pass"]),
        ("ptqv --help", [*ptqv, "--help"]),
        ("ptqv gate --help", [*ptqv, "gate", "--help"]),
        ("gate, tiny MoE fixture (35 layers)", [*gate, "--qformat", "nvfp4"]),
        ("scan, tiny MoE fixture", [*ptqv, "scan", str(TINY / "modelopt-nvfp4-moe")]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [{"case": case, **measure(argv, args.repeat)} for case, argv in cases()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| case | wall s | CPU s | peak MiB |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['wall_s']:.3f} | {row['cpu_s']:.3f} | {row['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
