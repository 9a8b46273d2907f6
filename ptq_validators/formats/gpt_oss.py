"""GPT-OSS style MXFP4 experts, ``quant_method: mxfp4`` (docs/formats.md §5).

Stored: a fused expert parameter ``…experts.<w>_blocks U8 [E, out, G, 16]`` (16 bytes = 32 E2M1
values per group, rows are the OUTPUT dim) beside ``…experts.<w>_scales U8 [E, out, G]`` (one
E8M0 exponent per 32 values): MXFP4, group 32, original shape ``[E, out, 32·G]``. ``split_role``
files both under the module ``…experts.<w>`` with roles ``blocks`` / ``scales``.

Declared: ``config.json`` ``quantization_config`` (``Mxfp4Config``). transformers converts only
MoE experts: a ``…experts.gate_up_proj`` / ``…experts.down_proj`` parameter is MXFP4 unless its
``…experts`` module matches a ``modules_to_not_convert`` entry (``should_convert_module``, see
``hf_fp8.ModuleMatcher``; the shipped entries are globs like ``model.layers.*.self_attn`` that
work as regexes); every other module is declared unquantized.
"""

from __future__ import annotations

import re
from typing import Any

from ptq_validators.formats.base import Declaration, Declared, Hints, Module, Stored
from ptq_validators.formats.hf_fp8 import ModuleMatcher
from ptq_validators.formats.scaled import E8M0_DTYPES
from ptq_validators.precision import NO_ACTIVATION, Precision

FAMILY = "mxfp4"
GROUP = 32
_BYTES_PER_GROUP = GROUP // 2
# The expert parameters Mxfp4GptOssExperts holds, and the module transformers tests against
# modules_to_not_convert (the ``experts`` parent, not the parameter).
_EXPERT_PARAM = re.compile(r"^(?P<experts>.*\.experts)\.(?:gate_up_proj|down_proj)$")


def recognize(module: Module, hints: Hints) -> Stored | None:
    """``_blocks U8 [E, out, G, 16]`` + ``_scales``; None when the module has no ``blocks``."""
    blocks = module.get("blocks")
    if blocks is None:
        return None
    shape = blocks.shape
    if blocks.dtype != "U8" or len(shape) < 3 or shape[-1] != _BYTES_PER_GROUP:
        return Stored(
            Precision.UNKNOWN,
            shape,
            problems=[
                f"blocks {blocks.dtype} {list(shape)} is not MXFP4 [..., out, G, {_BYTES_PER_GROUP}] bytes"
            ],
        )
    original = (*shape[:-2], shape[-2] * GROUP)
    problems = []
    scales = module.get("scales")
    if scales is None:
        problems.append("blocks without scales")
    elif scales.shape != shape[:-1] or scales.dtype not in E8M0_DTYPES:
        problems.append(
            f"scales {scales.dtype} {list(scales.shape)} is not one E8M0 exponent per "
            f"32 values: {list(shape[:-1])}"
        )
    if hints.source_shape is not None and _elements(hints.source_shape) != _elements(original):
        # The source keeps the BMM layout [E, in, out]: compare element counts, not order.
        problems.append(
            f"blocks unpack to {list(original)}, the source parameter is {list(hints.source_shape)}"
        )
    return Stored(Precision.MXFP4, original, GROUP, problems, note="GPT-OSS MXFP4 experts")


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _tested_module(module_name: str) -> str:
    """The module transformers tests against ``modules_to_not_convert`` for ``module_name``: an
    expert parameter's ``…experts`` module, any other module itself. Declaring and the exclude
    check both ask with it, so an entry that matches only the ``…experts`` module is seen to
    exclude its parameters."""
    expert = _EXPERT_PARAM.match(module_name)
    return expert["experts"] if expert else module_name


class Mxfp4Declaration(Declaration):
    """An ``Mxfp4Config`` block from ``config.json``."""

    family = FAMILY

    def __init__(self, block: dict[str, Any]) -> None:
        excludes = block.get("modules_to_not_convert") or []
        self.matcher = ModuleMatcher([p for p in excludes if isinstance(p, str)])
        self.summary = {
            "family": FAMILY,
            "origin": "config.json quantization_config",
            "group_size": GROUP,
            "modules_to_not_convert": self.matcher.entries,
        }

    def declared(self, module_name: str, *, module_class: str | None = None) -> Declared:
        tested = _tested_module(module_name)
        entry = self.matcher.first_match(tested)
        if entry is not None:
            return Declared(None, None, f"modules_to_not_convert {entry!r}")
        if tested == module_name:
            return Declared(None, None, "mxfp4 converts only MoE experts")
        return Declared(
            Precision.MXFP4,
            GROUP,
            "quant_method mxfp4",
            frozenset({"blocks", "scales"}),
            activation=NO_ACTIVATION,  # transformers' mxfp4 keeps activations in BF16
        )

    def exclusion_patterns(self) -> list[str]:
        return list(self.matcher.entries)

    def pattern_matches(self, pattern: str, module_name: str, module_class: str | None = None) -> bool:
        return self.matcher.matches(pattern, _tested_module(module_name))

    def pattern_index_free(self, pattern: str) -> bool:
        return self.matcher.index_free(pattern)


def read_declaration(documents: dict[str, Any]) -> Mxfp4Declaration | None:
    quant_config = (documents.get("config.json") or {}).get("quantization_config")
    if isinstance(quant_config, dict) and str(quant_config.get("quant_method")).lower() == "mxfp4":
        return Mxfp4Declaration(quant_config)
    return None
