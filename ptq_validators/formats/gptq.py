"""GPTQ checkpoints written by GPTQModel / AutoGPTQ (docs/formats.md §6).

Stored: ``qweight I32 [ceil(in·b/32), out]`` (packed along IN), ``qzeros I32 [ceil(in/g),
ceil(out·b/32)]``, ``scales [ceil(in/g), out]`` and ``g_idx I32 [in]``. ``g_idx`` is what tells
GPTQ from AWQ (which has none) and gives ``in``; ``b = 32·qweight.shape[0] / in`` (the width is
in the shapes, so a declaration that disagrees is a problem; the declared ``b`` is used only when
that ratio is not whole). Only the ``gptq``/``gptq_v2`` layout is read (the v1/v2 difference
is in the zero-point values, not the shapes); ``marlin``/``bitblas`` checkpoints use other tensors.

Declared: ``config.json`` ``quantization_config`` with ``quant_method: gptq`` (what transformers
and vLLM load), else GPTQModel's own ``quantize_config.json``. GPTQModel quantizes the linears
its model definition lists inside the decoder layers, never routers (marked ``!`` there),
embeddings or vision towers, and ``lm_head`` only when ``lm_head: true``. ``dynamic`` overrides are tried in
order with a start-anchored regex match; the first match decides: ``-:`` means not quantized,
otherwise its ``bits`` / ``group_size`` replace the global ones.
"""

from __future__ import annotations

import re
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
from ptq_validators.taxonomy import CONVENTIONALLY_UNQUANTIZED, LayerGroup, classify

FAMILY = "gptq"
_NEGATIVE, _POSITIVE = "-:", "+:"
# The fields that decide what a loader quantizes and how it unpacks.
_LOADED_KEYS = ("bits", "group_size", "desc_act", "sym", "lm_head", "checkpoint_format", "dynamic")
# GPTQModel registers all four buffers for every quantized linear (g_idx even without desc_act).
REQUIRED_ROLES = frozenset({"qweight", "qzeros", "scales", "g_idx"})


def recognize(module: Module, hints: Hints) -> Stored | None:
    """GPTQ's ``qweight`` + ``g_idx`` layout; None for anything else (AWQ has no ``g_idx``)."""
    qweight, g_idx = module.get("qweight"), module.get("g_idx")
    if qweight is None or g_idx is None or len(qweight.shape) != 2 or len(g_idx.shape) != 1:
        return None
    rows, out_dim = qweight.shape
    in_dim = g_idx.shape[0]
    shape = (out_dim, in_dim)
    if in_dim == 0:
        return Stored(Precision.UNKNOWN, shape, problems=["g_idx is empty"])
    problems = []
    if hints.source_shape is not None and hints.source_shape != shape:
        problems.append(
            f"qweight {list(qweight.shape)} with g_idx [{in_dim}] unpacks to "
            f"{list(shape)}, the source layer is {list(hints.source_shape)}"
        )
    # The codes' width is in the shapes whenever 32·rows/in is whole (in is a multiple of 32 in
    # every real model); the declared width only fills in when it is not.
    shape_bits = 32 * rows // in_dim if 32 * rows % in_dim == 0 else None
    declared = hints.declared_bits
    bits = shape_bits or declared
    if bits is None:
        return Stored(
            Precision.UNKNOWN,
            shape,
            problems=[*problems, f"qweight has {rows} rows for in={in_dim}: not a whole bit width"],
        )
    if declared and declared != bits:
        problems.append(f"qweight has {rows} rows for in={in_dim}: {bits}-bit codes, declared {declared}-bit")
    elif rows != ceil_div(in_dim * bits, 32):
        problems.append(
            f"qweight has {rows} rows; {bits}-bit x in={in_dim} needs {ceil_div(in_dim * bits, 32)}"
        )
    group = _group(module, in_dim, out_dim, bits, hints.declared_group_size, problems)
    return Stored(int_precision(bits), shape, group, problems, note=f"GPTQ {bits}-bit, packed along in")


def _group(
    module: Module, in_dim: int, out_dim: int, bits: int, declared: int | None, problems: list[str]
) -> int | None:
    """The group size the ``scales`` rows show (None: one group over all of ``in``), with
    ``scales`` and ``qzeros`` checked against it and against the declared ``group_size``."""
    scales, qzeros = module.get("scales"), module.get("qzeros")
    if scales is None or len(scales.shape) != 2 or scales.shape[0] == 0:
        problems.append("no 2-D scales beside qweight")
        return None
    groups = scales.shape[0]
    expected = ceil_div(in_dim, declared) if declared and declared > 0 else 1
    if declared is not None and groups != expected:
        problems.append(f"scales has {groups} rows; group_size {declared} over in={in_dim} needs {expected}")
    if scales.shape[1] != out_dim:
        problems.append(f"scales {list(scales.shape)} does not have out={out_dim} columns")
    if qzeros is not None and qzeros.shape != (groups, ceil_div(out_dim * bits, 32)):
        problems.append(
            f"qzeros {list(qzeros.shape)} is not [{groups}, "
            f"{ceil_div(out_dim * bits, 32)}] for {bits}-bit out={out_dim}"
        )
    # One row cannot tell g=in from g=128 with in=128: the declared size decides when it fits.
    if declared and declared > 0 and groups == expected:
        return declared
    return ceil_div(in_dim, groups) if groups > 1 else None


class GptqDeclaration(Declaration):
    """A GPTQ quantization config (``quantize_config.json`` or ``quantization_config``)."""

    family = FAMILY

    def __init__(self, block: dict[str, Any], origin: str) -> None:
        self.origin = origin
        self.bits = block.get("bits")
        self.group_size = block.get("group_size")
        self.desc_act = block.get("desc_act")
        self.sym = block.get("sym")
        self.lm_head = bool(block.get("lm_head"))
        # GPTQModel writes ``checkpoint_format``; older AutoGPTQ configs say ``format``.
        self.checkpoint_format = block.get("checkpoint_format", block.get("format"))
        dynamic = block.get("dynamic") or {}
        self.dynamic: list[tuple[str, re.Pattern[str], dict[str, Any]]] = []
        for key, overrides in dynamic.items() if isinstance(dynamic, dict) else ():
            self.dynamic.append((key, _compile(key), overrides if isinstance(overrides, dict) else {}))
        self.summary = {
            "family": FAMILY,
            "origin": origin,
            "bits": self.bits,
            "group_size": self.group_size,
            "desc_act": self.desc_act,
            "sym": self.sym,
            "checkpoint_format": self.checkpoint_format,
            "lm_head": self.lm_head,
            "dynamic": list(dynamic) if isinstance(dynamic, dict) else [],
        }

    def _override(self, module_name: str) -> tuple[str, dict[str, Any]] | None:
        for key, pattern, overrides in self.dynamic:
            if pattern.match(module_name):
                return key, overrides
        return None

    def declared(self, module_name: str, *, module_class: str | None = None) -> Declared:
        override = self._override(module_name)
        if override is not None and override[0].startswith(_NEGATIVE):
            return Declared(None, None, f"dynamic {override[0]!r}")
        group = classify(module_name)
        if module_class == "Embedding" or group is LayerGroup.EMBED:
            return Declared(None, None, "GPTQ does not quantize embeddings")
        if group is LayerGroup.LM_HEAD:
            if not self.lm_head:
                return Declared(None, None, "lm_head: false")
        elif group in CONVENTIONALLY_UNQUANTIZED:
            return Declared(None, None, f"GPTQModel does not quantize {group.value} layers")
        fields = override[1] if override is not None else {}
        bits = fields.get("bits", self.bits)
        group_size = fields.get("group_size", self.group_size)
        precision = int_precision(bits) if isinstance(bits, int) else Precision.UNKNOWN
        rule = f"dynamic {override[0]!r}" if override is not None else f"bits {bits}"
        # group_size -1 (one group over all of ``in``) is kept: recognition expects one row.
        return Declared(
            precision,
            group_size if isinstance(group_size, int) else None,
            f"{rule}, group_size {group_size}",
            REQUIRED_ROLES,
            activation=NO_ACTIVATION,  # GPTQ is weight-only
        )

    def declared_bits(self, module_name: str) -> int | None:
        override = self._override(module_name)
        bits = (override[1] if override is not None else {}).get("bits", self.bits)
        return bits if isinstance(bits, int) else None

    def exclusion_patterns(self) -> list[str]:
        return [key for key, _, _ in self.dynamic if key.startswith(_NEGATIVE)]

    def pattern_matches(self, pattern: str, module_name: str, module_class: str | None = None) -> bool:
        return _compile(pattern).match(module_name) is not None

    def pattern_index_free(self, pattern: str) -> bool:
        return index_free([_regex_of(pattern)], "regex")


def _regex_of(key: str) -> str:
    """A ``dynamic`` key without its ``-:``/``+:`` prefix."""
    return key[2:] if key.startswith((_NEGATIVE, _POSITIVE)) else key


def _compile(key: str) -> re.Pattern[str]:
    """A ``dynamic`` key without its ``-:``/``+:`` prefix, as a regex (GPTQModel matches with
    ``match``: anchored at the start only). A key that is not a valid regex, which GPTQModel
    rejects, is read literally so that the other keys are still judged."""
    raw = _regex_of(key)
    try:
        return re.compile(raw)
    except re.error:
        return re.compile(re.escape(raw))


def read_declaration(documents: dict[str, Any]) -> GptqDeclaration | None:
    """From ``config.json``'s gptq block (what transformers and vLLM load), else from
    ``quantize_config.json`` (GPTQModel's own copy); keys where the two copies disagree are
    listed in the summary, since each loader would then quantize differently."""
    own = documents.get("quantize_config.json")
    own = own if isinstance(own, dict) and str(own.get("quant_method", "gptq")).lower() == "gptq" else None
    quant_config = (documents.get("config.json") or {}).get("quantization_config")
    if isinstance(quant_config, dict) and str(quant_config.get("quant_method")).lower() == "gptq":
        declaration = GptqDeclaration(quant_config, "config.json quantization_config")
        if own is not None:
            declaration.summary["differs_from_quantize_config"] = [
                key for key in _LOADED_KEYS if quant_config.get(key) != own.get(key)
            ]
        return declaration
    return GptqDeclaration(own, "quantize_config.json") if own is not None else None
