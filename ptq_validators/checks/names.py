"""Tensor names against the source: with quantization tensors set aside, the export must store
the source's names (engines map weights by name: ``model.language_model.*`` vs ``model.*`` is a
load failure), and nothing outside the format's vocabulary (``*_amax``, ``*_quantizer.*``,
``*.weight_bf16`` are leftovers that no loader expects)."""

from __future__ import annotations

import operator
from itertools import compress

from ptq_validators.checks.base import FAIL, PASS, CheckResult
from ptq_validators.formats.roles import KNOWN_ROLES, PACKED_ANCHORS, QUANTIZATION_ROLES
from ptq_validators.layers import LayerTable
from ptq_validators.wording import plural

TITLE = "Tensor names vs source"


def _base_names(table: LayerTable, source_names: frozenset[str]) -> tuple[set[str], list[str]]:
    """The source-comparable names of the export, and the tensors outside any vocabulary."""
    names, roles = map(list, table.grouping.held())
    # Most tensors are the source's own or quantization tensors: both sorted out a list at a
    # time in C; the few left are looked at one by one.
    in_source = list(map(source_names.__contains__, names))
    bases = set(compress(names, in_source))
    others = list(map(operator.not_, in_source))
    left = [
        (name, role)
        for name, role in zip(compress(names, others), compress(roles, others), strict=True)
        if role not in QUANTIZATION_ROLES or role in PACKED_ANCHORS
    ]
    foreign: list[str] = []
    for name, role in left:
        if role in PACKED_ANCHORS:  # the module is the name less "." or "_" and the role
            bases.add(name[: -len(role) - 1] + PACKED_ANCHORS[role])
        elif role not in KNOWN_ROLES or "quantizer" in name or role.endswith("_amax"):
            foreign.append(name)
        else:
            bases.add(name)
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
    prefixes, renamed_left, dropped_left = _renamed_prefixes(renamed, dropped)
    details += [
        f"{old}* → {new}* ({plural(count, 'tensor')} renamed: engines map weights by name)"
        for (old, new), count in prefixes.items()
    ]
    details += [
        f"{name}: not in the source (renamed or added)" for name in renamed_left if name not in foreign
    ]
    details += [f"{name}: in the source, missing from the export" for name in dropped_left]
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


def _renamed_prefixes(
    renamed: list[str], dropped: list[str]
) -> tuple[dict[tuple[str, str], int], list[str], list[str]]:
    """Pairs of a dropped source name and a renamed export name that differ only by a prefix
    (``model.layers.0.x`` → ``model.language_model.layers.0.x``), counted per prefix pair; and
    the names no pair explains."""
    missing = set(dropped)
    pairs: dict[tuple[str, str], int] = {}
    explained: set[str] = set()
    for name in renamed:
        parts = name.split(".")
        match = next(
            (
                (kept, cut)
                for cut in range(1, len(parts))
                for kept in range(cut)
                if ".".join(parts[:kept] + parts[cut:]) in missing
            ),
            None,
        )
        if match is None:
            continue
        kept, cut = match
        old = ".".join(parts[:kept] + parts[cut:])
        missing.discard(old)
        explained.add(name)
        key = (".".join(parts[:kept]) + "." if kept else "", ".".join(parts[:cut]) + ".")
        pairs[key] = pairs.get(key, 0) + 1
    return pairs, [n for n in renamed if n not in explained], [n for n in dropped if n in missing]
