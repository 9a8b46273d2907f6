"""What the gate needs of the source checkpoint, computed beside the export's own reading.

The source and the export are independent until their layer tables meet, and reading a large
checkpoint's headers is CPU-bound Python: on a multi-core machine a forked worker reads the
source while the calling process reads the export. Small sources are read in process, where a
fork would cost more than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from ptq_validators.checkpoint import Checkpoint, Documents
from ptq_validators.checks.names import essential_names
from ptq_validators.layers import build_layer_table

# Sources with more weight bytes than this are read in a worker process (when fork exists).
PARALLEL_THRESHOLD_BYTES = 8 << 30


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
    return SourceSummary(checkpoint.weight_bytes, table.parameters, table.shapes(),
                         frozenset(checkpoint.tensors), frozenset(essential_names(table)))


@contextmanager
def summarizer(source: Documents) -> Iterator[Callable[[], SourceSummary]]:
    """Start summarising ``source``; the yielded callable returns the summary (waiting for the
    worker if one was started). Errors of the source surface from that call."""
    weight_bytes = sum(source.source.size(f) for f in source.files if f.endswith(".safetensors"))
    if weight_bytes < PARALLEL_THRESHOLD_BYTES or "fork" not in multiprocessing.get_all_start_methods() \
            or (os.cpu_count() or 1) < 2:
        yield lambda: summarize(source.source.root)
        return
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        future = pool.submit(summarize, source.source.root)
        yield future.result
