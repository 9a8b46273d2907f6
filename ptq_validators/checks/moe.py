"""MoE completeness: every expert the config declares stores its weight and every tensor its
format requires. A never-routed expert that lost its input scale is how NaN outputs start."""

from __future__ import annotations

import re
from typing import Any

from ptq_validators.checks.base import FAIL, PASS, SKIP, CheckResult
from ptq_validators.layers import Layer, LayerTable
from ptq_validators.model_config import expert_count
from ptq_validators.wording import plural

_EXPERT = re.compile(r"^(?P<moe>.+)\.experts\.(?P<id>\d+)\.(?P<proj>[^.]+)$")
TITLE = "MoE expert completeness"


def check_moe_completeness(table: LayerTable, config: dict[str, Any]) -> CheckResult:
    """Per MoE layer and projection: expert ids 0..E-1 present, each with the union of the
    tensors its siblings carry and the ones its declared format requires."""
    declared_experts = expert_count(config)
    per_moe: dict[tuple[str, str], dict[int, Layer]] = {}
    fused: list[Layer] = []
    for layer in table.layers:
        match = _EXPERT.match(layer.name)
        if match:
            per_moe.setdefault((match["moe"], match["proj"]), {})[int(match["id"])] = layer
        elif layer.fused and layer.group.value == "experts":
            fused.append(layer)
    if not per_moe and not fused:
        return CheckResult("moe", TITLE, SKIP, "no MoE experts")

    details: list[str] = []
    for (moe, proj), experts in sorted(per_moe.items()):
        ids = range(declared_experts) if declared_experts else range(max(experts) + 1)
        absent = [i for i in ids if i not in experts]
        if absent:
            details.append(f"{moe}.experts.*.{proj}: expert ids {_ids(absent)} are missing")
        required = set().union(*(set(e.tensors) for e in experts.values()))
        required |= set().union(
            *(e.declared.required_roles for e in experts.values() if e.precision.is_quantized)
        )
        required.discard("bias")
        lacking: dict[str, list[int]] = {}
        for expert_id, expert in sorted(experts.items()):
            for role in sorted(required - set(expert.tensors)):
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
