"""Fused-group consistency: modules a serving engine fuses into one GEMM (q/k/v, gate/up, w1/w3,
MLA q_a/kv_a) must share precision and exclusion, and NVFP4 members must share their global
and input scales (TensorRT-LLM asserts it; vLLM silently takes the max). FP8 per-tensor weight
scales may differ: engines requantize to the max, so that is information only."""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain, combinations, compress, repeat
from typing import Any

from ptq_validators.checks.base import FAIL, PASS, SKIP, CheckResult
from ptq_validators.io.safetensors import INFO_NAME
from ptq_validators.layers import KIND_OF, NAME_OF, TENSORS_OF, Layer, LayerKind, LayerTable
from ptq_validators.precision import Precision

FUSED_SETS = (
    ("q_proj", "k_proj", "v_proj"),
    ("gate_proj", "up_proj"),
    ("w1", "w3"),
    ("q_a_proj", "kv_a_proj_with_mqa"),
)
# Scales that must be equal across the members of an NVFP4 group (ModelOpt and
# compressed-tensors spellings; they are reciprocals of each other, never mixed in one export).
SHARED_SCALES = ("weight_scale_2", "input_scale", "weight_global_scale", "input_global_scale")
RELATIVE_TOLERANCE = 1e-6
TITLE = "Fused groups (q/k/v, gate/up)"


_SET_OF = {leaf: i for i, names in enumerate(FUSED_SETS) for leaf in names}  # the sets are disjoint

_FEW = 8  # first members' kinds the groups are split on with one pass each

Lines = dict[tuple[str, int], list[tuple[bool, str]]]


def check_fused_groups(table: LayerTable, values: Mapping[str, Sequence[float]]) -> CheckResult:
    """``values`` holds the decoded small scale tensors by tensor name."""
    # Only layers whose leaf can be a member (the template keeps the leaf) are grouped.
    leaf_of = {
        kind: leaf for kind in table.kind_counts() if (leaf := kind.template.rpartition(".")[2]) in _SET_OF
    }
    members_of = _members(table, leaf_of)
    # The groups of one set with the same members are found by set algebra on their parents
    # and judged column by column (a few dozen member kinds, one value lookup per scale); each
    # group that adds a line is keyed by (parent, set), so sorting only those gives the lines
    # in the order of the groups in name order.
    flagged: Lines = {}
    groups = 0
    comparer = _Comparer(values)
    for fused_set, leaves in enumerate(FUSED_SETS):
        present = [leaf for leaf in leaves if leaf in members_of]
        if len(present) < 2:
            continue
        parents = [members_of[leaf][0] for leaf in present]
        if all(map(parents[0].__eq__, parents[1:])):
            # Every parent holds every member present (the usual case): its layers stand in
            # the same row of each member's column, in table order, so the groups are those rows.
            groups += len(parents[0])
            columns = [members_of[leaf][1] for leaf in present]
            for kinds, same_kinds in _by_kinds(columns, [members_of[leaf][2] for leaf in present]):
                _judge_groups(fused_set, kinds, same_kinds, comparer, flagged)
            continue
        siblings = {leaf: dict(zip(*members_of[leaf][:2], strict=True)) for leaf in present}
        for size in range(2, len(present) + 1):
            for members in combinations(present, size):
                held = set.intersection(*(set(siblings[leaf]) for leaf in members))
                for leaf in present:
                    if leaf not in members:
                        held.difference_update(siblings[leaf])
                groups += len(held)
                # In table order: the layers, their tensors and scales lie in memory about in
                # that order (random order costs several cache misses per lookup).
                order = list(filter(held.__contains__, siblings[members[0]]))
                columns = [list(map(siblings[leaf].__getitem__, order)) for leaf in members]
                for kinds, same_kinds in _by_kinds(columns, [list(map(KIND_OF, c)) for c in columns]):
                    _judge_groups(fused_set, kinds, same_kinds, comparer, flagged)
    if not groups:
        return CheckResult("fused", TITLE, SKIP, "no fused groups")
    lines = [flagged[key] for key in sorted(flagged)]
    problems = [line for group in lines for blocking, line in group if blocking]
    info = [line for group in lines for blocking, line in group if not blocking]
    # One group can break in several ways (two shared scales that disagree): count groups.
    inconsistent = sum(any(blocking for blocking, _ in group) for group in lines)
    summary = f"{inconsistent} of {groups} groups inconsistent" if problems else f"{groups} groups consistent"
    if info and not problems:
        summary += f" ({len(info)} with differing FP8 weight scales, informational)"
    return CheckResult(
        "fused",
        TITLE,
        FAIL if problems else PASS,
        summary,
        measured=inconsistent,
        expected=0,
        details=problems + info,
    )


def _members(
    table: LayerTable, leaf_of: dict[LayerKind, str]
) -> dict[str, tuple[list[str], list[Layer], list[LayerKind]]]:
    """The member layers by leaf (the table's layers of the kinds in ``leaf_of``), in table
    order, with their parent modules' names (each name less its kind's leaf, cut at C speed)
    and their kinds."""
    picked = table.of_kinds(leaf_of.keys())
    kinds = list(compress(table.kinds, picked))
    leaves = list(map(leaf_of.__getitem__, kinds))
    columns: tuple[Iterable[Any], ...] = (
        compress(table.names, picked),
        compress(table.layers, picked),
        kinds,
    )
    by_leaf: dict[str, tuple[list[Any], ...]] = {leaf: ([], [], []) for leaf in set(leaf_of.values())}
    for at, column in enumerate(columns):
        cells = map(operator.getitem, map(by_leaf.__getitem__, leaves), repeat(at))
        deque(map(list.append, cells, column), maxlen=0)
    return {
        leaf: (list(map(str.__getitem__, names, repeat(slice(None, -len(leaf) - 1)))), layers, of_layer)
        for leaf, (names, layers, of_layer) in by_leaf.items()
        if layers
    }


def _by_kinds(
    columns: list[list[Layer]], kinds: list[list[LayerKind]]
) -> Iterator[tuple[tuple[LayerKind, ...], list[list[Layer]]]]:
    """The groups (one per row of the member ``columns``, whose kinds are ``kinds``) split by
    their members' kinds."""
    firsts = dict.fromkeys(kinds[0])
    if len(firsts) <= _FEW:
        # Usually the first member's kind decides the others' (an MTP layer's experts beside
        # the decoder layers'): split on it at C speed and check that the others agree.
        parts = []
        for first in firsts:
            rows = list(map(operator.is_, kinds[0], repeat(first)))
            others = [set(compress(column, rows)) for column in kinds[1:]]
            if any(len(other) != 1 for other in others):
                break
            parts.append(((first, *(other.pop() for other in others)), rows))
        else:
            for combination, rows in parts:
                yield (
                    combination,
                    (columns if len(parts) == 1 else [list(compress(c, rows)) for c in columns]),
                )
            return
    rows_of: dict[tuple[LayerKind, ...], list[int]] = {}
    for row, combination in enumerate(zip(*kinds, strict=True)):
        rows_of.setdefault(combination, []).append(row)
    for combination, indices in rows_of.items():
        yield combination, [list(map(column.__getitem__, indices)) for column in columns]


class _Comparer:
    """Which groups' shared scales may differ, the values of a whole column compared at once."""

    def __init__(self, values: Mapping[str, Sequence[float]]) -> None:
        self.values = values
        self._nan_free: bool | None = None

    def nan_free(self) -> bool:
        # Lists compare items by identity first, so one NaN object in two members' values
        # would compare equal: where a NaN is stored, every group is compared on its own.
        if self._nan_free is None:
            self._nan_free = not math.isnan(sum(chain.from_iterable(self.values.values())))
        return self._nan_free

    def candidates(self, columns: list[list[Layer]], role: str, fused: bool) -> Iterable[int]:
        """The groups whose members' ``role`` values (``_scalars``: looked up as
        ``<layer>.<role>``) are not all the same lists. Every member stores ``role``: unless
        it is a fused parameter, that tensor is named so (its name, hashed once, is used)."""
        if fused:
            suffix = "." + role
            names = [map(operator.add, map(NAME_OF, column), repeat(suffix)) for column in columns]
        else:
            pick = operator.itemgetter(role)
            names = [map(INFO_NAME, map(pick, map(TENSORS_OF, column))) for column in columns]
        found = [list(map(self.values.get, column)) for column in names]
        first, rows = found[0], range(len(found[0]))
        if not self.nan_free():
            return rows
        differ: set[int] = set()
        for other in found[1:]:
            if other != first:
                differ.update(compress(rows, map(operator.ne, first, other)))
        return sorted(differ)


def _judge_groups(
    fused_set: int,
    kinds: tuple[LayerKind, ...],
    columns: list[list[Layer]],
    comparer: _Comparer,
    flagged: Lines,
) -> None:
    """Add the lines of the groups whose members are of ``kinds`` (member ``columns``, one
    group per row) to ``flagged``, under (parent, set)."""
    formats_differ, exclusion_differs, shared, fp8 = _judge(kinds)

    def add(row: int, blocking: bool, line: str) -> None:
        parent = columns[0][row].name.rpartition(".")[0]
        flagged.setdefault((parent, fused_set), []).append((blocking, line))

    def group(row: int) -> list[Layer]:
        return [column[row] for column in columns]

    rows = range(len(columns[0]))
    if formats_differ:
        for row in rows:
            members = group(row)
            add(
                row,
                True,
                f"{_label(members)}: members stored in different formats: "
                + ", ".join(f"{m.name.rpartition('.')[2]} {m.scheme}" for m in members)
                + " — vLLM and SGLang load them as one fused matrix of one format and refuse"
                " the checkpoint at load; quantize the group alike",
            )
        return
    if exclusion_differs:
        for row in rows:
            add(
                row,
                True,
                f"{_label(group(row))}: some members are declared excluded, others not — the serving "
                "engine fuses them into one layer that is either quantized or not, so it refuses or "
                "misreads the group; exclude all members or none",
            )
    for role in shared:
        for row in comparer.candidates(columns, role, any(kind.fused for kind in kinds)):
            members = group(row)
            scales = _scalars(members, role, comparer.values)
            # A non-finite scale is broken, not different: the scale check names it.
            if not scales or not math.isfinite(sum(scales)) or _all_equal(scales):
                continue
            if fp8:
                add(
                    row,
                    False,
                    f"{_label(members)}: FP8 weight_scale differs across members (normal: engines "
                    "requantize to the max)",
                )
            else:
                add(
                    row,
                    True,
                    f"{_label(members)}: {role} differs across members: "
                    + ", ".join(
                        f"{member.name.rpartition('.')[2]}={value:.6g}"
                        for member, value in zip(members, scales, strict=True)
                    )
                    + " — the fused GEMM takes one value: vLLM silently uses the largest"
                    " (the others' layers lose precision), TensorRT-LLM refuses to build",
                )


def _judge(kinds: tuple[LayerKind, ...]) -> tuple[bool, bool, tuple[str, ...], bool]:
    """For a group of members of ``kinds``: whether their formats differ, whether some are
    declared excluded and others not, the shared-scale roles to compare (those every member
    stores: where one lacks the role there is no value to compare), and whether these are FP8
    weight scales (a difference is informational)."""
    if len({(kind.stored.precision, kind.stored.group_size) for kind in kinds}) > 1:
        return True, False, (), False
    exclusion_differs = len({kind.declared.precision is None for kind in kinds}) > 1
    precision = kinds[0].stored.precision
    roles: tuple[str, ...]
    if precision in (Precision.NVFP4, Precision.MXFP4) or precision is Precision.INT4:
        roles, fp8 = SHARED_SCALES, False
    elif precision is Precision.FP8:
        roles, fp8 = ("weight_scale",), True
    else:
        roles, fp8 = (), False
    return False, exclusion_differs, tuple(r for r in roles if all(r in kind.roles for kind in kinds)), fp8


def _label(group: list[Layer]) -> str:
    parent = group[0].name.rpartition(".")[0]
    return f"{parent}.{{{','.join(m.name.rpartition('.')[2] for m in group)}}}"


def _scalars(group: list[Layer], role: str, values: Mapping[str, Sequence[float]]) -> list[float]:
    """The single value of ``role`` per member, in member order (empty unless every member
    has exactly one)."""
    found = []
    for member in group:
        vals = values.get(f"{member.name}.{role}")
        if vals is None or len(vals) != 1:
            return []
        found.append(vals[0])
    return found


def _all_equal(values: Sequence[float]) -> bool:
    first = values[0]
    # Exactly equal values (the usual case) are close without computing it.
    return all(v == first or math.isclose(v, first, rel_tol=RELATIVE_TOLERANCE) for v in values[1:])
