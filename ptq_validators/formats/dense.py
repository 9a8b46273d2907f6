"""Unquantized weights, and float weights stored beside quantization scales (fake quant)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from ptq_validators.formats.base import Declaration, Declared, Hints, Module, Stored
from ptq_validators.formats.roles import WEIGHT_QUANT_PARAMS
from ptq_validators.precision import FLOAT_DTYPE_PRECISION, Precision

FAMILY = "dense"


def recognize(module: Module, hints: Hints) -> Stored | None:
    """A float ``weight``: its dtype, or FAKE_QUANT when scales sit beside it."""
    weight = module.get("weight")
    if weight is None or weight.dtype not in FLOAT_DTYPE_PRECISION:
        return None
    if any(role in module.tensors for role in WEIGHT_QUANT_PARAMS):
        return Stored(
            Precision.FAKE_QUANT,
            weight.shape,
            note=f"{weight.dtype} weight stored beside quantization scales",
        )
    return Stored(FLOAT_DTYPE_PRECISION[weight.dtype], weight.shape)


class DenseDeclaration(Declaration):
    """No quantization metadata: everything is declared unquantized."""

    family = FAMILY
    uniform = True

    def __init__(self, quant_method: str | None = None) -> None:
        self.quant_method = quant_method
        self.summary = {
            "family": FAMILY if quant_method is None else f"unsupported:{quant_method}",
            "origin": None,
        }

    def declared(self, module_name: str, *, module_class: str | None = None) -> Declared:
        return Declared(None, None, "no quantization metadata")

    def instance_key(self, module_name: str) -> Hashable:
        return None  # one answer for every module

    def instance_keys(self, module_names: list[str]) -> list[Hashable]:
        return [None] * len(module_names)


def read_declaration(documents: dict[str, Any]) -> DenseDeclaration:
    quant_config = (documents.get("config.json") or {}).get("quantization_config")
    method = quant_config.get("quant_method") if isinstance(quant_config, dict) else None
    return DenseDeclaration(str(method) if method else None)
