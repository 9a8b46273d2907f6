"""Exclude-list hygiene: each exclude / ignore entry is matched (with the family's own
semantics) against the modules the checkpoint stores. An entry that matches nothing is a typo
or a stale name (warning); one that matches quantized modules contradicts the tensors; one that
swallows most of the model (``language_model*``) makes engines treat quantized layers as BF16."""

from __future__ import annotations

from typing import Any

from ptq_validators.checks.base import FAIL, PASS, SKIP, WARN, CheckResult
from ptq_validators.globs import index_free
from ptq_validators.layers import LayerTable
from ptq_validators.model_config import tied_embeddings

OVER_BROAD_FRACTION = 0.8
TITLE = "Exclude-list hygiene"


def check_exclude_hygiene(table: LayerTable, config: dict[str, Any]) -> CheckResult:
    declaration = table.declaration
    patterns = declaration.exclusion_patterns()
    if not patterns:
        return CheckResult("excludes", TITLE, SKIP, "the metadata has no exclude list")
    modules = table.by_name()
    # Modules without a linear weight (attention blocks, MoE containers) are legal targets too.
    prefixes = {name for name in table.modules if name}
    # Names that differ only in indices share one answer for index-free patterns: ask once per
    # (name shape, class) and expand.
    shapes: dict[tuple[str, str], list[str]] = {}
    for name, layer in modules.items():
        kind = layer.kind
        shapes.setdefault((kind.template, kind.module_class), []).append(name)
    failures, warnings = [], []
    for pattern in patterns:
        if index_free([pattern]):
            hits = [
                name
                for (key, cls), names in shapes.items()
                if declaration.pattern_matches(pattern, names[0], cls)
                for name in names
            ]
        else:
            hits = [
                name
                for (key, cls), names in shapes.items()
                for name in names
                if declaration.pattern_matches(pattern, name, cls)
            ]
        quantized = [name for name in hits if modules[name].precision.is_quantized]
        if quantized:
            failures.append(
                f"{pattern!r} matches {len(quantized)} quantized modules: " + ", ".join(quantized[:5])
            )
        elif modules and len(hits) >= OVER_BROAD_FRACTION * len(modules):
            failures.append(
                f"{pattern!r} matches {len(hits)} of {len(modules)} modules: it covers most of the model"
            )
        elif not hits and not any(declaration.pattern_matches(pattern, p) for p in prefixes):
            if tied_embeddings(config) and declaration.pattern_matches(pattern, "lm_head"):
                continue  # the tied head has no tensor of its own
            warnings.append(
                f"{pattern!r} matches nothing in this checkpoint (typo, stale name, or another naming scheme)"
            )
    status = FAIL if failures else WARN if warnings else PASS
    summary = (
        f"{len(failures)} blocking, {len(warnings)} unmatched of {len(patterns)} entries"
        if failures or warnings
        else f"{len(patterns)} entries, each matches unquantized modules"
    )
    return CheckResult(
        "excludes", TITLE, status, summary, measured=len(failures), expected=0, details=failures + warnings
    )
