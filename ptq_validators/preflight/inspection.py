"""``ptqv inspect``: what a local model needs before anyone calibrates it.

Reads ``config.json``, the safetensors headers (never the weights) and the model's own ``*.py``
files (with ``ast``), and decides: is the architecture known to the installed transformers,
does the model need remote code and the packages it imports, what kind of model it is, whether
the source is already quantized, how many GPUs calibration needs, whether ModelOpt lists the
family, and which path follows (hf_ptq directly, the launcher, a dedicated example, or the
unlisted-model path with a smoke test first).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ptq_validators.checkpoint import PICKLE_SUFFIXES
from ptq_validators.checks.base import Finding, verdict
from ptq_validators.datafiles import load_data
from ptq_validators.envelope import envelope
from ptq_validators.preflight import model as model_facts
from ptq_validators.preflight.gpus import GpuSpec, match_gpu
from ptq_validators.preflight.recommend import recommend
from ptq_validators.preflight.remote_code import scan_imports
from ptq_validators.preflight.sizing import calibration_sizing

DEFAULT_SIZING_GPU = "H100"


def inspect_model(
    model_dir: Path, *, gpu: GpuSpec | None = None, deploy_gpu: GpuSpec | None = None
) -> dict[str, Any]:
    """The inspection report of ``model_dir`` (JSON-ready, with ``findings`` and ``verdict``).

    ``gpu`` is the calibration GPU (sizing and recommendation); without it sizing assumes an
    H100 and says so.
    """
    config = model_facts.read_config(model_dir)
    facts = model_facts.describe(config)
    findings: list[Finding] = []

    transformers_info = _check_transformers(facts, findings)
    imports = scan_imports(model_dir)
    _check_remote_code(facts, imports, transformers_info, findings)
    _check_source_and_kind(facts, findings)
    weights = _weights(model_dir, findings)
    sizing_gpu = gpu or match_gpu(DEFAULT_SIZING_GPU)
    assert sizing_gpu is not None, f"{DEFAULT_SIZING_GPU} is missing from the bundled GPU table"
    sizing = None
    if weights is not None:
        sizing = calibration_sizing(
            weights["bytes"], weights["params"], sizing_gpu.memory_gib, sizing_gpu.name
        )
        if gpu is None:
            sizing["assumed_gpu"] = True
    verified = _verified_family(facts)
    next_step = _next_step(facts, verified, sizing, findings)
    return envelope(
        "inspect",
        model=str(model_dir),
        config=facts,
        transformers=transformers_info,
        remote_code={
            "auto_map": facts["auto_map"],
            "files": sorted(p.name for p in model_dir.glob("*.py")),
            "imports": imports,
        },
        weights=weights,
        sizing=sizing,
        verified=verified,
        next_step=next_step,
        recommendation=recommend(gpu, deploy_gpu, moe="moe" in facts["kind"]),
        findings=[f.to_json() for f in findings],
        verdict=verdict(findings),
    )


def _check_transformers(facts: dict[str, Any], findings: list[Finding]) -> dict[str, Any]:
    installed = model_facts.transformers_version()
    known = model_facts.known_model_types()
    model_type = facts["model_type"]
    info = {
        "installed": installed,
        "model_requires": facts["transformers_version"],
        "knows_model_type": None if known is None else model_type in known,
    }
    if installed is None or known is None:
        findings.append(
            Finding(
                "transformers-missing",
                "warn",
                "transformers is not installed here: cannot check that it knows "
                f"model_type {model_type!r}; install it where calibration runs",
            )
        )
        return info
    if model_type not in known and not facts["auto_map"]:
        findings.append(
            Finding(
                "architecture-unknown",
                "fail",
                f"model_type {model_type!r} is unknown to transformers {installed} and the model "
                "ships no code (no auto_map): upgrade transformers to a release that has it",
            )
        )
    required = facts["transformers_version"]
    if required and model_facts.version_tuple(installed) < model_facts.version_tuple(required):
        findings.append(
            Finding(
                "transformers-older-than-model",
                "warn",
                f"config.json was written by transformers {required}; {installed} is installed: "
                "upgrade if loading fails (in NGC containers mind PIP_CONSTRAINT)",
            )
        )
    return info


def _check_remote_code(
    facts: dict[str, Any],
    imports: list[dict[str, Any]],
    transformers_info: dict[str, Any],
    findings: list[Finding],
) -> None:
    auto_map = facts["auto_map"]
    if auto_map:
        classes = ", ".join(sorted(set(str(v) for v in auto_map.values())))
        if transformers_info["knows_model_type"]:
            findings.append(
                Finding(
                    "remote-code-vs-builtin",
                    "warn",
                    f"the model ships its own code ({classes}) but transformers "
                    f"{transformers_info['installed']} has model_type {facts['model_type']!r} built "
                    "in: prefer the built-in class (no --trust_remote_code); mixing the remote "
                    "config with the built-in model breaks on renamed fields",
                )
            )
        else:
            findings.append(
                Finding(
                    "trust-remote-code",
                    "warn",
                    f"the model needs its own code ({classes}): loading it runs that code. Decide "
                    "explicitly and pass --trust_remote_code (hf_ptq.py) / "
                    "trust_remote_code_model=True (llm-compressor) only if you trust the source",
                )
            )
    for row in imports:
        if row["module"] is None:
            findings.append(Finding("remote-code-unparsable", "warn", row["error"]))
        elif not row["installed"]:
            severity = "warn" if row["optional"] else "fail"
            guard = " (optional: guarded import)" if row["optional"] else ""
            findings.append(
                Finding(
                    "remote-code-missing-package",
                    severity,
                    f"{', '.join(row['files'])} imports {row['module']}, which is not installed"
                    f"{guard}: {row['install']}",
                )
            )


def _check_source_and_kind(facts: dict[str, Any], findings: list[Finding]) -> None:
    source = facts["source_quantization"]
    if source:
        method = str(source["quant_method"]).lower()
        if method == "fp8":
            block = source["weight_block_size"]
            findings.append(
                Finding(
                    "source-fp8",
                    "warn",
                    f"the source is already FP8 (fine-grained, block {block}): a recipe that leaves "
                    "layers out (e.g. nvfp4_experts_only, or an exclude list) writes those layers as "
                    "BF16, not FP8, so they double in size; confirm that is intended",
                )
            )
        elif method == "mxfp4":
            findings.append(
                Finding(
                    "source-mxfp4",
                    "info",
                    "the source ships MXFP4 experts (GPT-OSS style); ModelOpt's route to NVFP4 is "
                    "hf_ptq.py --cast_mxfp4_to_nvfp4 (a closed-form cast of those experts)",
                )
            )
        else:
            findings.append(
                Finding(
                    "source-quantized",
                    "warn",
                    f"the source is already quantized ({source['quant_method']}): quantizing it "
                    "again compounds the error; start from the BF16 release if there is one",
                )
            )
    if facts["vision"]:
        findings.append(
            Finding(
                "vlm",
                "info",
                f"vision-language model ({facts['vision']['model_type'] or 'vision'} tower): "
                "hf_ptq --qformat "
                "quantizes only the language model, but a --recipe or an llm-compressor scheme sees "
                "the whole model; keep the vision tower and projector excluded (check with "
                "`ptqv plan`)",
            )
        )
    if facts["mtp_layers"]:
        findings.append(
            Finding(
                "mtp",
                "info",
                f"{facts['mtp_layers']} multi-token-prediction layer(s): keep them in high precision "
                "(hf_ptq excludes MTP automatically; DeepSeek stores them as decoder layers past "
                "num_hidden_layers, which transformers does not build)",
            )
        )
    if facts["hybrid"]:
        findings.append(
            Finding(
                "hybrid",
                "info",
                f"hybrid model ({facts['hybrid']}): Mamba conv1d stays unquantized; ModelOpt has "
                "mamba_moe_* presets that also keep attention in high precision",
            )
        )


def _weights(model_dir: Path, findings: list[Finding]) -> dict[str, Any] | None:
    """Parameter count and bytes from the safetensors headers, or None without weights."""
    if not any(model_dir.glob("*.safetensors")):
        pickles = sorted(p.name for p in model_dir.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
        detail = (
            f"only pickle weights ({', '.join(pickles)}): never loaded here; convert to safetensors"
            if pickles
            else "no *.safetensors weights: parameter count and "
            "sizing need the shard headers (`ptqv plan` counts parameters on the meta "
            "device from the config alone)"
        )
        findings.append(Finding("no-weights", "warn" if pickles else "info", detail))
        return None
    from ptq_validators.checkpoint import Checkpoint
    from ptq_validators.io.source import LocalSource

    checkpoint = Checkpoint.open(LocalSource(model_dir))
    by_dtype: Counter[str] = Counter()
    for info in checkpoint.tensors.values():
        by_dtype[info.dtype] += info.nbytes
    for issue in checkpoint.issues:
        if issue.blocking:
            findings.append(Finding("checkpoint-integrity", "fail", f"{issue.file}: {issue.message}"))
    return {
        "files": sorted(checkpoint.headers),
        "tensors": len(checkpoint.tensors),
        "params": sum(info.numel for info in checkpoint.tensors.values()),
        "bytes": checkpoint.weight_bytes,
        "bytes_by_dtype": dict(sorted(by_dtype.items())),
    }


def _verified_family(facts: dict[str, Any]) -> dict[str, Any] | None:
    data = load_data("preflight", "verified_models.yaml")
    types = {facts["model_type"], facts["text_model_type"]} - {None}
    for family in data["families"]:
        if types & set(family["model_types"]):
            return {**family, "upstream": data["upstream"]}
    return None


def _next_step(
    facts: dict[str, Any],
    verified: dict[str, Any] | None,
    sizing: dict[str, Any] | None,
    findings: list[Finding],
) -> dict[str, str]:
    if verified is None:
        findings.append(
            Finding(
                "unlisted-model",
                "info",
                f"model_type {facts['model_type']!r} is not on ModelOpt's supported-model list: run a "
                "smoke test first (hf_ptq.py --calib_size 4 --skip_generate) and check the plan",
            )
        )
        return {
            "path": "unlisted",
            "detail": "smoke test first (calib_size 4), check `ptqv plan`, then the full run",
        }
    if verified["path"] != "hf_ptq":
        return {"path": verified["path"], "detail": verified.get("note", "")}
    if sizing and sizing["multi_node_fsdp2"]:
        return {
            "path": "launcher",
            "detail": f"{sizing['nodes']} nodes: multi-node FSDP2 (torchrun hf_ptq.py "
            "--use_fsdp2) through the ModelOpt launcher or a SLURM job",
        }
    gpus = f"on {sizing['gpus']} x {sizing['gpu']}" if sizing else "on one node"
    return {
        "path": "hf_ptq",
        "detail": f"examples/hf_ptq/hf_ptq.py {gpus} (locally, or through the launcher on a cluster)",
    }
