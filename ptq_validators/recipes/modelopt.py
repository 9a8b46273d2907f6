"""ModelOpt ``--qformat`` presets with ModelOpt's own matching semantics.

A preset is an ordered list of entries matched with ``fnmatch`` against quantizer names
(``model.layers.0.mlp.down_proj.weight_quantizer``); ``*`` crosses dots, the pattern is anchored
at both ends, and the last matching entry wins. Every preset starts from "all disabled" and ends
with the default-disabled list (lm_head, routers, vision towers, MTP ...), which is why a custom
enable placed after those defaults re-enables a vision tower.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ptq_validators.datafiles import load_data
from ptq_validators.formats.modelopt import algo_spec
from ptq_validators.globs import alternation, index_free, index_key
from ptq_validators.precision import Precision
from ptq_validators.recipes.base import (
    Intent,
    Recipe,
    flatten,
    unknown_name_error,
)

QFORMAT_FILE = "modelopt_qformats.yaml"


@dataclass(frozen=True)
class QuantCfgEntry:
    """One ``quant_cfg`` entry: a quantizer-name glob that enables or disables quantization.
    ``precision`` / ``group_size`` are set only where an entry carries its own format (recipe
    files may mix formats); preset entries take the recipe's."""

    pattern: str
    enable: bool
    parent_class: str | None = None
    precision: Precision | None = None
    group_size: int | None = None


class ModelOptRecipe(Recipe):
    """A ModelOpt preset (or a recipe file reduced to weight-quantizer entries)."""

    def __init__(
        self,
        name: str,
        entries: list[QuantCfgEntry],
        *,
        precision: Precision,
        group_size: int | None,
        quant_algo: str | None,
        entries_carry_precision: bool = False,
    ) -> None:
        self.name = name
        self.entries_carry_precision = entries_carry_precision
        self.entries = entries
        self.precision = precision
        self.group_size = group_size
        self.quant_algo = quant_algo
        # A recipe file mixing formats has no single quant_algo: its activation side is unknown.
        self.activation = algo_spec(quant_algo).activation if quant_algo else None
        self._matchers: dict[str | None, tuple[re.Pattern[str], list[int]]] = {}
        self.index_free = index_free(e.pattern for e in entries)

    def intent(
        self, module_name: str, *, module_class: str | None = None, fused_param: bool = False
    ) -> Intent:
        if self.index_free:
            # No entry can tell one index from another, so layer and expert indices do not
            # change the answer: ask once per name template (``index_key``).
            return self._intent_of(index_key(module_name), module_class, fused_param)
        return self._intent_of(module_name, module_class, fused_param)

    @lru_cache(maxsize=4096)  # noqa: B019 -- recipes are few and live as long as the process
    def _intent_of(self, module_name: str, module_class: str | None, fused_param: bool) -> Intent:
        quantizer = f"{module_name}{'_' if fused_param else '.'}weight_quantizer"
        regex, order = self._matcher(module_class)
        match = regex.match(quantizer)
        if match is None:
            return Intent(None, None, "no entry enables it")
        # every alternative is a named group (one letter, then its position in ``order``)
        assert match.lastgroup is not None
        decided = self.entries[order[int(match.lastgroup[1:])]]
        if not decided.enable:
            return Intent(None, None, _describe_entry(decided))
        if self.entries_carry_precision:  # an enable-only entry of unknown format decides nothing
            return Intent(
                decided.precision, decided.group_size if decided.precision else None, _describe_entry(decided)
            )
        return Intent(self.precision, self.group_size, _describe_entry(decided), self.activation)

    def _matcher(self, module_class: str | None) -> tuple[re.Pattern[str], list[int]]:
        """One regex whose alternatives are the entries in reverse order: the first alternative
        that matches is the last matching entry, which is the one ModelOpt applies."""
        matcher = self._matchers.get(module_class)
        if matcher is None:
            order = [
                i
                for i, e in reversed(list(enumerate(self.entries)))
                if e.parent_class is None or e.parent_class == module_class
            ]
            regex = alternation([self.entries[i].pattern for i in order], named=True)
            matcher = self._matchers[module_class] = (regex, order)
        return matcher

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "modelopt-qformat",
            "name": self.name,
            "quant_algo": self.quant_algo,
            "precision": self.precision.value,
            "group_size": self.group_size,
            "activation": self.activation.label if self.activation else None,
            "entries": [
                {"quantizer_name": e.pattern, "enable": e.enable, "parent_class": e.parent_class}
                for e in self.entries
            ],
        }


def _describe_entry(entry: QuantCfgEntry) -> str:
    if entry.pattern == "*" and not entry.enable and entry.parent_class is None:
        return "not enabled by the preset"  # the "disable all" every preset starts from
    verb = "enabled" if entry.enable else "disabled"
    scope = f" (parent class {entry.parent_class})" if entry.parent_class else ""
    return f"{verb} by {entry.pattern!r}{scope}"


def default_disabled_entries() -> list[QuantCfgEntry]:
    """ModelOpt's default-disabled quantizers, appended after every preset's enables."""
    data = load_data("recipes", QFORMAT_FILE)
    entries = [QuantCfgEntry(p, False) for p in data["default_disabled"]]
    entries += [QuantCfgEntry("*", False, cls) for cls in data["default_disabled_classes"]]
    return entries


def qformat_names() -> list[str]:
    """Every qformat name the data file knows, aliases included."""
    data = load_data("recipes", QFORMAT_FILE)
    return sorted([*data["qformats"], *data["aliases"]])


def modelopt_qformat(name: str) -> ModelOptRecipe:
    """The preset ``name`` (``--qformat`` spelling; legacy aliases accepted)."""
    data = load_data("recipes", QFORMAT_FILE)
    canonical = data["aliases"].get(name, name)
    spec = data["qformats"].get(canonical)
    if spec is None:
        raise unknown_name_error("ModelOpt qformat", name, qformat_names())
    entries = [QuantCfgEntry("*", False)]
    entries += [QuantCfgEntry(p, True) for p in flatten(spec["enable"])]
    entries += [QuantCfgEntry(p, False) for p in flatten(spec.get("disable", []))]
    entries += default_disabled_entries()
    return ModelOptRecipe(
        canonical,
        entries,
        precision=Precision(spec["precision"]),
        group_size=spec.get("group_size"),
        quant_algo=spec["quant_algo"],
    )
