"""The recipe interface shared by the tool-specific recipes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from ptq_validators.errors import UsageError
from ptq_validators.precision import Activation, Precision


@dataclass(frozen=True)
class Intent:
    """What a recipe intends for one module: ``precision`` None means left unquantized;
    ``activation`` the intended activation side (None: the recipe does not say)."""

    precision: Precision | None
    group_size: int | None
    rule: str
    activation: Activation | None = None


class Recipe(ABC):
    """A recipe applied to module names. ``module_class`` is the torch class name if known
    (e.g. ``Linear``, ``Embedding``); ``fused_param`` marks a fused 3-D expert parameter such as
    ``mlp.experts.gate_up_proj`` (ModelOpt names its quantizer ``<param>_weight_quantizer``)."""

    name: str
    precision: Precision
    group_size: int | None
    #: The activation side of the quantized modules (None: the recipe does not say).
    activation: Activation | None = None
    #: The tool turns fused 3-D expert parameters into per-expert ``Linear`` modules named like
    #: the checkpoint's per-expert weights before it quantizes (llm-compressor 0.14 ``oneshot``
    #: linearises every transformers fused-experts module, ``modeling/moe/linearize.py``).
    linearizes_fused_experts: bool = False
    #: ``intent`` gives every name of one ``index_key`` (layer and expert indices masked) the
    #: same answer, so callers may ask once per name template (or with the template itself).
    index_free: bool = False

    @abstractmethod
    def intent(
        self, module_name: str, *, module_class: str | None = None, fused_param: bool = False
    ) -> Intent:
        """Return the precision this recipe gives ``module_name`` and the rule that decided."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (kind, name, patterns) for reports and plan files."""


def unknown_name_error(kind: str, name: str, valid: list[str]) -> UsageError:
    """A usage error for an unknown qformat/scheme that lists the valid names."""
    return UsageError(f"unknown {kind} {name!r}", hint=f"use one of: {', '.join(sorted(valid))}")


def flatten(items: list[Any]) -> list[str]:
    """Flatten nested pattern lists (YAML anchors splice lists into lists)."""
    out: list[str] = []
    for item in items:
        out.extend(flatten(item) if isinstance(item, list) else [item])
    return out
