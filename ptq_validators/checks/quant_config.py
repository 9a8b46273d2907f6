"""Agreement between the two places ModelOpt writes its quantization config:
``hf_quant_config.json`` and the ``quantization_config`` block of ``config.json``."""

from __future__ import annotations

from typing import Any

from ptq_validators.checks.base import FAIL, PASS, SKIP, CheckResult

TITLE = "hf_quant_config.json vs config.json"


def _kv_from_config(value: Any) -> str | None:
    """config.json spells FP8 KV as a scheme dict and other KV formats as a bare string."""
    if isinstance(value, dict):
        return "FP8" if value.get("type") == "float" and value.get("num_bits") == 8 else str(value)
    return str(value) if value else None


def check_quant_config_consistency(
    hf_quant: dict[str, Any] | None, config: dict[str, Any], layer_names: set[str]
) -> CheckResult:
    block = (config or {}).get("quantization_config")
    if (
        not isinstance(hf_quant, dict)
        or not isinstance(block, dict)
        or block.get("quant_method") != "modelopt"
    ):
        return CheckResult("quant_config", TITLE, SKIP, "not a ModelOpt export with both files")
    hf = hf_quant.get("quantization", hf_quant)
    problems = []
    pairs = {
        "quant_algo": (hf.get("quant_algo"), block.get("quant_algo")),
        "kv_cache_quant_algo": (hf.get("kv_cache_quant_algo"), _kv_from_config(block.get("kv_cache_scheme"))),
        "exclude_modules / ignore": (
            sorted(hf.get("exclude_modules") or []),
            sorted(block.get("ignore") or []),
        ),
    }
    group_sizes = {
        g.get("weights", {}).get("group_size")
        for g in (block.get("config_groups") or {}).values()
        if isinstance(g, dict) and isinstance(g.get("weights"), dict)
    } - {None}
    if hf.get("group_size") is not None and group_sizes:
        pairs["group_size"] = (
            hf.get("group_size"),
            sorted(group_sizes)[0] if len(group_sizes) == 1 else sorted(group_sizes),
        )
    for key, (left, right) in pairs.items():
        if left != right:
            problems.append(f"{key}: hf_quant_config.json {left!r} vs config.json {right!r}")
    unknown = sorted(set(hf.get("quantized_layers") or {}) - layer_names)
    if unknown:
        problems.append(
            f"quantized_layers names {len(unknown)} modules the checkpoint does not "
            f"store: {', '.join(unknown[:5])}"
        )
    summary = (
        f"{len(problems)} disagreements"
        if problems
        else "quant_algo, KV cache, group size and exclusions agree"
    )
    return CheckResult(
        "quant_config",
        TITLE,
        FAIL if problems else PASS,
        summary,
        measured=len(problems),
        expected=0,
        details=problems,
    )
