"""compressed-tensors checkpoints written by llm-compressor (docs/formats.md §3).

Stored: ``weight_packed U8`` with a ``weight_global_scale`` is NVFP4, with an E8M0 scale and no
global scale MXFP4; ``weight_packed I32`` is packed INT of the declared width (the width cannot
be read from headers alone: it comes from the declaration, the source's shape pins ``in``).
FP8/INT8 layouts are shared with other producers (``scaled.py``).

Declared: ``config.json`` ``quantization_config`` with ``quant_method: compressed-tensors``.
A module belongs to the config group of its winning target unless an ``ignore`` entry matches
(compressed-tensors' matching and priority: ``ct_rules``).
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
from ptq_validators.formats.ct_rules import (
    activation_of,
    first_match,
    matches,
    weight_precision,
    winning_target,
)
from ptq_validators.formats.scaled import E8M0_DTYPES
from ptq_validators.globs import index_free
from ptq_validators.precision import Activation, Precision, int_precision

FAMILY = "compressed-tensors"
FP4_GROUPS = (16, 32)


def recognize(module: Module, hints: Hints) -> Stored | None:
    """compressed-tensors packed layouts (``weight_packed``); None for anything else."""
    packed = module.get("weight_packed")
    if packed is None or len(packed.shape) < 2:
        return None
    scale = module.get("weight_scale")
    if packed.dtype == "U8":
        shape = (*packed.shape[:-1], 2 * packed.shape[-1])
        if module.get("weight_global_scale") is not None:
            return _grouped(Precision.NVFP4, shape, scale, hints.declared_group_size or 16)
        if scale is not None and scale.dtype in E8M0_DTYPES:
            return _grouped(Precision.MXFP4, shape, scale, 32)
        return Stored(Precision.UNKNOWN, shape, problems=["weight_packed U8 without an FP4 scale layout"])
    if packed.dtype == "I32":
        return _packed_int(packed.shape, scale, hints)
    return Stored(Precision.UNKNOWN, packed.shape, problems=[f"weight_packed of dtype {packed.dtype}"])


def _grouped(precision: Precision, shape: tuple[int, ...], scale: Any, group: int) -> Stored:
    problems = []
    if scale is None:
        problems.append("no weight_scale")
    elif scale.shape != (*shape[:-1], ceil_div(shape[-1], group)):
        problems.append(f"weight_scale {list(scale.shape)} is not a group-{group} grid of {list(shape)}")
    return Stored(precision, shape, group, problems)


def _packed_int(packed_shape: tuple[int, ...], scale: Any, hints: Hints) -> Stored:
    """``I32 [out, words]``: ``in`` from the source shape, else from the declared width."""
    bits = hints.declared_bits
    words = packed_shape[-1]
    if hints.source_shape is not None:
        in_dim = hints.source_shape[-1]
    elif bits:
        in_dim = 32 * words // bits
    else:
        return Stored(
            Precision.UNKNOWN, packed_shape, problems=["packed INT weight with no declared bit width"]
        )
    shape = (*packed_shape[:-1], in_dim)
    if not bits:
        return Stored(Precision.UNKNOWN, shape, problems=["packed INT weight with no declared bit width"])
    problems = []
    legacy_words = ceil_div(in_dim, 32 // bits) if bits <= 32 else -1
    if words not in (ceil_div(in_dim * bits, 32), legacy_words):
        problems.append(
            f"weight_packed has {words} words per row; {bits}-bit x {in_dim} needs "
            f"{ceil_div(in_dim * bits, 32)}"
        )
    group = None
    if scale is not None and scale.shape[-1] > 1:
        group = hints.declared_group_size or (in_dim // scale.shape[-1])
        if ceil_div(in_dim, group) != scale.shape[-1]:
            problems.append(f"weight_scale {list(scale.shape)} is not a group-{group} grid of in={in_dim}")
    return Stored(int_precision(bits), shape, group, problems)


class CompressedTensorsDeclaration(Declaration):
    """A compressed-tensors ``quantization_config``."""

    family = FAMILY

    def __init__(self, block: dict[str, Any]) -> None:
        self.format = block.get("format")
        self.status = block.get("quantization_status")
        self.ignore = [p for p in block.get("ignore") or [] if isinstance(p, str)]
        self.kv_cache_scheme = block.get("kv_cache_scheme")
        if isinstance(self.kv_cache_scheme, dict):
            self.kv_cache = weight_precision(self.kv_cache_scheme)[0].value
        self.groups: list[tuple[str, list[str], dict[str, Any]]] = []
        # target → (group, weight args): a later group listing the same target replaces it.
        self.schemes: dict[str, tuple[str, dict[str, Any]]] = {}
        self.activations: dict[str, Activation] = {}  # group name → its input_activations
        for name, group in (block.get("config_groups") or {}).items():
            if isinstance(group, dict):
                targets = [t for t in group.get("targets") or [] if isinstance(t, str)]
                self.groups.append((name, targets, group.get("weights") or {}))
                self.activations[name] = activation_of(group.get("input_activations"))
                self.schemes.update((target, (name, group.get("weights") or {})) for target in targets)
        self.summary = {
            "family": FAMILY,
            "origin": "config.json quantization_config",
            "format": self.format,
            "quantization_status": self.status,
            "config_groups": {
                name: {
                    "targets": targets,
                    "weights": weight_precision(args)[0].value,
                    "input_activations": self.activations[name].label,
                }
                for name, targets, args in self.groups
            },
            "ignore": self.ignore,
            "kv_cache_scheme": self.kv_cache_scheme,
        }

    def exclusion_patterns(self) -> list[str]:
        return list(self.ignore)

    def pattern_matches(self, pattern: str, module_name: str, module_class: str | None = None) -> bool:
        return matches(pattern, module_name, module_class or "Linear")

    def pattern_index_free(self, pattern: str) -> bool:
        # ``re:`` entries are regexes; the others are compared whole with a name or a class name.
        if pattern.startswith("re:"):
            return index_free([pattern[3:]], "regex")
        return index_free([pattern], "literal")

    def _group_for(self, module_name: str, module_class: str) -> tuple[str, str, dict[str, Any]] | None:
        target = winning_target(self.schemes, module_name, module_class)
        if target is None:
            return None
        name, args = self.schemes[target]
        return name, target, args

    def declared(self, module_name: str, *, module_class: str | None = None) -> Declared:
        cls = module_class or "Linear"
        ignored = first_match(self.ignore, module_name, cls)
        if ignored is not None:
            return Declared(None, None, f"ignore {ignored!r}")
        match = self._group_for(module_name, cls)
        if match is None:
            return Declared(None, None, "no config group targets it")
        name, target, args = match
        if not args:
            return Declared(None, None, f"{name} quantizes no weights")
        precision, group = weight_precision(args)
        if self.status not in (None, "compressed") or self.format in ("dense", "fakequant"):
            return Declared(
                Precision.FAKE_QUANT,
                None,
                f"{name} target {target!r}, status {self.status!r}, format {self.format!r}",
            )
        return Declared(precision, group, f"{name} target {target!r}", activation=self.activations[name])

    def declared_bits(self, module_name: str) -> int | None:
        match = self._group_for(module_name, "Linear")
        if match is None:
            return None
        bits = match[2].get("num_bits")
        return bits if isinstance(bits, int) else None


def read_declaration(documents: dict[str, Any]) -> CompressedTensorsDeclaration | None:
    quant_config = (documents.get("config.json") or {}).get("quantization_config")
    if isinstance(quant_config, dict) and quant_config.get("quant_method") == "compressed-tensors":
        return CompressedTensorsDeclaration(quant_config)
    return None
