"""What the gate needs of the source checkpoint: sizes, original layer shapes and tensor names.

Read from the source's layers without building its layer table (no kinds where the source
declares every module alike, no row objects, no name sort): only the export's table is built.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.layers import essential_names, original_layers


@dataclass(frozen=True)
class SourceSummary:
    """Sizes, original layer shapes and tensor names of the source checkpoint."""

    weight_bytes: int
    parameters: int
    shapes: dict[str, tuple[int, ...]]
    tensor_names: frozenset[str]
    essential_names: Collection[str]  # the names the export must keep (gone through once)


def summarize(source: Checkpoint) -> SourceSummary:
    """Read what the gate uses from the already opened ``source``'s layers."""
    found = original_layers(source)
    names = frozenset(found.grouping.tensors)
    return SourceSummary(
        source.weight_bytes,
        found.parameters,
        found.shapes,
        names,
        essential_names(found.grouping, names),
    )
