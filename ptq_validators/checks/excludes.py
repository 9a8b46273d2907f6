"""Exclude-list hygiene: each exclude / ignore entry is matched (with the family's own
semantics) against the modules the checkpoint stores. An entry that matches nothing is a typo
or a stale name (warning); one that matches quantized modules contradicts the tensors; one that
swallows most of the model (``language_model*``) makes engines treat quantized layers as BF16."""

from __future__ import annotations

import operator
from itertools import compress
from typing import Any

from ptq_validators.checks.base import FAIL, PASS, SKIP, WARN, CheckResult
from ptq_validators.layers import KIND_OF, LayerKind, LayerTable
from ptq_validators.model_config import tied_embeddings

OVER_BROAD_FRACTION = 0.8
TITLE = "Exclude-list hygiene"


def check_exclude_hygiene(table: LayerTable, config: dict[str, Any]) -> CheckResult:
    declaration = table.declaration
    patterns = declaration.exclusion_patterns()
    if not patterns:
        return CheckResult("excludes", TITLE, SKIP, "the metadata has no exclude list")
    layers, counts = table.layers, table.kind_counts()
    # Names that differ only in indices share one answer for an entry that cannot tell indices
    # apart in its family's syntax (``pattern_index_free``): each (name template, class) is
    # asked once, with its first name, and weighed by its layers' count.
    shapes: dict[tuple[str, str], list[LayerKind]] = {}
    for kind in counts:  # in order of first appearance: the shapes' order in a pass over names
        shapes.setdefault((kind.template, kind.module_class), []).append(kind)
    # A shape is asked with its first name: its first kind's first layer (found by a scan at C
    # speed for each shape, where its template has an index component).
    first = {
        kinds[0]: table.names[table.kinds.index(kinds[0])] if "#" in kinds[0].template else kinds[0].template
        for kinds in shapes.values()
    }
    rank = {kind: i for i, kinds in enumerate(shapes.values()) for kind in kinds}
    quantized_kinds = {kind for kind in counts if kind.stored.precision.is_quantized}
    failures, warnings = [], []
    for pattern in patterns:
        if declaration.pattern_index_free(pattern):
            hit = [
                kind
                for (_, cls), kinds in shapes.items()
                if declaration.pattern_matches(pattern, first[kinds[0]], cls)
                for kind in kinds
            ]
            hits = sum(map(counts.__getitem__, hit))
            quantized = sum(counts[kind] for kind in hit if kind in quantized_kinds)
            flagged = table.layers_of(quantized_kinds.intersection(hit)) if quantized else []
        else:
            # Asked name by name (the pattern can tell indices apart), at C speed.
            classes = map(_CLASS, table.kinds)
            matches = list(declaration.matching(pattern, table.names, classes))
            hits = sum(matches)
            # Only the hits (mostly a few layers) are told quantized or not.
            hit_layers = list(compress(layers, matches)) if hits else []
            flagged = list(compress(hit_layers, map(quantized_kinds.__contains__, map(KIND_OF, hit_layers))))
            quantized = len(flagged)
        if quantized:
            # Hits in the order of their shapes, each shape's in name order.
            named = [layer.name for layer in sorted(flagged, key=lambda layer: rank[layer.kind])[:5]]
            failures.append(f"{pattern!r} matches {quantized} quantized modules: " + ", ".join(named))
        elif layers and hits >= OVER_BROAD_FRACTION * len(layers):
            failures.append(
                f"{pattern!r} matches {hits} of {len(layers)} modules: it covers most of the model"
            )
        elif not hits and not any(declaration.pattern_matches(pattern, p) for p in table.modules if p):
            # Modules without a linear weight (attention blocks, MoE containers) are legal targets too.
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


_CLASS = operator.attrgetter("module_class")
