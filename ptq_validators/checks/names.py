"""Tensor names against the source: with quantization tensors set aside, the export must store
the source's names (engines map weights by name: ``model.language_model.*`` vs ``model.*`` is a
load failure), and nothing outside the format's vocabulary (``*_amax``, ``*_quantizer.*``,
``*.weight_bf16`` are leftovers that no loader expects)."""

from __future__ import annotations

from ptq_validators.checks.base import FAIL, PASS, CheckResult
from ptq_validators.formats.roles import KNOWN_ROLES, PACKED_ANCHORS, QUANTIZATION_ROLES
from ptq_validators.layers import LayerTable

TITLE = "Tensor names vs source"


def _base_names(table: LayerTable, source_names: set[str]) -> tuple[set[str], list[str]]:
    """The source-comparable names of the export, and the tensors outside any vocabulary."""
    bases: set[str] = set()
    foreign: list[str] = []
    for module_name, module in table.modules.items():
        for role, info in module.tensors.items():
            if info.name in source_names:
                bases.add(info.name)
            elif role in PACKED_ANCHORS:
                bases.add(module_name + PACKED_ANCHORS[role])
            elif role in QUANTIZATION_ROLES:
                continue
            elif role not in KNOWN_ROLES or "quantizer" in info.name or role.endswith("_amax"):
                foreign.append(info.name)
            else:
                bases.add(info.name)
    return bases, sorted(foreign)


def check_names(
    table: LayerTable, source_names: frozenset[str], source_essential: frozenset[str], *, tied: bool
) -> CheckResult:
    """``source_names``: every tensor of the source; ``source_essential``: those the export
    must keep (``essential_names`` of the source)."""
    bases, foreign = _base_names(table, source_names)
    renamed = sorted(bases - source_names)
    dropped = sorted(source_essential - bases)
    if tied:
        dropped = [n for n in dropped if not n.endswith("lm_head.weight")]
    details = [f"{name}: suffix outside the format's vocabulary (quantizer leftover?)" for name in foreign]
    details += [f"{name}: not in the source (renamed or added)" for name in renamed if name not in foreign]
    details += [f"{name}: in the source, missing from the export" for name in dropped]
    summary = (
        f"{len(foreign)} foreign suffixes, {len(renamed)} renamed/added, {len(dropped)} dropped"
        if details
        else f"{len(bases)} names match the source"
    )
    return CheckResult(
        "names",
        TITLE,
        FAIL if details else PASS,
        summary,
        measured={"foreign": len(foreign), "renamed": len(renamed), "dropped": len(dropped)},
        details=details,
    )
