"""Time `ptqv gate` and `ptqv scan` on synthetic frontier-scale exports against the header floor.

Cases: Llama-3-70B, DeepSeek-V3 671B and a Kimi-K2-class 1T MoE (384 experts x 61 layers), as
ModelOpt NVFP4 / FP8 exports beside their BF16 or fine-grained FP8 sources, and a 1000-shard
export. The floor, measured in the same run on the same checkpoints, is ``header_floor.py``:
read and ``json.loads`` every shard header (both checkpoints for the gate, one for scan), which
nothing that parses headers in Python can beat. Each command runs in a fresh process; wall and
CPU time are medians of ``--repeat`` runs, taken in turn with the floor's; the ratio to the floor
is the median of the ratios of those pairs; peak memory is the largest resident set of one
process; kernel time and minor page faults (the cost of the memory a process touches, which
its instruction count does not show) are medians too; the package's modules are compiled first,
as an install leaves them. Prints a Markdown table (or ``--json``).

    python benchmarks/gate_at_scale.py --workdir /tmp/ptqv-bench [--only Kimi]
"""

from __future__ import annotations

import argparse
import compileall
import json
import statistics
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synthetic as syn  # noqa: E402

FLOOR = [sys.executable, str(HERE / "header_floor.py")]
# Times the child from inside a wrapper process, as its CPU time and peak memory are read:
# the wrapper's own interpreter start-up belongs to neither the command nor the floor.
RSS_WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, usage.ru_stime, usage.ru_minflt, code)
"""

# As ModelOpt writes them for these presets (prefix-wildcard summaries of the unquantized set).
NVFP4_EXCLUDES = [
    "lm_head",
    "model.embed_tokens",
    "model.layers.*.self_attn*",
    "model.layers.*.mlp.gate",
    "model.layers.61*",
]
FP8_EXCLUDES = ["lm_head", "model.embed_tokens", "model.layers.*.mlp.gate", "model.layers.61*"]


def build(workdir: Path) -> list[tuple[str, Path, Path, str]]:
    """Write the sources and exports once; return (label, export, source, qformat) cases."""
    cases = []
    models = (
        ("Llama-3-70B", syn.LLAMA3_70B, "bf16", ("NVFP4", "FP8")),
        ("DeepSeek-V3 671B", syn.DEEPSEEK_V3, "hf_fp8", ("NVFP4", "FP8")),
        ("Kimi-K2 1T", syn.KIMI_K2, "hf_fp8", ("NVFP4",)),
    )
    presets = {
        "NVFP4": ("modelopt_nvfp4", "nvfp4_mlp_only", NVFP4_EXCLUDES),
        "FP8": ("modelopt_fp8", "fp8", FP8_EXCLUDES),
    }
    for label, cfg, source_fmt, algos in models:
        slug = cfg["model_type"]
        source = workdir / f"{slug}-source"
        if not source.exists():
            keep = (
                (lambda m: m.endswith("mlp.gate") or "shared_head" in m)
                if source_fmt == "hf_fp8"
                else (lambda m: True)
            )
            declared = {"quantization_config": syn.FINE_GRAINED_FP8} if source_fmt == "hf_fp8" else {}
            syn.write_checkpoint(source, {**cfg, **declared}, syn.model_tensors(cfg, source_fmt, keep))
        for algo in algos:
            fmt, qformat, excludes = presets[algo]
            shardings: list[tuple[str, int | None]] = [("", None)]
            if slug == "llama" and algo == "NVFP4":
                shardings.append((", 1000 shards", 1000))
            for suffix, shard_count in shardings:
                export = workdir / f"{slug}-{algo.lower()}{'-1000' if suffix else ''}"
                if not export.exists():
                    modules = [
                        t[0].rpartition(".")[0] for t in syn.model_tensors(cfg, "bf16", lambda m: True)
                    ]
                    kept = [p for p in excludes if any(fnmatchcase(m, p) for m in modules)]
                    tensors = syn.model_tensors(
                        cfg, fmt, lambda m, kept=kept: any(fnmatchcase(m, p) for p in kept)
                    )
                    quant = {"quant_algo": algo, "kv_cache_quant_algo": None, "exclude_modules": kept}
                    if algo == "NVFP4":
                        quant["group_size"] = 16
                    syn.write_checkpoint(export, cfg, tensors, quant, shard_count=shard_count)
                cases.append((f"{label} {algo}{suffix}", export, source, qformat))
    return cases


class Run(NamedTuple):
    """One fresh process of a command: its wall and CPU seconds, peak RSS (MiB), kernel
    seconds, minor page faults and exit code."""

    wall_s: float
    cpu_s: float
    peak_mib: float
    kernel_s: float
    minor_faults: int
    exit: int


def measure(argv: list[str], repeat: int) -> dict[str, float]:
    """Median wall, CPU and kernel seconds and minor page faults, peak RSS (MiB) and exit code of
    ``argv``, each run in a fresh process ``repeat`` times."""
    return summarize([run_once(argv) for _ in range(repeat)])


def measure_beside(
    floor: list[str], argv: list[str], repeat: int
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """``measure`` of ``floor`` and of ``argv``, their runs taken in turn, and the median of
    each pair's ratio (command ÷ floor, wall and CPU). A pair runs seconds apart, so it sees one
    load of a shared machine; the medians of the two series may each come from another minute
    (on a machine whose speed drifts by half, the ratio of medians drifts with it)."""
    pairs = [(run_once(floor), run_once(argv)) for _ in range(repeat)]
    ratios = {
        "x_floor": statistics.median(r.wall_s / f.wall_s for f, r in pairs),
        "x_floor_cpu": statistics.median(r.cpu_s / f.cpu_s for f, r in pairs),
    }
    return summarize([f for f, _ in pairs]), summarize([r for _, r in pairs]), ratios


def run_once(argv: list[str]) -> Run:
    """One fresh process of ``argv``, measured."""
    out = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *argv], capture_output=True, text=True, check=True
    )
    wall, rss_kib, cpu, kernel, faults, code = out.stdout.split()
    return Run(float(wall), float(cpu), int(rss_kib) / 1024, float(kernel), int(faults), int(code))


def summarize(runs: list[Run]) -> dict[str, float]:
    return {
        "wall_s": statistics.median(run.wall_s for run in runs),
        "cpu_s": statistics.median(run.cpu_s for run in runs),
        "peak_mib": max(run.peak_mib for run in runs),
        "kernel_s": statistics.median(run.kernel_s for run in runs),
        "minor_faults": statistics.median(run.minor_faults for run in runs),
        "exit": runs[-1].exit,
    }


def tensor_count(directory: Path) -> int:
    return len(json.loads((directory / "model.safetensors.index.json").read_text())["weight_map"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ptqv-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="run only the cases whose label contains this text")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    # Time the package as an install leaves it, its modules compiled once (pip compiles them; a
    # checkout run with PYTHONDONTWRITEBYTECODE=1 would compile every module in every process).
    compileall.compile_dir(ROOT / "ptq_validators", quiet=1)
    ptqv = [sys.executable, "-m", "ptq_validators"]
    rows = []
    tiny = ROOT / "tests" / "fixtures" / "data"
    small = [
        ("`ptqv --help`", "help", [*ptqv, "--help"]),
        (
            "tiny MoE fixture (35 layers)",
            "gate",
            [
                *ptqv,
                "gate",
                str(tiny / "modelopt-nvfp4-moe"),
                "--source",
                str(tiny / "src-moe"),
                "--qformat",
                "nvfp4",
            ],
        ),
    ]
    for case, command, argv in small if not args.only else []:
        rows.append({"case": case, "command": command, **measure(argv, args.repeat)})
    for label, export, source, qformat in build(args.workdir):
        if args.only and args.only not in label:
            continue
        shards = len(list(export.glob("*.safetensors")))
        export_tensors, source_tensors = tensor_count(export), tensor_count(source)
        gate = [*ptqv, "gate", str(export), "--source", str(source), "--qformat", qformat]
        commands = [
            ("gate --json", [*gate, "--json"], [export, source], export_tensors + source_tensors),
            ("gate (Markdown)", gate, [export, source], export_tensors + source_tensors),
            ("scan --json", [*ptqv, "scan", str(export), "--json"], [export], export_tensors),
        ]
        if label == "Llama-3-70B NVFP4":
            # Reads every block scale (4.4 GB here) in 4 MiB chunks: memory must stay flat.
            commands.append(
                ("gate --deep", [*gate, "--deep"], [export, source], export_tensors + source_tensors)
            )
        for command, argv, inputs, tensors in commands:
            floor, result, ratios = measure_beside([*FLOOR, *map(str, inputs)], argv, args.repeat)
            rows.append(
                {
                    "case": f"{label} ({shards} shards, {export_tensors} tensors)",
                    "command": command,
                    **result,
                    "tensors_parsed": tensors,
                    "floor_wall_s": floor["wall_s"],
                    "floor_cpu_s": floor["cpu_s"],
                    "floor_peak_mib": floor["peak_mib"],
                    "floor_kernel_s": floor["kernel_s"],
                    "floor_minor_faults": floor["minor_faults"],
                    # Medians of the pairs' ratios; CPU seconds are what a loaded machine
                    # distorts least.
                    **ratios,
                    "s_per_100k_tensors": result["wall_s"] * 100_000 / tensors,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        "| case | command | wall (s) | CPU (s) | peak RSS (MiB) | floor wall / CPU (s) "
        "| × floor (wall) | × floor (CPU) | s / 100k tensors | kernel (s) / minor faults: command; floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        floor = f"{row['floor_wall_s']:.2f} / {row['floor_cpu_s']:.2f}" if "floor_wall_s" in row else "–"
        ratio = f"{row['x_floor']:.2f}×" if "x_floor" in row else "–"
        ratio_cpu = f"{row['x_floor_cpu']:.2f}×" if "x_floor_cpu" in row else "–"
        per = f"{row['s_per_100k_tensors']:.2f}" if "s_per_100k_tensors" in row else "–"
        memory = _kernel_and_faults(row["kernel_s"], row["minor_faults"])
        if "floor_kernel_s" in row:
            memory += f"; {_kernel_and_faults(row['floor_kernel_s'], row['floor_minor_faults'])}"
        print(
            f"| {row['case']} | {row['command']} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} | "
            f"{row['peak_mib']:.0f} | {floor} | {ratio} | {ratio_cpu} | {per} | {memory} |"
        )


def _kernel_and_faults(seconds: float, faults: float) -> str:
    """A table cell: kernel seconds and thousands of minor page faults."""
    return f"{seconds:.2f} / {faults / 1000:.1f}k"


if __name__ == "__main__":
    main()
