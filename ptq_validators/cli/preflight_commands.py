"""`ptqv env`, `ptqv inspect` and `ptqv plan`: the pre-flight commands.

Each command builds a JSON-ready dict in ``ptq_validators.preflight`` and prints it either as
JSON (``--json``) or as short text. The preflight modules are imported inside the command
bodies so ``ptqv --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ptq_validators.cli.epilogs import epilog
from ptq_validators.cli.options import CLUSTERS_OPTION
from ptq_validators.errors import CHECK_FAILED_EXIT


def register(app: typer.Typer) -> None:
    """Add the pre-flight commands to ``app``."""
    app.command("env", epilog=_ENV_EPILOG)(env_command)
    app.command("inspect", epilog=_INSPECT_EPILOG)(inspect_command)
    app.command("plan", epilog=_PLAN_EPILOG)(plan_command)


def _emit(data: dict[str, Any], as_json: bool, render) -> None:
    from ptq_validators.envelope import render_json

    typer.echo(render_json(data) if as_json else render(data), nl=not as_json)


def _gpu_option(name: str | None, option: str):
    from ptq_validators.preflight.gpus import resolve_gpu

    return resolve_gpu(name, option=option) if name else None


def _render_findings(findings: list[dict[str, str]]) -> list[str]:
    """One line per finding, ``[status] id: detail``."""
    return [f"  [{f['status']}] {f['id']}: {f['detail']}" for f in findings]


def _render_recommendation(rec: dict[str, Any]) -> list[str]:
    if rec["modelopt_qformat"] is None:
        return ["format: no GPU known (pass --gpu / --deploy-gpu)"]
    basis = rec["deploy_gpu"] if rec["decided_by"] == "deploy_gpu" else rec["calibration_gpu"]
    return [
        f"format (for {basis['name']}, {basis['sm']} {basis['arch']}): "
        f"ModelOpt --qformat {rec['modelopt_qformat']} (fallback {rec['fallback_qformat']}), "
        f"KV {rec['kv_cache_qformat']}; llm-compressor scheme {rec['llmc_scheme']}",
        f"  {rec['note']}",
    ]


# --- ptqv env -------------------------------------------------------------------------------

_ENV_EPILOG = epilog(
    "ptqv env --deploy-gpu B200 --json",
    note="A missing GPU, SLURM or Docker is reported, not an error: env exits 0 unless "
    "a flag is wrong. Each probe has a short timeout; SLURM is recommended only when its "
    "controller answers.",
)


def env_command(
    gpu: str | None = typer.Option(
        None, "--gpu", help="Calibration GPU to assume instead of the local one (e.g. H100)."
    ),
    deploy_gpu: str | None = typer.Option(
        None, "--deploy-gpu", help="GPU the quantized model will be served on (e.g. B200)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    cluster: str | None = typer.Option(
        None, "--cluster", help="Probe this cluster's login node over SSH instead."
    ),
    clusters: Path | None = CLUSTERS_OPTION,
) -> None:
    """Detect GPUs, SLURM, containers, the ModelOpt checkout and package versions; say where
    to run and which format to choose. With --cluster: the same report for a cluster from
    clusters.yaml (SLURM partitions, GRES and associations, Docker, enroot/pyxis, env_type, and
    the recommendation for its gpu_type).

    Example: ptqv env --cluster dgx --json   (exit 4 when the cluster cannot be reached)"""
    if cluster is not None:
        from ptq_validators.cli.remote_commands import open_cluster
        from ptq_validators.preflight.env import detect_cluster_env

        spec, runner = open_cluster(cluster, clusters)
        _emit(detect_cluster_env(runner, spec, _gpu_option(deploy_gpu, "--deploy-gpu")), as_json, _render_env)
        return
    from ptq_validators.preflight.env import detect_env

    report = detect_env(gpu=_gpu_option(gpu, "--gpu"), deploy_gpu=_gpu_option(deploy_gpu, "--deploy-gpu"))
    _emit(report, as_json, _render_env)


def _render_env(report: dict[str, Any]) -> str:
    lines = []
    if report["gpus"]:
        for g in report["gpus"]:
            memory = f"{g['memory_mib'] / 1024:.1f} GiB" if g["memory_mib"] else "? GiB"
            sm = (g["compute_capability"] or "?").replace(".", "")
            lines.append(f"GPU {g['index']}: {g['name']} (sm{sm}, {g['arch']}, {memory})")
    else:
        lines.append(f"GPUs: none ({report['gpu_note']})")
    slurm = report["slurm"]
    if slurm["available"] and slurm["error"]:
        lines.append(f"SLURM: sbatch found, but the controller did not answer ({slurm['error']})")
    elif slurm["available"]:
        parts = ", ".join(
            f"{p['name']}{'*' if p['default'] else ''} ({p['nodes']} nodes, "
            f"{'/'.join(p['gpu_gres']) or 'no GPU GRES'})"
            for p in slurm["partitions"]
        )
        lines.append(f"SLURM: yes; partitions: {parts or 'none listed'}; pyxis: {slurm['pyxis']}")
    else:
        lines.append("SLURM: no (sbatch not on PATH)")
    docker = report["docker"]
    state = (
        "no"
        if not docker["path"]
        else ("daemon up" if docker["daemon"] else "client only, daemon unreachable")
    )
    runtime = ", NVIDIA runtime" if docker["gpu_runtime"] else ""
    lines.append(f"Docker: {state}{runtime}; enroot: {'yes' if report['enroot'] else 'no'}")
    on_cluster = "cluster" in report  # a login node: no checkout, packages or clusters.yaml probed
    disk = report["disk"]
    free = "unknown" if disk["free_gib"] is None else f"{disk['free_gib']} GiB"
    if not on_cluster:
        checkout = report["modelopt_checkout"]
        lines.append(
            f"ModelOpt checkout: {checkout['path'] or 'none found (set MODELOPT_DIR)'}"
            + (f"; launcher: {checkout['launcher']}" if checkout["launcher"] else "")
        )
        lines.append(
            "packages: "
            + ", ".join(f"{name} {version or '-'}" for name, version in report["packages"].items())
        )
    lines.append(
        f"PIP_CONSTRAINT: {report['pip_constraint'] or 'unset'}; HF_TOKEN: "
        f"{'set' if report['hf_token_set'] else 'unset'}; free disk: {free} in {disk['path']}"
    )
    if not on_cluster:
        configs = report["cluster_configs"]
        lines.append(
            "clusters.yaml: "
            + (
                "; ".join(
                    f"{c['path']} ({', '.join(x['name'] for x in c['clusters']) or c['error']})"
                    for c in configs
                )
                or "none found"
            )
        )
    lines.append(f"run: {report['run_mode']['mode']} - {report['run_mode']['reason']}")
    lines += _render_recommendation(report["recommendation"])
    findings = report["findings"] + report["recommendation"]["findings"]
    if findings:
        lines.append("findings:")
        lines += _render_findings(findings)
    return "\n".join(lines)


# --- ptqv inspect ---------------------------------------------------------------------------

_INSPECT_EPILOG = epilog(
    "ptqv inspect ./Qwen3-30B-A3B --deploy-gpu B200 --json",
    note="Blocking findings (exit 1): unknown architecture, a missing package of the "
    "model's own code, an unreadable checkpoint.",
)


def inspect_command(
    model: Path = typer.Argument(..., help="Local Hugging Face model directory."),
    gpu: str | None = typer.Option(
        None, "--gpu", help="Calibration GPU for sizing (default: the local one, else H100)."
    ),
    deploy_gpu: str | None = typer.Option(
        None, "--deploy-gpu", help="GPU the quantized model will be served on (e.g. B200)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Inspect a model: architecture, remote code and its imports, MoE/VLM/hybrid/MTP, source
    quantization, parameters and GPU sizing, ModelOpt support, and the path to take."""

    from ptq_validators.cli.arguments import checkpoint_directory
    from ptq_validators.launch.runner import LocalRunner
    from ptq_validators.preflight.env import calibration_gpu, detect_gpus
    from ptq_validators.preflight.inspection import inspect_model

    checkpoint_directory(str(model), "MODEL")

    calib = _gpu_option(gpu, "--gpu") or calibration_gpu(detect_gpus(LocalRunner())[0])
    report = inspect_model(model, gpu=calib, deploy_gpu=_gpu_option(deploy_gpu, "--deploy-gpu"))
    _emit(report, as_json, _render_inspect)
    if report["verdict"] == "fail":
        raise typer.Exit(CHECK_FAILED_EXIT)


def _render_inspect(report: dict[str, Any]) -> str:
    from ptq_validators.preflight.sizing import OVERHEAD
    from ptq_validators.units import binary_size, count

    cfg = report["config"]
    tf = report["transformers"]
    lines = [
        f"model: {report['model']}",
        f"architecture: {cfg['model_type']} ({', '.join(cfg['architectures']) or '?'}); "
        f"kind: {', '.join(cfg['kind'])}",
        f"transformers: installed {tf['installed'] or 'no'}, model written with "
        f"{tf['model_requires'] or '?'}, knows model_type: {tf['knows_model_type']}",
    ]
    if cfg["moe"]:
        lines.append(f"MoE: {cfg['moe']['experts']} experts, top-{cfg['moe']['top_k']}")
    if cfg["vision"]:
        lines.append(f"vision tower: {cfg['vision']['model_type'] or '?'}, {cfg['vision']['layers']} layers")
    weights = report["weights"]
    if weights:
        lines.append(
            f"weights: {count(weights['params'])} parameters, "
            f"{binary_size(weights['bytes'])} in {len(weights['files'])} file(s)"
        )
    sizing = report["sizing"]
    if sizing:
        assumed = " (assumed; pass --gpu)" if sizing.get("assumed_gpu") else ""
        # the JSON rounds to 0.1 GiB, which reads 0.0 for a small model: show the bytes' unit
        need = binary_size(int(weights["bytes"] * OVERHEAD)) if weights else f"{sizing['need_gib']} GiB"
        lines.append(
            f"calibration: {sizing['gpus']} x {sizing['gpu']}{assumed} over "
            f"{sizing['nodes']} node(s), needs ~{need}"
            + ("; multi-node FSDP2" if sizing["multi_node_fsdp2"] else "")
        )
    verified = report["verified"]
    listed = f"{verified['family']} {verified['formats']}" if verified else "not listed"
    lines.append(f"ModelOpt list: {listed}")
    lines.append(f"next: {report['next_step']['path']} - {report['next_step']['detail']}")
    lines += _render_recommendation(report["recommendation"])
    if report["findings"]:
        lines.append("findings:")
        lines += _render_findings(report["findings"])
    lines.append(f"verdict: {report['verdict']}")
    return "\n".join(lines)


# --- ptqv plan ------------------------------------------------------------------------------

_PLAN_EPILOG = epilog(
    "ptqv plan ./Qwen3-30B-A3B --qformat nvfp4_experts_only --out plan.json",
    "ptqv plan ./Qwen2.5-VL-7B --scheme FP8_DYNAMIC --ignore lm_head --json",
    "ptqv plan ./model --recipe my_recipe.yaml",
    note="Blocking findings (exit 1): nothing or a targeted group left unquantized, "
    "dimensions not divisible by the group size, a format the deploy GPU cannot serve. "
    "--qformat and --scheme are checked as by `ptqv gate`.",
)


def plan_command(
    model: Path = typer.Argument(..., help="Local Hugging Face model directory."),
    qformat: str | None = typer.Option(None, "--qformat", help="ModelOpt --qformat preset."),
    recipe: Path | None = typer.Option(
        None, "--recipe", help="ModelOpt PTQ recipe YAML or llm-compressor recipe YAML."
    ),
    scheme: str | None = typer.Option(None, "--scheme", help="llm-compressor preset scheme."),
    ignore: list[str] = typer.Option(
        [], "--ignore", help="llm-compressor ignore entry (repeatable; exact name, re:, class)."
    ),
    deploy_gpu: str | None = typer.Option(
        None, "--deploy-gpu", help="Block formats this serving GPU cannot run natively."
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Build the model with its own code (runs it)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write the plan (layer table) here for `ptqv gate --plan`."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Apply a recipe to the model's real module names (built on the meta device, no weights)
    and report per-group coverage, pattern problems and the verdict."""
    from ptq_validators.cli.arguments import checkpoint_directory
    from ptq_validators.errors import UsageError
    from ptq_validators.io.source import open_source
    from ptq_validators.preflight.plan import plan_model
    from ptq_validators.presets import gate_qformat, gate_scheme
    from ptq_validators.recipes import Recipe, llmc_scheme, modelopt_qformat
    from ptq_validators.recipes.recipe_files import load_recipe_file

    checkpoint_directory(str(model), "MODEL")
    qformat = None if qformat is None else gate_qformat(qformat)
    scheme = None if scheme is None else gate_scheme(scheme)
    if sum(x is not None for x in (qformat, recipe, scheme)) != 1:
        raise UsageError(
            "give exactly one of --qformat, --recipe, --scheme",
            hint="e.g. ptqv plan MODEL --qformat nvfp4_mlp_only",
        )
    if ignore and scheme is None:
        raise UsageError(
            "--ignore applies to --scheme only", hint="put exclusions in the recipe file, or use --scheme"
        )
    chosen: Recipe
    if qformat is not None:
        chosen, spec = modelopt_qformat(qformat), {"qformat": qformat, "ignore": []}
    elif scheme is not None:
        chosen, spec = llmc_scheme(scheme, ignore=ignore), {"scheme": scheme, "ignore": ignore}
    else:
        assert recipe is not None  # exactly one of the three, checked above
        chosen, spec = load_recipe_file(recipe), {"recipe": str(recipe), "ignore": []}
    with open_source(model) as source:
        plan = plan_model(
            source,
            chosen,
            spec,
            trust_remote_code=trust_remote_code,
            deploy_gpu=_gpu_option(deploy_gpu, "--deploy-gpu"),
        )
    if out is not None:
        from ptq_validators.envelope import render_json

        try:
            out.write_text(render_json(plan), encoding="utf-8")
        except OSError as exc:
            from ptq_validators.errors import InputError

            raise InputError(
                f"{out}: cannot write the plan ({exc.strerror})", hint="pass a writable --out path"
            ) from None
    _emit(plan, as_json, _render_plan)
    if plan["verdict"] == "fail":
        raise typer.Exit(CHECK_FAILED_EXIT)


def _render_plan(plan: dict[str, Any]) -> str:
    inv = plan["inventory"]
    lines = [
        f"model: {plan['model']} ({inv['layers']} linear layers from the {inv['source']})",
        f"recipe: {json.dumps(plan['recipe'])}",
        f"{'group':<12}{'total':>8}{'matched':>9}  precision",
    ]
    lines += [f"{g['group']:<12}{g['total']:>8}{g['matched']:>9}  {g['precision']}" for g in plan["groups"]]
    if plan["findings"]:
        lines.append("warnings:")
        lines += _render_findings(plan["findings"])
    lines.append(f"verdict: {plan['verdict']}")
    return "\n".join(lines)
