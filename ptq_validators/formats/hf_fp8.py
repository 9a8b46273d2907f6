"""Hugging Face fine-grained FP8 (DeepSeek-V3 style), ``quant_method: fp8`` (docs/formats.md §4).

Stored: ``weight F8_E4M3 [out, in]`` beside ``weight_scale_inv [ceil(out/b0), ceil(in/b1)]``;
``scaled.py`` recognises that layout for every producer, so this module only declares.

Declared: ``config.json`` ``quantization_config`` (``FineGrainedFP8Config``): every ``nn.Linear``
(and fused ``experts`` module) becomes FP8 with ``weight_block_size`` ``[b0, b1]`` blocks (group
size ``b1``; no block size means one per-tensor scale) unless a ``modules_to_not_convert`` entry
(alias ``ignored_layers``) matches. A null list makes transformers keep the output embedding
(``lm_head``) instead. Embeddings are converted (per-tensor FP8) only when ``modules_to_convert``
names them as a suffix. Entries match with transformers' ``should_convert_module``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

from ptq_validators.formats.base import Declaration, Declared
from ptq_validators.globs import index_free
from ptq_validators.precision import Activation, Precision
from ptq_validators.taxonomy import LayerGroup, classify

FAMILY = "hf-fp8"
# The module boundary transformers (5.23) puts after an entry: "layers.1" must not match
# "layers.11", "mlp.gate" must not match "mlp.gate_proj".
_BOUNDARY = r"(?:(?<=\.)|(?=\.|$))"


class ModuleMatcher:
    """transformers' ``should_convert_module`` for one list of entries: an entry matches a
    module when it matches, as a regex anchored at the start, up to a module boundary, or when
    the name ends with it. Older transformers (≤ 5.17) had no boundary, so ``layers.1`` also
    swallowed layers 10-19; checkpoints are judged by the rule current loaders apply."""

    def __init__(self, entries: list[str]) -> None:
        self.entries = entries
        self._patterns = {entry: _compile(entry) for entry in entries}

    def matches(self, entry: str, module_name: str) -> bool:
        pattern = self._patterns.get(entry) or _compile(entry)
        return pattern.match(module_name) is not None or module_name.endswith(entry)

    def index_free(self, entry: str) -> bool:
        """Whether ``entry`` answers alike for every name of one ``index_key``: proved for its
        regex, which covers its literal suffix test too (a literal character of a provable
        regex is the same character of the entry)."""
        return index_free([entry], "regex")

    def first_match(self, module_name: str) -> str | None:
        """The first entry that keeps ``module_name`` unconverted, or None."""
        return next((entry for entry in self.entries if self.matches(entry, module_name)), None)


def _compile(entry: str) -> re.Pattern[str]:
    try:
        return re.compile(rf"(?:{entry}){_BOUNDARY}")
    except re.error:
        # transformers would raise on an entry that is not a valid regex; a validator reads it
        # literally instead, so one bad entry does not hide every other finding.
        return re.compile(rf"(?:{re.escape(entry)}){_BOUNDARY}")


class HfFp8Declaration(Declaration):
    """A ``FineGrainedFP8Config`` block from ``config.json``."""

    family = FAMILY

    def __init__(self, block: dict[str, Any]) -> None:
        excludes = block.get("modules_to_not_convert", block.get("ignored_layers"))
        # None (not an empty list) switches on transformers' default skip of the output embedding.
        self.default_skips = excludes is None
        self.matcher = ModuleMatcher([p for p in excludes or [] if isinstance(p, str)])
        self.modules_to_convert = [p for p in block.get("modules_to_convert") or [] if isinstance(p, str)]
        block_size = block.get("weight_block_size")
        self.weight_block_size = (
            list(block_size) if isinstance(block_size, (list, tuple)) and len(block_size) == 2 else None
        )
        self.activation_scheme = block.get("activation_scheme", "dynamic")
        self.scale_fmt = block.get("scale_fmt", "float")
        # FP8Linear stores a static input scale as ``activation_scale``.
        self.required_roles = frozenset(
            {"weight_scale_inv"} | ({"activation_scale"} if self.activation_scheme == "static" else set())
        )
        self.activation = Activation("FP8", self.activation_scheme == "static")
        self.summary = {
            "family": FAMILY,
            "origin": "config.json quantization_config",
            "weight_block_size": self.weight_block_size,
            "group_size": self.weight_block_size[1] if self.weight_block_size else None,
            "activation_scheme": self.activation_scheme,
            "scale_fmt": self.scale_fmt,
            "modules_to_not_convert": None if self.default_skips else self.matcher.entries,
            "modules_to_convert": self.modules_to_convert,
        }

    def declared(self, module_name: str, *, module_class: str | None = None) -> Declared:
        entry = self.matcher.first_match(module_name)
        if entry is not None:
            return Declared(None, None, f"modules_to_not_convert {entry!r}")
        group = classify(module_name)
        if module_class == "Embedding" or group is LayerGroup.EMBED:
            suffix = self._conversion(module_name)
            if suffix is None:
                return Declared(None, None, "embeddings are converted only if modules_to_convert names them")
            return Declared(Precision.FP8, None, f"modules_to_convert {suffix!r}", activation=self.activation)
        if self.default_skips and group is LayerGroup.LM_HEAD:
            return Declared(None, None, "modules_to_not_convert null: the output embedding is kept")
        if self.weight_block_size is None:
            return Declared(
                Precision.FP8,
                None,
                "weight_block_size null: per-tensor FP8",
                self.required_roles,
                activation=self.activation,
            )
        b0, b1 = self.weight_block_size
        return Declared(
            Precision.FP8_BLOCK,
            b1,
            f"weight_block_size [{b0}, {b1}]",
            self.required_roles,
            block=(b0, b1),
            activation=self.activation,
        )

    def instance_key(self, module_name: str) -> Hashable:
        """The entries that pick ``module_name`` out (the rest of ``declared`` reads its
        template and class)."""
        return self.matcher.first_match(module_name), self._conversion(module_name)

    def instance_keys(self, module_names: list[str]) -> list[Hashable]:
        if not self.matcher.entries and not self.modules_to_convert:
            return [None] * len(module_names)  # DeepSeek-V3's and Kimi-K2's own configs
        return list(map(self.instance_key, module_names))

    def _conversion(self, module_name: str) -> str | None:
        """The ``modules_to_convert`` suffix that names ``module_name``, or None."""
        return next((p for p in self.modules_to_convert if module_name.endswith(p)), None)

    def exclusion_patterns(self) -> list[str]:
        return list(self.matcher.entries)

    def pattern_matches(self, pattern: str, module_name: str, module_class: str | None = None) -> bool:
        return self.matcher.matches(pattern, module_name)

    def pattern_index_free(self, pattern: str) -> bool:
        return self.matcher.index_free(pattern)


def read_declaration(documents: dict[str, Any]) -> HfFp8Declaration | None:
    quant_config = (documents.get("config.json") or {}).get("quantization_config")
    if isinstance(quant_config, dict) and str(quant_config.get("quant_method")).lower() == "fp8":
        return HfFp8Declaration(quant_config)
    return None
