"""Format recommendation: which ModelOpt qformat / llm-compressor scheme for which GPUs.

The *deploy* GPU decides the format (a checkpoint is only as good as the kernels that serve it);
the *calibration* GPU only has to run the calibration, which ModelOpt does in fake-quant on any
CUDA GPU. So NVFP4 calibrated on Hopper for Blackwell serving is fine, while NVFP4 meant to be
served on Hopper is not (no native FP4; runtimes fall back to Marlin W4A16 paths).
Tables: ``data/formats.yaml`` and ``data/gpus.yaml``.
"""

from __future__ import annotations

from typing import Any

from ptq_validators.checks.base import Finding
from ptq_validators.datafiles import load_data
from ptq_validators.preflight.gpus import GpuSpec, cc_tuple

FORMATS_FILE = "formats.yaml"


def serve_min_cc(precision: str) -> str | None:
    """The lowest compute capability that serves ``precision`` natively (None: any GPU)."""
    return load_data("preflight", FORMATS_FILE)["serve_min_cc"].get(precision)


def serving_finding(precision: str, deploy: GpuSpec) -> Finding | None:
    """A blocking finding when ``deploy`` cannot serve weights of ``precision`` natively."""
    needed = serve_min_cc(precision)
    if needed is None or deploy.cc_tuple >= cc_tuple(needed):
        return None
    return Finding(
        "format-needs-newer-gpu",
        "fail",
        f"{precision} weights need compute capability {needed}+ to be served natively; the "
        f"deploy GPU {deploy.name} is sm{deploy.cc.replace('.', '')} ({deploy.arch}). Runtimes "
        "fall back to slow or broken weight-only paths or refuse to load; choose a format the "
        "deploy GPU runs natively (see `ptqv env --deploy-gpu`).",
    )


def recommend(
    calibration: GpuSpec | None, deploy: GpuSpec | None, *, moe: bool | None = None
) -> dict[str, Any]:
    """The recommended formats for calibrating on ``calibration`` and serving on ``deploy``.

    ``moe`` picks the scoped NVFP4 preset (experts only for MoE, MLP only for dense); None
    reports both. Returns a JSON-ready dict; ``modelopt_qformat`` is None when no GPU is known.
    """
    target = deploy or calibration
    result: dict[str, Any] = {
        "calibration_gpu": calibration.to_json() if calibration else None,
        "deploy_gpu": deploy.to_json() if deploy else None,
        "decided_by": "deploy_gpu" if deploy else ("calibration_gpu" if calibration else None),
        "modelopt_qformat": None,
        "fallback_qformat": None,
        "llmc_scheme": None,
        "kv_cache_qformat": None,
        "note": None,
        "findings": [],
    }
    findings: list[Finding] = []
    if target is None:
        findings.append(
            Finding(
                "no-gpu-known",
                "info",
                "no GPU detected or named: pass --gpu NAME (calibration) and --deploy-gpu NAME "
                "(serving) for a recommendation",
            )
        )
        result["findings"] = [f.to_json() for f in findings]
        return result

    row = next(
        r
        for r in load_data("preflight", FORMATS_FILE)["recommendations"]
        if target.cc_tuple >= cc_tuple(r["min_cc"])
    )
    if moe is None:
        same = row["dense"] == row["moe"]
        qformat = row["dense"] if same else f"{row['dense']} (dense) | {row['moe']} (MoE)"
    else:
        qformat = row["moe"] if moe else row["dense"]
    result.update(
        modelopt_qformat=qformat,
        fallback_qformat=row["fallback"],
        llmc_scheme=row["llmc_scheme"],
        kv_cache_qformat=row["kv_cache_qformat"],
        note=" ".join(row["note"].split()),
    )
    # no deploy GPU: the target is the calibration GPU
    if deploy is None and calibration and cc_tuple("8.9") <= calibration.cc_tuple < cc_tuple("10.0"):
        findings.append(
            Finding(
                "nvfp4-needs-blackwell-to-serve",
                "info",
                f"{calibration.name} can calibrate and export NVFP4 but cannot serve it; if the model "
                "will be served on Blackwell, pass --deploy-gpu B200 (or the real GPU) to get the "
                "NVFP4 recommendation",
            )
        )
    if deploy is not None and calibration is not None and calibration.cc_tuple < deploy.cc_tuple:
        findings.append(
            Finding(
                "calibrate-older-than-deploy",
                "info",
                f"calibrating on {calibration.name} (sm{calibration.cc.replace('.', '')}) for "
                f"{deploy.name} (sm{deploy.cc.replace('.', '')}): ModelOpt calibrates in fake-quant, "
                "so this works, but the deploy smoke test (hf_ptq's TensorRT-LLM check for NVFP4) "
                "is skipped on the calibration GPU; test on the deploy GPU",
            )
        )
    result["findings"] = [f.to_json() for f in findings]
    return result
