"""Tensor names against the source: with quantization tensors set aside, the export must store
the source's names (engines map weights by name: ``model.language_model.*`` vs ``model.*`` is a
load failure), and nothing outside the format's vocabulary (``*_amax``, ``*_quantizer.*``,
``*.weight_bf16`` are leftovers that no loader expects)."""

from __future__ import annotations

import operator
from itertools import compress, filterfalse

from ptq_validators.checks.base import FAIL, PASS, CheckResult
from ptq_validators.formats.roles import KNOWN_ROLES, PACKED_ANCHORS, QUANTIZATION_ROLES
from ptq_validators.layers import LayerTable
from ptq_validators.source_summary import SourceSummary
from ptq_validators.wording import plural

TITLE = "Tensor names vs source"


def compare_names(table: LayerTable, source: SourceSummary) -> tuple[int, list[str], list[str], list[str]]:
    """The export's source-comparable names against the ``source``'s (its ``essential_names``
    must be kept): how many source names match, the export's names not in the source (renamed
    or added), the essential source names the export lacks (dropped), and the export's tensors
    outside any vocabulary (foreign); lists sorted."""
    grouping = table.grouping
    names, roles = grouping.held()
    essential, others = source.essential_names, source.other_names
    held_roles = grouping.role_set()
    comparable = {role: role not in QUANTIZATION_ROLES or role in PACKED_ANCHORS for role in held_roles}
    picked = list(map(comparable.__getitem__, roles))
    candidates, candidate_roles = list(compress(names, picked)), list(compress(roles, picked))
    # Each export name of a role comparable with the source is looked up once, at C speed. The
    # candidates are distinct names the export holds: when as many of them are essential source
    # names as the source has, every essential name is held, and none need be looked up in the
    # export (the lookups of the larger table, in another order, cost twice as much).
    in_essential = list(map(source.essential_set.__contains__, candidates))
    if in_essential.count(True) == len(essential):
        kept: list[bool] | None = None
        matched = len(essential)
    else:
        kept = list(map(grouping.held_names().__contains__, essential))
        matched = kept.count(True)
    # A name's role is its last component on both sides here: an export that stores no tensor
    # of the other names' roles holds none of them, and they need not be looked up.
    if source.other_roles is None or not source.other_roles.isdisjoint(held_roles):
        matched += sum(map(grouping.held_names().__contains__, others))
    bases: set[str] = set()  # comparable names besides the source's own
    foreign: list[str] = []
    outside = compress(range(len(candidates)), map(operator.not_, in_essential))
    for at in outside:
        name, role = candidates[at], candidate_roles[at]
        if name in source.other_set:
            continue
        if role in PACKED_ANCHORS:  # the module is the name less "." or "_" and the role
            bases.add(name[: -len(role) - 1] + PACKED_ANCHORS[role])
        elif role not in KNOWN_ROLES or "quantizer" in name or role.endswith("_amax"):
            foreign.append(name)
        else:
            bases.add(name)
    known = source.tensor_names if bases else frozenset()
    matched += sum(1 for name in bases if name in known and name not in grouping.held_names())
    renamed = sorted(name for name in bases if name not in known)
    lacking = compress(essential, map(operator.not_, kept)) if kept is not None else ()
    dropped = sorted(filterfalse(bases.__contains__, lacking))
    return matched, renamed, dropped, sorted(foreign)


def check_names(table: LayerTable, source: SourceSummary, *, tied: bool) -> CheckResult:
    """The export's names against the ``source``'s (its ``essential_names`` must be kept)."""
    matched, renamed, dropped, foreign = compare_names(table, source)
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
