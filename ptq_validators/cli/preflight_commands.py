"""`ptqv env`, `ptqv inspect` and `ptqv plan`: the pre-flight commands.

Each command builds a JSON-ready dict in ``ptq_validators.preflight`` and prints it either as
JSON (``--json``) or as short text. The preflight modules are imported inside the command
bodies so ``ptqv --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

EXIT_CHECK_FAILED = 1


def register(app: typer.Typer) -> None:
    """Add the pre-flight commands to ``app``."""
    app.command("env", epilog=_ENV_EPILOG)(env_command)
    app.command("inspect", epilog=_INSPECT_EPILOG)(inspect_command)


def _emit(data: dict[str, Any], as_json: bool, render) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else render(data))


def _gpu_option(name: str | None, option: str):
    from ptq_validators.preflight.gpus import resolve_gpu

    return resolve_gpu(name, option=option) if name else None


def _render_findings(findings: list[dict[str, str]]) -> list[str]:
    return [f"  [{f['severity']}] {f['id']}: {f['detail']}" for f in findings]


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

_ENV_EPILOG = (
    "Example: ptqv env --deploy-gpu B200 --json\n\n"
    "Always exits 0: a missing GPU, SLURM or Docker is reported, not an error."
)


def env_command(
    gpu: Optional[str] = typer.Option(
        None, "--gpu", help="Calibration GPU to assume instead of the local one (e.g. H100)."),
    deploy_gpu: Optional[str] = typer.Option(
        None, "--deploy-gpu", help="GPU the quantized model will be served on (e.g. B200)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Detect GPUs, SLURM, containers, the ModelOpt checkout and package versions; say where
    to run and which format to choose."""
    from ptq_validators.preflight.env import detect_env

    report = detect_env(gpu=_gpu_option(gpu, "--gpu"),
                        deploy_gpu=_gpu_option(deploy_gpu, "--deploy-gpu"))
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
    if slurm["available"]:
        parts = ", ".join(f"{p['name']}{'*' if p['default'] else ''} ({p['nodes']} nodes, "
                          f"{'/'.join(p['gpu_gres']) or 'no GPU GRES'})"
                          for p in slurm["partitions"])
        lines.append(f"SLURM: yes; partitions: {parts or 'none listed'}; pyxis: {slurm['pyxis']}")
    else:
        lines.append("SLURM: no (sbatch not on PATH)")
    docker = report["docker"]
    state = "no" if not docker["path"] else (
        "daemon up" if docker["daemon"] else "client only, daemon unreachable")
    runtime = ", NVIDIA runtime" if docker["gpu_runtime"] else ""
    lines.append(f"Docker: {state}{runtime}; enroot: {'yes' if report['enroot'] else 'no'}")
    checkout = report["modelopt_checkout"]
    lines.append(f"ModelOpt checkout: {checkout['path'] or 'none found (set MODELOPT_DIR)'}"
                 + (f"; launcher: {checkout['launcher']}" if checkout["launcher"] else ""))
    lines.append("packages: " + ", ".join(f"{name} {version or '-'}"
                                          for name, version in report["packages"].items()))
    lines.append(f"PIP_CONSTRAINT: {report['pip_constraint'] or 'unset'}; HF_TOKEN: "
                 f"{'set' if report['hf_token_set'] else 'unset'}; free disk: "
                 f"{report['disk']['free_gib']} GiB in {report['disk']['path']}")
    configs = report["cluster_configs"]
    lines.append("clusters.yaml: " + ("; ".join(
        f"{c['path']} ({', '.join(x['name'] for x in c['clusters']) or c['error']})"
        for c in configs) or "none found"))
    lines.append(f"run: {report['run_mode']['mode']} - {report['run_mode']['reason']}")
    lines += _render_recommendation(report["recommendation"])
    findings = report["findings"] + report["recommendation"]["findings"]
    if findings:
        lines.append("findings:")
        lines += _render_findings(findings)
    return "\n".join(lines)


# --- ptqv inspect ---------------------------------------------------------------------------

_INSPECT_EPILOG = (
    "Example: ptqv inspect ./Qwen3-30B-A3B --deploy-gpu B200 --json\n\n"
    "Exit codes: 0 nothing blocks, 1 a blocking finding (unknown architecture, missing "
    "package of the model's own code, unreadable checkpoint), 2 usage, 3 bad input."
)


def inspect_command(
    model: Path = typer.Argument(..., help="Local Hugging Face model directory."),
    gpu: Optional[str] = typer.Option(
        None, "--gpu", help="Calibration GPU for sizing (default: the local one, else H100)."),
    deploy_gpu: Optional[str] = typer.Option(
        None, "--deploy-gpu", help="GPU the quantized model will be served on (e.g. B200)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Inspect a model: architecture, remote code and its imports, MoE/VLM/hybrid/MTP, source
    quantization, parameters and GPU sizing, ModelOpt support, and the path to take."""
    import os

    from ptq_validators.preflight.env import Probe, calibration_gpu, detect_gpus
    from ptq_validators.preflight.inspection import inspect_model

    calib = _gpu_option(gpu, "--gpu") or calibration_gpu(detect_gpus(Probe(os.environ))[0])
    report = inspect_model(model, gpu=calib, deploy_gpu=_gpu_option(deploy_gpu, "--deploy-gpu"))
    _emit(report, as_json, _render_inspect)
    if report["verdict"] == "fail":
        raise typer.Exit(EXIT_CHECK_FAILED)


def _render_inspect(report: dict[str, Any]) -> str:
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
        lines.append(f"vision tower: {cfg['vision']['model_type'] or '?'}, "
                     f"{cfg['vision']['layers']} layers")
    weights = report["weights"]
    if weights:
        lines.append(f"weights: {weights['params'] / 1e9:.2f} B parameters, "
                     f"{weights['bytes'] / 2**30:.1f} GiB in {len(weights['files'])} file(s)")
    sizing = report["sizing"]
    if sizing:
        assumed = " (assumed; pass --gpu)" if sizing.get("assumed_gpu") else ""
        lines.append(f"calibration: {sizing['gpus']} x {sizing['gpu']}{assumed} over "
                     f"{sizing['nodes']} node(s), needs ~{sizing['need_gib']} GiB"
                     + ("; multi-node FSDP2" if sizing["multi_node_fsdp2"] else ""))
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
