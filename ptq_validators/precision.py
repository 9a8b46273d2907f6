"""Precision labels: the one vocabulary for found, declared and intended precision.

``Precision`` names the weight format (the group or block size travels beside it as an int);
``Activation`` names the activation side; ``scheme_label`` names the pair the way the tools do
(``NVFP4`` is W4A4, ``NVFP4A16`` weight-only, ``W4A16``, ``FP8 static`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Activation:
    """How a layer's inputs are quantized. ``dtype`` None: left in float (a weight-only
    scheme); else ``FP8``, ``FP4``, ``INT8``, ``MXFP8`` or ``MXFP4``. ``static``: one calibrated
    scale is stored (``input_scale``, ``input_global_scale``, ``activation_scale``); otherwise
    the scales are computed at run time (dynamic per-token / per-group)."""

    dtype: str | None = None
    static: bool = False

    @property
    def label(self) -> str:
        """``none``, ``FP8 static``, ``INT8 dynamic`` ...: what JSON rows and reports show."""
        if self.dtype is None:
            return "none"
        return f"{self.dtype} {'static' if self.static else 'dynamic'}"

    @classmethod
    def parse(cls, label: str) -> Activation:
        """The activation ``label`` names; ``ValueError`` for anything else."""
        if label == "none":
            return NO_ACTIVATION
        dtype, _, mode = label.partition(" ")
        if dtype not in ACTIVATION_DTYPES or mode not in ("static", "dynamic"):
            raise ValueError(f"{label!r} is not an activation label (e.g. 'none', 'FP8 static')")
        return cls(dtype, mode == "static")


ACTIVATION_DTYPES = ("FP8", "FP4", "INT8", "MXFP8", "MXFP4")
NO_ACTIVATION = Activation()
_FP8_WEIGHTS = frozenset({Precision.FP8, Precision.FP8_PER_CHANNEL, Precision.FP8_BLOCK})
_SAME_FAMILY = {Precision.NVFP4: "FP4", Precision.MXFP4: "MXFP4", Precision.MXFP8: "MXFP8"}


def scheme_label(weight: Precision, activation: Activation | None) -> str:
    """The weight/activation pair as the tools name it: ``NVFP4`` (W4A4) vs ``NVFP4A16``,
    ``W4A16`` vs ``W4A8 FP8 static`` (ModelOpt W4A8_AWQ), ``FP8 static`` vs ``FP8_PER_CHANNEL
    dynamic``, ``W8A8 INT8 static`` vs ``W8A16``. A float weight, or an unknown activation
    side (None), is the weight label alone."""
    if not weight.is_quantized or activation is None:
        return weight.value
    bits = weight.value[3:] if weight.value.startswith("INT") else None
    if activation.dtype is None:
        if bits:
            return f"W{bits}A16"
        return f"{weight.value}A16" if weight in _SAME_FAMILY else f"{weight.value} weight-only"
    mode = "static" if activation.static else "dynamic"
    if _SAME_FAMILY.get(weight) == activation.dtype or (
        weight is Precision.MXFP4 and activation.dtype == "FP4"
    ):
        return weight.value if weight is not Precision.NVFP4 or activation.static else f"NVFP4 {mode}"
    if weight in _FP8_WEIGHTS and activation.dtype == "FP8":
        return f"{weight.value} {mode}"
    if bits:
        return (
            f"W{bits}A8 {activation.label}"
            if activation.dtype in ("FP8", "INT8")
            else (f"W{bits} + {activation.label}")
        )
    return f"{weight.value} + A {activation.label}"


def int_precision(bits: int) -> Precision:
    """The INT label for ``bits`` (2..8), or UNKNOWN for any other width."""
    try:
        return Precision(f"INT{bits}")
    except ValueError:
        return Precision.UNKNOWN


def describe_counts(counts: dict[str, int]) -> str:
    """``{"NVFP4": 12, "BF16": 3}`` → ``"NVFP4 12, BF16 3"`` (most frequent first)."""
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items(), key=lambda kv: -kv[1]))
