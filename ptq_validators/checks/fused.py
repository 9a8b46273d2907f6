"""Fused-group consistency: modules a serving engine fuses into one GEMM (q/k/v, gate/up, w1/w3,
MLA q_a/kv_a) must share precision and exclusion, and NVFP4 members must share their global
and input scales (TensorRT-LLM asserts it; vLLM silently takes the max). FP8 per-tensor weight
scales may differ: engines requantize to the max, so that is information only."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable

from ptq_validators.checks.base import FAIL, PASS, SKIP, CheckResult
from ptq_validators.layers import Layer, LayerKind, LayerTable
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


_KIND = operator.attrgetter("kind")
_SET_OF = {leaf: i for i, names in enumerate(FUSED_SETS) for leaf in names}  # the sets are disjoint
_MEMBERS = frozenset(_SET_OF)


def fused_groups(layers: Iterable[Layer]) -> list[list[Layer]]:
    """Groups of sibling layers an engine fuses, in name order."""
    by_set: dict[tuple[str, int], dict[str, Layer]] = {}
    for layer in layers:
        parent, _, leaf = layer.name.rpartition(".")
        fused_set = _SET_OF.get(leaf)
        if fused_set is not None:
            by_set.setdefault((parent, fused_set), {})[leaf] = layer
    groups = []
    for (_parent, fused_set), members in sorted(by_set.items()):
        if len(members) > 1:
            groups.append([members[n] for n in FUSED_SETS[fused_set] if n in members])
    return groups


def check_fused_groups(table: LayerTable, values: dict[str, list[float]]) -> CheckResult:
    """``values`` holds the decoded small scale tensors by tensor name."""
    # Only layers whose leaf can be a member (the template keeps the leaf) are grouped.
    members = {kind for kind in table.kind_counts() if kind.template.rpartition(".")[2] in _MEMBERS}
    groups = fused_groups(table.layers_of(members))
    if not groups:
        return CheckResult("fused", TITLE, SKIP, "no fused groups")
    problems: list[str] = []
    info: list[str] = []
    # A group's formats, exclusions and the scale roles to compare follow from its members'
    # kinds: judged once per distinct tuple of kinds; scale values are compared per group.
    judged: dict[tuple[LayerKind, ...], tuple[bool, bool, tuple[str, ...], bool]] = {}
    for group in groups:
        kinds = tuple(map(_KIND, group))
        verdict = judged.get(kinds)
        if verdict is None:
            verdict = judged[kinds] = _judge(kinds)
        formats_differ, exclusion_differs, shared, fp8 = verdict
        if formats_differ:
            problems.append(
                f"{_label(group)}: members stored in different formats: "
                + ", ".join(f"{m.name.rpartition('.')[2]} {m.scheme}" for m in group)
                + " — vLLM and SGLang load them as one fused matrix of one format and refuse"
                " the checkpoint at load; quantize the group alike"
            )
            continue
        if exclusion_differs:
            problems.append(
                f"{_label(group)}: some members are declared excluded, others not — the serving engine "
                "fuses them into one layer that is either quantized or not, so it refuses or "
                "misreads the group; exclude all members or none"
            )
        for role in shared:
            scales = _scalars(group, role, values)
            if scales and not _all_equal(scales):
                if fp8:
                    info.append(
                        f"{_label(group)}: FP8 weight_scale differs across members (normal: engines "
                        "requantize to the max)"
                    )
                else:
                    problems.append(
                        f"{_label(group)}: {role} differs across members: "
                        + ", ".join(
                            f"{member.name.rpartition('.')[2]}={value:.6g}"
                            for member, value in zip(group, scales, strict=True)
                        )
                        + " — the fused GEMM takes one value: vLLM silently uses the largest"
                        " (the others' layers lose precision), TensorRT-LLM refuses to build"
                    )
    summary = (
        f"{len(problems)} of {len(groups)} groups inconsistent"
        if problems
        else f"{len(groups)} groups consistent"
    )
    if info and not problems:
        summary += f" ({len(info)} with differing FP8 weight scales, informational)"
    return CheckResult(
        "fused",
        TITLE,
        FAIL if problems else PASS,
        summary,
        measured=len(problems),
        expected=0,
        details=problems + info,
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


def _scalars(group: list[Layer], role: str, values: dict[str, list[float]]) -> list[float]:
    """The single value of ``role`` per member, in member order (empty unless every member
    has exactly one)."""
    found = []
    for member in group:
        vals = values.get(f"{member.name}.{role}")
        if vals is None or len(vals) != 1:
            return []
        found.append(vals[0])
    return found


def _all_equal(values: list[float]) -> bool:
    first = values[0]
    # Exactly equal values (the usual case) are close without computing it.
    return all(v == first or math.isclose(v, first, rel_tol=RELATIVE_TOLERANCE) for v in values[1:])
