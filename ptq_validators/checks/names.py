"""Tensor names against the source: with quantization tensors set aside, the export must store
the source's names (engines map weights by name: ``model.language_model.*`` vs ``model.*`` is a
load failure), and nothing outside the format's vocabulary (``*_amax``, ``*_quantizer.*``,
``*.weight_bf16`` are leftovers that no loader expects)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from itertools import compress, filterfalse

from ptq_validators.checks.base import FAIL, PASS, CheckResult
from ptq_validators.formats.roles import KNOWN_ROLES, PACKED_ANCHORS, QUANTIZATION_ROLES
from ptq_validators.layers import LayerTable
from ptq_validators.source_summary import SourceSummary
from ptq_validators.wording import plural

TITLE = "Tensor names vs source"


def compare_names(
    table: LayerTable, source_names: frozenset[str], essential: Sequence[str], others: Sequence[str]
) -> tuple[int, list[str], list[str], list[str]]:
    """The export's source-comparable names against the source's (``source_names``: all of
    them; ``essential``: those the export must keep, ``others``: the rest, each in the source's
    table order): how many match, those not in the source (renamed or added), the essential
    source names the export lacks (dropped), and the export's tensors outside any vocabulary
    (foreign); lists sorted."""
    grouping = table.grouping
    names, roles = grouping.held()
    holds = grouping.held_names().__contains__
    # Each source name is looked up in the export once, in table order (names near each other
    # in memory; set order would cost half as much again), and only the export's names of
    # roles comparable with the source the other way: all at C speed.
    kept = list(map(holds, essential))
    matched = kept.count(True) + sum(map(holds, others))
    comparable = {
        role: role not in QUANTIZATION_ROLES or role in PACKED_ANCHORS for role in grouping.role_set()
    }
    picked = list(map(comparable.__getitem__, roles))
    candidates, candidate_roles = list(compress(names, picked)), list(compress(roles, picked))
    absent = list(map(operator.not_, map(source_names.__contains__, candidates)))
    bases: set[str] = set()  # comparable names besides the source's own
    foreign: list[str] = []
    for name, role in zip(compress(candidates, absent), compress(candidate_roles, absent), strict=True):
        if role in PACKED_ANCHORS:  # the module is the name less "." or "_" and the role
            bases.add(name[: -len(role) - 1] + PACKED_ANCHORS[role])
        elif role not in KNOWN_ROLES or "quantizer" in name or role.endswith("_amax"):
            foreign.append(name)
        else:
            bases.add(name)
    matched += sum(1 for name in bases if name in source_names and not holds(name))
    renamed = sorted(name for name in bases if name not in source_names)
    lacking = compress(essential, map(operator.not_, kept))
    dropped = sorted(filterfalse(bases.__contains__, lacking))
    return matched, renamed, dropped, sorted(foreign)


def check_names(table: LayerTable, source: SourceSummary, *, tied: bool) -> CheckResult:
    """The export's names against the ``source``'s (its ``essential_names`` must be kept)."""
    matched, renamed, dropped, foreign = compare_names(
        table, source.tensor_names, source.essential_names, source.other_names
    )
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
        else f"{matched} names match the source"
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
