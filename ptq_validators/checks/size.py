"""Size of the export against its source, and bits per source parameter."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ptq_validators.checks.base import FAIL, PASS, CheckResult
from ptq_validators.layers import LayerTable


def size_summary(
    source_bytes: int, output_bytes: int, source_params: int, output_bits: int
) -> dict[str, Any]:
    """The ``size`` block of the report: bytes, ratio, and output bits per source parameter."""
    return {
        "source_bytes": source_bytes,
        "output_bytes": output_bytes,
        "ratio": round(output_bytes / source_bytes, 6) if source_bytes else None,
        "source_parameters": source_params,
        "bits_per_param": round(output_bits / source_params, 6) if source_params else None,
        # Σ stored bits / Σ source elements, exactly (both sides count biases and buffers).
        "bits_per_param_exact": str(Fraction(output_bits, source_params)) if source_params else None,
    }


def quantized_bits(table: LayerTable, source_params: int) -> dict[str, Any]:
    """Exact effective bits per weight of the quantized layers, by weight/activation pair
    (weight-side tensors over original elements), and the share of the source's parameters
    they hold. Values are floats; ``exact`` keeps each ratio as ``"numerator/denominator"``."""
    bits: dict[str, list[int]] = {}
    for kind, n in table.kind_counts().items():
        if kind.stored.precision.is_quantized:
            totals = bits.setdefault(kind.scheme, [0, 0])
            totals[0] += kind.weight_bits * n
            totals[1] += kind.stored.elements * n
    ratios = {scheme: Fraction(b, n) for scheme, (b, n) in sorted(bits.items()) if n}
    elements = sum(n for _, n in bits.values())
    share = Fraction(elements, source_params) if source_params else Fraction(0)
    return {
        "bits_per_weight": {scheme: round(float(r), 6) for scheme, r in ratios.items()},
        "exact": {scheme: f"{r.numerator}/{r.denominator}" for scheme, r in ratios.items()},
        "elements": elements,
        "parameter_share": round(float(share), 6),
    }


def check_size(size: dict[str, Any], *, compression: bool) -> CheckResult:
    """Blocking when a compression recipe produced an export no smaller than its source."""
    ratio = size["ratio"]
    summary = (
        f"{_human(size['output_bytes'])} vs {_human(size['source_bytes'])} source: "
        f"ratio {ratio:.3f}, {size['bits_per_param']:.3f} bits/param"
        if ratio is not None and size["bits_per_param"] is not None
        else "source has no weights"
    )
    status = PASS
    details = []
    if compression and ratio is not None and ratio >= 1.0:
        status = FAIL
        details.append(
            "the export is not smaller than its source: weights were not compressed "
            "(fake-quant export, float copies left beside packed weights, or an "
            "unquantized recipe)"
        )
    return CheckResult(
        "size",
        "Size vs source",
        status,
        summary,
        measured=ratio,
        expected="< 1.0" if compression else None,
        details=details,
    )


def _human(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return f"{count} B"
