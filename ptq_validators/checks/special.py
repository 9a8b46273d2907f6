"""Special modules engines treat differently: MoE routers (kept in high precision), MTP / draft
layers (must be declared excluded when stored in BF16), and tied embeddings (a separate
``lm_head`` must exist exactly when the config says the embeddings are not tied)."""

from __future__ import annotations

from typing import Any

from ptq_validators.checks.base import FAIL, PASS, CheckResult
from ptq_validators.layers import LayerTable
from ptq_validators.model_config import expert_count, tie_setting
from ptq_validators.taxonomy import LayerGroup

TITLE = "Routers, MTP layers, tied embeddings"


def check_special_modules(table: LayerTable, config: dict[str, Any]) -> CheckResult:
    problems = []
    experts = expert_count(config)
    for layer in table.layers:
        is_router = layer.group is LayerGroup.ROUTER or (
            experts is not None
            and layer.group is LayerGroup.MLP
            and len(layer.stored.shape) == 2
            and layer.stored.shape[0] == experts
            and layer.name.rpartition(".")[2] in ("gate", "router")
        )
        if is_router and layer.precision.is_quantized:
            problems.append(
                f"{layer.name}: MoE router stored {layer.precision.value}; routers must "
                "stay in high precision"
            )
        if (
            layer.group is LayerGroup.MTP
            and not layer.precision.is_quantized
            and layer.declared.precision is not None
        ):
            problems.append(
                f"{layer.name}: MTP layer stored {layer.precision.value} but not declared "
                f"excluded ({layer.declared.rule}); engines will load it as quantized"
            )
    tied = tie_setting(config)
    heads = [layer.name for layer in table.layers if layer.group is LayerGroup.LM_HEAD]
    embeds = [layer for layer in table.layers if layer.group is LayerGroup.EMBED]
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
