"""What the gate needs of the source checkpoint: sizes, original layer shapes and tensor names.

Taken from the source's layer kinds without building its layer table (no row objects, no name
sort), so only one table (the export's) is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.layers import essential_names, layer_kinds


@dataclass(frozen=True)
class SourceSummary:
    """Sizes, original layer shapes and tensor names of the source checkpoint."""

    weight_bytes: int
    parameters: int
    shapes: dict[str, tuple[int, ...]]
    tensor_names: frozenset[str]
    essential_names: frozenset[str]


def summarize(source: Checkpoint) -> SourceSummary:
    """Find the layer kinds of the already opened ``source`` and keep only what the gate uses."""
    found = layer_kinds(source)
    return SourceSummary(
        source.weight_bytes,
        found.parameters(),
        {name: kind.stored.shape for name, kind in found.kinds.items()},
        frozenset(source.tensors),
        frozenset(essential_names(found.modules)),
    )
