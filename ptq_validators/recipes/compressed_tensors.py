"""llm-compressor preset schemes with compressed-tensors' matching semantics (``formats/ct_rules``):
a module is quantized when some target matches and no ignore entry does.
"""

from __future__ import annotations

from typing import Any

from ptq_validators.datafiles import load_data
from ptq_validators.formats.ct_rules import first_match, matches
from ptq_validators.precision import Activation, Precision
from ptq_validators.recipes.base import Intent, Recipe, unknown_name_error

SCHEME_FILE = "llmc_schemes.yaml"


def ignored_intent(ignore: list[str], module_name: str, module_class: str) -> Intent | None:
    """ "Left unquantized" when an ignore entry matches the module (ignore beats every target)."""
    ignored = first_match(ignore, module_name, module_class)
    return None if ignored is None else Intent(None, None, f"ignored by {ignored!r}")


class CompressedTensorsRecipe(Recipe):
    """A preset scheme applied to ``targets`` minus ``ignore``."""

    linearizes_fused_experts = True

    def __init__(
        self,
        name: str,
        *,
        precision: Precision,
        group_size: int | None,
        targets: list[str],
        ignore: list[str],
        fmt: str | None,
        activation: Activation | None = None,
    ) -> None:
        self.name = name
        self.activation = activation
        self.precision = precision
        self.group_size = group_size
        self.targets = targets
        self.ignore = ignore
        self.format = fmt

    def intent(
        self, module_name: str, *, module_class: str | None = None, fused_param: bool = False
    ) -> Intent:
        # Without a module tree, every linear-like weight is taken to be a torch Linear and
        # every embedding an Embedding: the classes llm-compressor sees for standard models.
        cls = module_class or "Linear"
        ignored = ignored_intent(self.ignore, module_name, cls)
        if ignored is not None:
            return ignored
        for pattern in self.targets:
            if matches(pattern, module_name, cls):
                if fused_param:
                    # A fused 3-D expert parameter that is still fused (an export stores it so)
                    # was not linearised: it is no Linear module and stays in high precision.
                    return Intent(None, None, f"fused parameter not reachable by {pattern!r}")
                return Intent(self.precision, self.group_size, f"targeted by {pattern!r}", self.activation)
        return Intent(None, None, "no target matches")

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "llmc-scheme",
            "name": self.name,
            "precision": self.precision.value,
            "group_size": self.group_size,
            "activation": self.activation.label if self.activation else None,
            "format": self.format,
            "targets": self.targets,
            "ignore": self.ignore,
        }


def scheme_names() -> list[str]:
    """Every preset scheme name the data file knows."""
    return sorted(load_data("recipes", SCHEME_FILE)["schemes"])


def llmc_scheme(
    name: str, *, ignore: list[str] | None = None, targets: list[str] | None = None
) -> CompressedTensorsRecipe:
    """The preset ``name`` (case-insensitive) with the given targets and ignore list."""
    data = load_data("recipes", SCHEME_FILE)
    spec = data["schemes"].get(name.upper())
    if spec is None:
        raise unknown_name_error("llm-compressor scheme", name, scheme_names())
    return CompressedTensorsRecipe(
        name.upper(),
        precision=Precision(spec["precision"]),
        group_size=spec.get("group_size"),
        targets=list(targets or data["default_targets"]),
        ignore=list(ignore or []),
        fmt=spec.get("format"),
        activation=Activation.parse(spec.get("activations", "none")),
    )
