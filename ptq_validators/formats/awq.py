"""AWQ checkpoints written by AutoAWQ, GEMM layout (docs/formats.md §7).

Stored: ``qweight I32 [in, out·b/32]`` (packed along OUT, nibbles interleaved), ``qzeros I32
[in/g, out·b/32]`` and ``scales [in/g, out]``, with no ``g_idx`` (that is GPTQ). AutoAWQ packs
4-bit only in practice, so ``b`` is the declared width, else 4. The GEMV, ``gemv_fast`` and Marlin
layouts put ``out`` first and pad the zero-point width; they are reported, not recognised.

Declared: ``config.json`` ``quantization_config`` with ``quant_method: awq``. AutoAWQ quantizes
every linear inside the decoder layers (never ``lm_head`` or embeddings) except those whose name
contains a ``modules_to_not_convert`` entry as a substring (AutoAWQ's and vLLM's rule;
transformers ≥ 5 matches these entries like ``hf_fp8`` does, which only differs for entries
that are a middle piece of a name).
"""

from __future__ import annotations

from typing import Any

from ptq_validators.formats.base import (
    Declaration,
    Declared,
    Hints,
    Module,
    Stored,
    ceil_div,
)
from ptq_validators.globs import index_free
from ptq_validators.precision import NO_ACTIVATION, Precision, int_precision
from ptq_validators.taxonomy import LayerGroup, classify

FAMILY = "awq"
DEFAULT_BITS = 4
# WQLinear_GEMM registers qzeros even with zero_point false.
REQUIRED_ROLES = frozenset({"qweight", "qzeros", "scales"})


def recognize(module: Module, hints: Hints) -> Stored | None:
    """AutoAWQ's GEMM ``qweight`` layout (no ``g_idx``); None when there is no ``qweight``."""
    qweight = module.get("qweight")
    if qweight is None or module.get("g_idx") is not None or len(qweight.shape) != 2:
        return None
    bits = hints.declared_bits or DEFAULT_BITS
    in_dim, words = qweight.shape
    out_dim = 32 * words // bits
    shape = (out_dim, in_dim)
    scales, qzeros = module.get("scales"), module.get("qzeros")
    if scales is None or len(scales.shape) != 2 or scales.shape[1] != out_dim or scales.shape[0] == 0:
        found = list(scales.shape) if scales is not None else None
        return Stored(
            Precision.UNKNOWN,
            qweight.shape,
            problems=[
                f"qweight {list(qweight.shape)} with scales {found} is not AutoAWQ's GEMM layout "
                f"(scales [in/g, {out_dim}]); GEMV and Marlin layouts are not supported"
            ],
        )
    problems = []
    if hints.source_shape is not None and hints.source_shape != shape:
        problems.append(
            f"qweight {list(qweight.shape)} unpacks to {list(shape)} at {bits} bits, "
            f"the source layer is {list(hints.source_shape)}"
        )
    groups = scales.shape[0]
    declared = hints.declared_group_size
    if declared and ceil_div(in_dim, declared) != groups:
        problems.append(
            f"scales has {groups} rows; group_size {declared} over in={in_dim} "
            f"needs {ceil_div(in_dim, declared)}"
        )
    group = declared if declared and ceil_div(in_dim, declared) == groups else ceil_div(in_dim, groups)
    if qzeros is not None and qzeros.shape != (groups, words):
        problems.append(f"qzeros {list(qzeros.shape)} is not [{groups}, {words}] like scales and qweight")
    return Stored(int_precision(bits), shape, group, problems, note=f"AWQ GEMM {bits}-bit, packed along out")


class AwqDeclaration(Declaration):
    """An AutoAWQ ``quantization_config``."""

    family = FAMILY

    def __init__(self, block: dict[str, Any]) -> None:
        self.bits = block.get("bits", DEFAULT_BITS)
        self.group_size = block.get("group_size")
        self.zero_point = block.get("zero_point")
        self.version = block.get("version")
        excludes = block.get("modules_to_not_convert") or []
        self.modules_to_not_convert = [p for p in excludes if isinstance(p, str)]
        self.summary = {
            "family": FAMILY,
            "origin": "config.json quantization_config",
            "bits": self.bits,
            "group_size": self.group_size,
            "zero_point": self.zero_point,
            "version": self.version,
            "modules_to_not_convert": self.modules_to_not_convert,
        }

    def declared(self, module_name: str, *, module_class: str | None = None) -> Declared:
        pattern = next((p for p in self.modules_to_not_convert if p in module_name), None)
        if pattern is not None:
            return Declared(None, None, f"modules_to_not_convert {pattern!r}")
        group = classify(module_name)
        if module_class == "Embedding" or group in (LayerGroup.EMBED, LayerGroup.LM_HEAD):
            return Declared(None, None, f"AutoAWQ does not quantize {group.value}")
        precision = int_precision(self.bits) if isinstance(self.bits, int) else Precision.UNKNOWN
        group_size = self.group_size if isinstance(self.group_size, int) and self.group_size > 0 else None
        return Declared(
            precision,
            group_size,
            f"bits {self.bits}, group_size {self.group_size}",
            REQUIRED_ROLES,
            activation=NO_ACTIVATION,  # AutoAWQ kernels are weight-only (W4A16)
        )

    def declared_bits(self, module_name: str) -> int | None:
        return self.bits if isinstance(self.bits, int) else None

    def exclusion_patterns(self) -> list[str]:
        return list(self.modules_to_not_convert)

    def pattern_matches(self, pattern: str, module_name: str, module_class: str | None = None) -> bool:
        return pattern in module_name

    def pattern_index_free(self, pattern: str) -> bool:
        return index_free([pattern], "literal")  # a substring


def read_declaration(documents: dict[str, Any]) -> AwqDeclaration | None:
    quant_config = (documents.get("config.json") or {}).get("quantization_config")
    if isinstance(quant_config, dict) and str(quant_config.get("quant_method")).lower() == "awq":
        return AwqDeclaration(quant_config)
    return None
