"""MoE completeness: every expert the config declares stores its weight and every tensor its
format requires. A never-routed expert that lost its input scale is how NaN outputs start."""

from __future__ import annotations

import re
from typing import Any

from ptq_validators.checks.base import FAIL, PASS, SKIP, CheckResult
from ptq_validators.layers import Layer, LayerTable
from ptq_validators.model_config import expert_count
from ptq_validators.wording import plural

# A per-expert weight's name template: <moe>.experts.<id>.<projection>, the id masked.
_EXPERT_TEMPLATE = re.compile(r"^.+\.experts\.#\.[^.]+$")
TITLE = "MoE expert completeness"


def check_moe_completeness(table: LayerTable, config: dict[str, Any]) -> CheckResult:
    """Per MoE layer and projection: expert ids 0..E-1 present, each with the union of the
    tensors its siblings carry and the ones its declared format requires."""
    declared_experts = expert_count(config)
    kinds = table.kind_counts()
    # A name is a per-expert weight exactly when its template is (the expert id is an index
    # component, masked as "#"); only those layers are split into MoE, id and projection.
    expert_kinds = {kind for kind in kinds if _EXPERT_TEMPLATE.match(kind.template)}
    per_moe: dict[tuple[str, str], dict[int, Layer]] = {}
    for layer in table.layers_of(expert_kinds):
        moe, _, tail = layer.name.rpartition(".experts.")
        digits, _, proj = tail.partition(".")
        if not digits.isdecimal():  # the id the template masked, unless a name holds a "#"
            continue
        per_moe.setdefault((moe, proj), {})[int(digits)] = layer
    fused = table.layers_of(
        {kind for kind in kinds if kind not in expert_kinds and kind.fused and kind.group.value == "experts"}
    )
    if not per_moe and not fused:
        return CheckResult("moe", TITLE, SKIP, "no MoE experts")
    details: list[str] = []
    for (moe, proj), experts in sorted(per_moe.items()):
        ids = range(declared_experts) if declared_experts else range(max(experts) + 1)
        absent = [i for i in ids if i not in experts]
        if absent:
            details.append(f"{moe}.experts.*.{proj}: expert ids {_ids(absent)} are missing")
        # What an expert stores and must store follows from its kind: a set per distinct kind.
        present = {expert.kind for expert in experts.values()}
        required = set().union(*(kind.roles for kind in present))
        required |= set().union(
            *(kind.declared.required_roles for kind in present if kind.stored.precision.is_quantized)
        )
        required.discard("bias")
        missing = {kind: sorted(required.difference(kind.roles)) for kind in present}
        lacking: dict[str, list[int]] = {}
        if any(missing.values()):
            for expert_id, expert in sorted(experts.items()):
                for role in missing[expert.kind]:
                    lacking.setdefault(role, []).append(expert_id)
        details += [
            f"{moe}.experts.*.{proj}: expert ids {_ids(ids_)} lack {role}" for role, ids_ in lacking.items()
        ]
    for layer in fused:
        stored_experts = layer.stored.shape[0] if len(layer.stored.shape) == 3 else None
        if declared_experts and stored_experts != declared_experts:
            details.append(
                f"{layer.name}: stores {stored_experts} experts, the config declares {declared_experts}"
            )
    layers = len({moe for moe, _ in per_moe}) + len({f.name.rpartition(".")[0] for f in fused})
    affected = len({detail.partition(".experts")[0] for detail in details})
    summary = (
        f"{plural(len(details), 'problem')} in {affected} of {plural(layers, 'MoE layer')}"
        if details
        else f"{plural(layers, 'MoE layer')} x {declared_experts or 'all'} experts complete"
    )
    return CheckResult(
        "moe", TITLE, FAIL if details else PASS, summary, measured=len(details), expected=0, details=details
    )


def _ids(ids: list[int] | range) -> str:
    ids = list(ids)
    return str(ids) if len(ids) <= 12 else f"{ids[:12]}… ({len(ids)} in all)"
