"""What the gate needs of the source checkpoint: sizes, original layer shapes and tensor names.

The source and the export are independent until their layer tables meet, so for large
checkpoints the source is summarised in a forked child (``forked.start``) while the calling
process reads the export.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ptq_validators import forked
from ptq_validators.checkpoint import Checkpoint, Documents
from ptq_validators.layers import build_layer_table, essential_names


@dataclass(frozen=True)
class SourceSummary:
    """Sizes, original layer shapes and tensor names of the source checkpoint."""

    weight_bytes: int
    parameters: int
    shapes: dict[str, tuple[int, ...]]
    tensor_names: frozenset[str]
    essential_names: frozenset[str]


def summarize(path: str) -> SourceSummary:
    """Read the source's headers and build its layer table, keeping only what the gate uses."""
    checkpoint = Checkpoint.open(path)
    table = build_layer_table(checkpoint)
    return SourceSummary(
        checkpoint.weight_bytes,
        table.parameters,
        table.shapes(),
        frozenset(checkpoint.tensors),
        frozenset(essential_names(table)),
    )


def start_summary(source: Documents) -> Callable[[], SourceSummary]:
    """Start summarising ``source`` (in a forked child when it is large); the returned callable
    waits for the summary. Errors of the source surface from that call."""
    weight_bytes = sum(source.source.size(f) for f in source.files if f.endswith(".safetensors"))
    return forked.start(lambda: summarize(source.source.root), data_bytes=weight_bytes)
