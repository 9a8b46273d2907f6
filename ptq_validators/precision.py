"""Weight precision labels: the one vocabulary for found, declared and intended precision.

A label names the weight format only; the group (block) size travels beside it as an int.
"""

from __future__ import annotations

from enum import Enum


class Precision(str, Enum):
    """How a linear layer's weight is stored. Values are what JSON and reports show."""

    BF16 = "BF16"
    FP16 = "FP16"
    FP32 = "FP32"
    FP8 = "FP8"  # E4M3 weight, one per-tensor scale
    FP8_PER_CHANNEL = "FP8_PER_CHANNEL"  # E4M3 weight, one scale per output row
    FP8_BLOCK = "FP8_BLOCK"  # E4M3 weight, 2-D block grid of scales (e.g. 128x128)
    MXFP8 = "MXFP8"  # E4M3 weight, E8M0 scale per 32 elements
    NVFP4 = "NVFP4"  # E2M1 packed, E4M3 scale per 16 (or 32), F32 global scale
    MXFP4 = "MXFP4"  # E2M1 packed, E8M0 scale per 32
    INT2 = "INT2"
    INT3 = "INT3"
    INT4 = "INT4"
    INT5 = "INT5"
    INT6 = "INT6"
    INT7 = "INT7"
    INT8 = "INT8"
    FAKE_QUANT = "FAKE_QUANT"  # float weight stored beside quantization scales
    UNKNOWN = "UNKNOWN"

    @property
    def is_quantized(self) -> bool:
        """True for every real on-disk quantized format (not float, not fake-quant)."""
        return self not in _NOT_QUANTIZED


_NOT_QUANTIZED = frozenset(
    {Precision.BF16, Precision.FP16, Precision.FP32, Precision.FAKE_QUANT, Precision.UNKNOWN}
)

UNQUANTIZED = frozenset({Precision.BF16, Precision.FP16, Precision.FP32})

FLOAT_DTYPE_PRECISION = {"BF16": Precision.BF16, "F16": Precision.FP16, "F32": Precision.FP32}


def int_precision(bits: int) -> Precision:
    """The INT label for ``bits`` (2..8), or UNKNOWN for any other width."""
    try:
        return Precision(f"INT{bits}")
    except ValueError:
        return Precision.UNKNOWN


def describe_counts(counts: dict[str, int]) -> str:
    """``{"NVFP4": 12, "BF16": 3}`` → ``"NVFP4 12, BF16 3"`` (most frequent first)."""
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items(), key=lambda kv: -kv[1]))
