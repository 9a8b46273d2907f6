"""Layer precision and coverage checks over a layer table (pure functions)."""

from __future__ import annotations

from collections import Counter

from ptq_validators import layers as lt
from ptq_validators.checks.base import FAIL, PASS, SKIP, WARN, CheckResult
from ptq_validators.layers import Layer, LayerTable
from ptq_validators.precision import Precision, describe_counts
from ptq_validators.recipes import Intent
from ptq_validators.taxonomy import LayerGroup

# Groups whose zero coverage blocks the gate when a recipe targets them; elsewhere (lm_head,
# routers, vision ...) a recipe that would quantize them but an export that did not is a warning.
CORE_GROUPS = frozenset({LayerGroup.ATTENTION, LayerGroup.MLP, LayerGroup.EXPERTS})
_STATUS_TEXT = {
    lt.UNEXPECTED_UNQUANTIZED: "unexpected unquantized",
    lt.QUANTIZED_BUT_EXCLUDED: "quantized but excluded",
    lt.DECLARATION_MISMATCH: "declaration mismatch",
    lt.FAKE_QUANT: "fake quant (float weight beside scales)",
    lt.UNRECOGNIZED: "unrecognized layout",
}


def check_precision(table: LayerTable) -> CheckResult:
    """Counts per precision; structural problems in stored layouts are blocking."""
    problems = [f"{layer.name}: {problem}" for layer in table.layers for problem in layer.stored.problems]
    status = FAIL if problems else PASS
    summary = describe_counts(table.precision_counts()) or "no linear layers"
    return CheckResult(
        "layer_precision",
        "Layer precision counts",
        status,
        summary,
        measured=table.precision_counts(),
        details=problems,
    )


def check_coverage(table: LayerTable) -> CheckResult:
    """Every layer is either quantized as declared or declared unquantized."""
    bad = [layer for layer in table.layers if layer.status != lt.OK]
    counts = Counter(layer.status for layer in bad)
    quantized = sum(1 for layer in table.layers if layer.precision.is_quantized)
    details = [_layer_line(layer) for layer in bad]
    if not quantized:
        details.insert(0, "no layer is stored quantized")
    status = FAIL if bad or not quantized else PASS
    summary = (
        ", ".join(f"{count} {_STATUS_TEXT[s]}" for s, count in counts.items())
        if bad
        else f"{quantized}/{len(table.layers)} layers quantized as declared"
    )
    if not quantized:
        summary = "no quantized layers" + (f"; {summary}" if bad else "")
    return CheckResult(
        "coverage",
        "Coverage vs declared metadata",
        status,
        summary,
        measured={s: counts.get(s, 0) for s in _STATUS_TEXT},
        expected=0,
        details=details,
    )


def _layer_line(layer: Layer) -> str:
    declared = layer.declared.precision.value if layer.declared.precision else "unquantized"
    return (
        f"{layer.name}: {_STATUS_TEXT.get(layer.status, layer.status)} — stored "
        f"{layer.precision.value}, declared {declared} ({layer.declared.rule})"
    )


def check_vision(table: LayerTable, *, allow: bool) -> CheckResult:
    """Vision towers and multimodal projectors must stay unquantized unless allowed."""
    groups = (LayerGroup.VISION, LayerGroup.PROJECTOR)
    members = [layer for layer in table.layers if layer.group in groups]
    carrying = [layer for layer in members if _carries_quantization(layer)]
    if not members:
        return CheckResult("vision", "Vision tower / projector", SKIP, "no vision tower or projector")
    if not carrying:
        return CheckResult(
            "vision", "Vision tower / projector", PASS, f"{len(members)} layers, none quantized"
        )
    status = WARN if allow else FAIL
    summary = f"{len(carrying)}/{len(members)} layers carry quantization tensors"
    if allow:
        summary += " (allowed by --allow-quantized-vision)"
    details = [
        f"{layer.name}: {layer.precision.value} ({', '.join(sorted(layer.tensors))})" for layer in carrying
    ]
    return CheckResult(
        "vision",
        "Vision tower / projector",
        status,
        summary,
        measured=len(carrying),
        expected=0,
        details=details,
    )


def _carries_quantization(layer: Layer) -> bool:
    return (
        layer.precision.is_quantized
        or layer.precision is Precision.FAKE_QUANT
        or any(role != "weight" and role != "bias" for role in layer.tensors)
    )


def check_head_and_embeddings(table: LayerTable) -> CheckResult:
    """A quantized lm_head or embedding is legal but many engines cannot serve it: warn."""
    members = [layer for layer in table.layers if layer.group in (LayerGroup.LM_HEAD, LayerGroup.EMBED)]
    quantized = [layer for layer in members if layer.precision.is_quantized]
    if not members:
        return CheckResult("lm_head_embed", "lm_head / embeddings", SKIP, "none stored")
    if not quantized:
        return CheckResult(
            "lm_head_embed",
            "lm_head / embeddings",
            PASS,
            ", ".join(f"{layer.name} {layer.precision.value}" for layer in members),
        )
    details = [
        f"{layer.name} is stored {layer.precision.value}: check that the serving engine "
        "supports a quantized " + layer.group.value
        for layer in quantized
    ]
    return CheckResult(
        "lm_head_embed",
        "lm_head / embeddings",
        WARN,
        f"{len(quantized)} quantized: " + ", ".join(layer.name for layer in quantized),
        details=details,
    )


def check_expectation(
    table: LayerTable, intents: dict[str, Intent], *, check_id: str, title: str, strict: bool
) -> CheckResult:
    """Compare found precision with what a recipe or plan intends, per layer and per group.

    A targeted core group (attention, mlp, experts) with zero coverage is blocking. Per-layer
    disagreements are blocking when ``strict`` (a plan built from the real module tree) and
    warnings otherwise (a recipe applied to header names only).
    """
    found = table.by_name()
    groups: dict[LayerGroup, list[int]] = {}
    mismatches: list[str] = []
    missing: list[str] = []
    for name, intent in intents.items():
        layer = found.get(name)
        if layer is None:
            missing.append(name)
            continue
        targeted, covered = groups.setdefault(layer.group, [0, 0]), None
        if intent.precision is not None:
            targeted[0] += 1
            covered = layer.precision is intent.precision and (
                not intent.group_size
                or not layer.stored.group_size
                or intent.group_size == layer.stored.group_size
            )
            targeted[1] += bool(covered)
        if intent.precision is None and layer.precision.is_quantized:
            mismatches.append(f"{name}: intended unquantized ({intent.rule}), stored {layer.precision.value}")
        elif intent.precision is not None and not covered:
            mismatches.append(
                f"{name}: intended {intent.precision.value}"
                f"{_group(intent.group_size)} ({intent.rule}), stored "
                f"{layer.precision.value}{_group(layer.stored.group_size)}"
            )
    uncovered = [g for g, (t, c) in groups.items() if t and not c]
    blocking = [g for g in uncovered if g in CORE_GROUPS]
    measured = {g.value: {"targeted": t, "covered": c} for g, (t, c) in sorted(groups.items())}
    details = [
        f"group {g.value}: targeted by the recipe but no layer is stored at the intended precision"
        for g in uncovered
    ] + mismatches
    details += [f"{name}: in the plan but not in the export" for name in missing]
    status = PASS
    if mismatches or missing or uncovered:
        status = FAIL if strict else WARN
    if blocking:
        status = FAIL
    parts = [f"{g} {m['covered']}/{m['targeted']}" for g, m in measured.items() if m["targeted"]]
    summary = ("covered " + ", ".join(parts)) if parts else "the recipe targets no stored layer"
    if mismatches:
        summary += f"; {len(mismatches)} layers differ"
    return CheckResult(check_id, title, status, summary, measured=measured, details=details)


def _group(size: int | None) -> str:
    return f" g{size}" if size else ""


def skipped(check_id: str, title: str, reason: str) -> CheckResult:
    return CheckResult(check_id, title, SKIP, reason)
