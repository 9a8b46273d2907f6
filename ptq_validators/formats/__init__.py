"""Format adapters, one per quantization family, and the order in which they are consulted.

``RECOGNIZERS`` decide the stored precision of a module from its tensors (first match wins;
dense comes last). ``read_declaration`` picks the family whose metadata the checkpoint carries.
Adding a format means adding one module here (``recognize`` and, if it has metadata,
``read_declaration``) and its fixtures.
"""

from __future__ import annotations

from typing import Any

from ptq_validators.formats import (
    awq,
    compressed_tensors,
    dense,
    gpt_oss,
    gptq,
    hf_fp8,
    modelopt,
    scaled,
)
from ptq_validators.formats.base import Declaration, Hints, Module, Stored
from ptq_validators.precision import Precision

# GPTQ before AWQ: both anchor on ``qweight``; ``g_idx`` is what only GPTQ has.
RECOGNIZERS = (
    compressed_tensors.recognize,
    modelopt.recognize,
    gptq.recognize,
    awq.recognize,
    gpt_oss.recognize,
    scaled.recognize,
    dense.recognize,
)
# ModelOpt first: its hf_quant_config.json wins over any config.json block. The others each
# claim only their own quant_method.
DECLARATION_READERS = (
    modelopt.read_declaration,
    compressed_tensors.read_declaration,
    gptq.read_declaration,
    awq.read_declaration,
    hf_fp8.read_declaration,
    gpt_oss.read_declaration,
)


def recognize(module: Module, hints: Hints) -> Stored:
    """The stored precision of ``module`` (UNKNOWN when no adapter recognises its tensors)."""
    for recognizer in RECOGNIZERS:
        stored = recognizer(module, hints)
        if stored is not None:
            return stored
    anchor = module.anchor
    shape = anchor.shape if anchor is not None else ()
    dtype = anchor.dtype if anchor is not None else "?"
    return Stored(
        Precision.UNKNOWN,
        shape,
        problems=[f"no known format stores a {dtype} weight with {sorted(module.tensors)}"],
    )


def read_declaration(documents: dict[str, Any]) -> Declaration:
    """The quantization metadata of a checkpoint, from the first family that claims it."""
    for reader in DECLARATION_READERS:
        declaration = reader(documents)
        if declaration is not None:
            return declaration
    return dense.read_declaration(documents)
