"""What the gate needs of the source checkpoint: sizes, original layer shapes and tensor names.

The gate keeps this summary and drops the source's layer table, so only one full table (the
export's) is alive while the checks run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.layers import build_layer_table, essential_names


@dataclass(frozen=True)
class SourceSummary:
    """Sizes, original layer shapes and tensor names of the source checkpoint."""

    weight_bytes: int
    parameters: int
    shapes: dict[str, tuple[int, ...]]
    tensor_names: frozenset[str]
    essential_names: frozenset[str]


def summarize(source: Checkpoint) -> SourceSummary:
    """Build the layer table of the already opened ``source`` and keep only what the gate uses."""
    table = build_layer_table(source)
    return SourceSummary(
        source.weight_bytes,
        table.parameters,
        table.shapes(),
        frozenset(source.tensors),
        frozenset(essential_names(table)),
    )
