"""Time `ptqv gate` and `ptqv scan` on synthetic DeepSeek-V3 671B and Llama-3-70B exports.

Baseline, measured in the same run: what the pasted validation scripts do — read
``model.safetensors.index.json`` and ``hf_quant_config.json`` and count names (no headers).
Each command runs in a fresh process; wall time is the median of ``--repeat`` runs and peak
memory is that process's maximum resident set size. Prints a Markdown table (and ``--json``).

    python benchmarks/gate_at_scale.py --workdir /tmp/ptqv-bench
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from fnmatch import fnmatchcase
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic as syn  # noqa: E402

BASELINE = """
import json, sys
index = json.load(open(sys.argv[1] + "/model.safetensors.index.json"))
quant = json.load(open(sys.argv[1] + "/hf_quant_config.json"))["quantization"]
names = index["weight_map"]
print(sum(1 for n in names if n.endswith(".weight_scale")), quant["quant_algo"])
"""
RSS_WRAPPER = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
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
    models = (("Llama-3-70B", syn.LLAMA3_70B, "bf16"), ("DeepSeek-V3 671B", syn.DEEPSEEK_V3, "hf_fp8"))
    for label, cfg, source_fmt in models:
        slug = cfg["model_type"]
        source = workdir / f"{slug}-source"
        if not source.exists():
            keep = (
                (lambda m: m.endswith("mlp.gate") or "shared_head" in m)
                if source_fmt == "hf_fp8"
                else (lambda m: True)
            )
            syn.write_checkpoint(source, cfg, syn.model_tensors(cfg, source_fmt, keep))
        for fmt, qformat, algo, excludes in (
            ("modelopt_nvfp4", "nvfp4_mlp_only", "NVFP4", NVFP4_EXCLUDES),
            ("modelopt_fp8", "fp8", "FP8", FP8_EXCLUDES),
        ):
            export = workdir / f"{slug}-{algo.lower()}"
            if not export.exists():
                modules = [t[0].rpartition(".")[0] for t in syn.model_tensors(cfg, "bf16", lambda m: True)]
                excludes = [p for p in excludes if any(fnmatchcase(m, p) for m in modules)]
                tensors = syn.model_tensors(
                    cfg, fmt, lambda m, excludes=excludes: any(fnmatchcase(m, p) for p in excludes)
                )
                quant = {"quant_algo": algo, "kv_cache_quant_algo": None, "exclude_modules": excludes}
                if algo == "NVFP4":
                    quant["group_size"] = 16
                syn.write_checkpoint(export, cfg, tensors, quant)
            cases.append((f"{label} {algo}", export, source, qformat))
    return cases


def measure(argv: list[str], repeat: int) -> tuple[float, float, int]:
    """Median wall seconds, peak RSS in MiB, and exit code of ``argv`` run ``repeat`` times."""
    walls, peak, code = [], 0.0, 0
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", RSS_WRAPPER, *argv], capture_output=True, text=True, check=True
        )
        walls.append(time.perf_counter() - start)
        rss_kib, code = (int(x) for x in out.stdout.split())
        peak = max(peak, rss_kib / 1024)
    return statistics.median(walls), peak, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ptqv-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ptqv = [sys.executable, "-m", "ptq_validators"]
    rows = []
    wall, rss, _ = measure([*ptqv, "--help"], args.repeat)
    rows.append({"case": "`ptqv --help`", "command": "help", "wall_s": wall, "peak_mib": rss})
    tiny = ROOT / "tests" / "fixtures" / "data"
    wall, rss, _ = measure(
        [
            *ptqv,
            "gate",
            str(tiny / "modelopt-nvfp4-moe"),
            "--source",
            str(tiny / "src-moe"),
            "--qformat",
            "nvfp4",
        ],
        args.repeat,
    )
    rows.append({"case": "tiny MoE fixture (35 layers)", "command": "gate", "wall_s": wall, "peak_mib": rss})
    for label, export, source, qformat in build(args.workdir):
        base_wall, base_rss, _ = measure([sys.executable, "-c", BASELINE, str(export)], args.repeat)
        tensors = len(json.loads((export / "model.safetensors.index.json").read_text())["weight_map"])
        shards = len(list(export.glob("*.safetensors")))
        commands = [
            ("gate", [*ptqv, "gate", str(export), "--source", str(source), "--qformat", qformat, "--json"]),
            ("scan", [*ptqv, "scan", str(export), "--json"]),
        ]
        if label == "DeepSeek-V3 671B NVFP4":
            commands.insert(1, ("gate (Markdown)", commands[0][1][:-1]))  # the same without --json
        if label == "Llama-3-70B NVFP4":
            # Reads every block scale (4.4 GB here) in 4 MiB chunks: memory must stay flat.
            commands.append(("gate --deep", [*commands[0][1], "--deep"]))
        for command, argv in commands:
            wall, rss, code = measure(argv, args.repeat)
            rows.append(
                {
                    "case": f"{label} ({shards} shards, {tensors} tensors)",
                    "command": command,
                    "wall_s": wall,
                    "peak_mib": rss,
                    "exit": code,
                    "baseline_wall_s": base_wall,
                    "baseline_peak_mib": base_rss,
                    "ratio": wall / base_wall,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| case | command | wall (s) | peak RSS (MiB) | baseline wall (s) | × baseline |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        base = f"{row['baseline_wall_s']:.2f}" if "baseline_wall_s" in row else "–"
        ratio = f"{row['ratio']:.1f}×" if "ratio" in row else "–"
        print(
            f"| {row['case']} | {row['command']} | {row['wall_s']:.2f} | {row['peak_mib']:.0f} | {base} | {ratio} |"
        )


if __name__ == "__main__":
    main()
