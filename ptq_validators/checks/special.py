"""Special modules engines treat differently: MoE routers (kept in high precision), MTP / draft
layers (must be declared excluded when stored in BF16), and tied embeddings (a separate
``lm_head`` must exist exactly when the config says the embeddings are not tied)."""

from __future__ import annotations

from typing import Any

from ptq_validators.checks.base import FAIL, PASS, CheckResult
from ptq_validators.checks.coverage import named_layers
from ptq_validators.layers import LayerKind, LayerTable
from ptq_validators.model_config import expert_count, tie_setting
from ptq_validators.taxonomy import LayerGroup

TITLE = "Routers, MTP layers, tied embeddings"


def check_special_modules(table: LayerTable, config: dict[str, Any]) -> CheckResult:
    problems = []
    experts = expert_count(config)
    # Both findings follow from a layer's kind (group, stored shape and format, declaration,
    # and the name's leaf, which its template keeps): judged per kind, named per layer.
    findings = {kind: _findings(kind, experts) for kind in table.kind_counts()}
    for layer in table.layers_of({kind for kind, found in findings.items() if found != (False, False)}):
        router, mtp = findings[layer.kind]
        if router:
            problems.append(
                f"{layer.name}: MoE router stored {layer.precision.value}; routers must "
                "stay in high precision"
            )
        if mtp:
            problems.append(
                f"{layer.name}: MTP layer stored {layer.precision.value} but not declared "
                f"excluded ({layer.declared.rule}); engines will load it as quantized"
            )
    tied = tie_setting(config)
    heads = [name for name, _ in named_layers(table, {k for k in findings if k.group is LayerGroup.LM_HEAD})]
    embeds = any(kind.group is LayerGroup.EMBED for kind in findings)
    if tied is True and heads:
        problems.append(f"tie_word_embeddings is true but {heads[0]} is stored separately")
    if tied is False and embeds and not heads:
        problems.append("tie_word_embeddings is false but no lm_head weight is stored")
    summary = (
        f"{len(problems)} problems"
        if problems
        else (
            f"routers unquantized, MTP layers excluded, lm_head {'tied' if tied else 'stored'} as configured"
        )
    )
    return CheckResult(
        "special",
        TITLE,
        FAIL if problems else PASS,
        summary,
        measured=len(problems),
        expected=0,
        details=problems,
    )


def _findings(kind: LayerKind, experts: int | None) -> tuple[bool, bool]:
    """(a quantized MoE router, an MTP layer stored in float but declared quantized)."""
    shape, precision = kind.stored.shape, kind.stored.precision
    is_router = kind.group is LayerGroup.ROUTER or (
        experts is not None
        and kind.group is LayerGroup.MLP
        and len(shape) == 2
        and shape[0] == experts
        and kind.template.rpartition(".")[2] in ("gate", "router")
    )
    mtp = kind.group is LayerGroup.MTP and not precision.is_quantized and kind.declared.precision is not None
    return is_router and precision.is_quantized, mtp
