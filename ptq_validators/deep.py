"""``--deep``: read every block/group scale in full and sample every weight, shard by shard, in
bounded chunks, counting NaN/Inf values. Packed 4-bit codes have no NaN encoding and are not
read. Memory stays at one chunk whatever the checkpoint size."""

from __future__ import annotations

from collections.abc import Callable

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.formats.roles import BLOCK_SCALE_ROLES, E8M0_SCALE_ROLES, SAMPLED_WEIGHT_ROLES
from ptq_validators.io.safetensors import TensorInfo
from ptq_validators.layers import LayerTable
from ptq_validators.values import non_finite_count

CHUNK_BYTES = 4 << 20
SAMPLE_WINDOWS = 4
WINDOW_BYTES = 64 << 10
_CHECKABLE = frozenset({"F32", "F16", "BF16", "F8_E4M3", "F8_E8M0"})
Progress = Callable[[int, int, str], None]


def _targets(table: LayerTable) -> list[tuple[TensorInfo, str, bool]]:
    """(tensor, dtype to judge it as, read in full?) for every scale and weight worth reading."""
    targets = []
    for layer in table.layers:
        for role, info in layer.tensors.items():
            dtype = "F8_E8M0" if info.dtype == "U8" and role in E8M0_SCALE_ROLES else info.dtype
            if dtype not in _CHECKABLE:
                continue
            if role in SAMPLED_WEIGHT_ROLES:
                targets.append((info, dtype, False))
            elif role in BLOCK_SCALE_ROLES and info.numel > 1:
                targets.append((info, dtype, True))
    return targets


def _windows(info: TensorInfo) -> list[tuple[int, int]]:
    """Evenly spaced windows over a large tensor, aligned to 4 bytes (every dtype divides it)."""
    step = (info.nbytes - WINDOW_BYTES) // (SAMPLE_WINDOWS - 1) // 4 * 4
    return [(info.begin + i * step, WINDOW_BYTES) for i in range(SAMPLE_WINDOWS)]


def _chunks(info: TensorInfo) -> list[tuple[int, int]]:
    return [(info.begin + o, min(CHUNK_BYTES, info.nbytes - o)) for o in range(0, info.nbytes, CHUNK_BYTES)]


def scan_deep(
    checkpoint: Checkpoint, table: LayerTable, progress: Progress | None = None
) -> tuple[list[str], int]:
    """Findings (one line per tensor with NaN/Inf) and the number of tensors read."""
    by_file: dict[str, list[tuple[TensorInfo, str, bool]]] = {}
    for target in _targets(table):
        by_file.setdefault(checkpoint.tensor_file[target[0].name], []).append(target)
    findings: list[str] = []
    scanned = 0
    for done, (file, targets) in enumerate(sorted(by_file.items()), 1):
        base = checkpoint.headers[file].data_offset
        for info, dtype, full in sorted(targets, key=lambda t: t[0].begin):
            full = full or info.nbytes <= SAMPLE_WINDOWS * WINDOW_BYTES
            bad = 0
            for offset, length in _chunks(info) if full else _windows(info):
                (data,) = checkpoint.source.read_ranges(file, [(base + offset, length)])
                bad += non_finite_count(dtype, data)
            scanned += 1
            if bad:
                what = "values" if full else "sampled values"
                findings.append(f"{info.name}: {bad} NaN/Inf {what} ({info.dtype})")
        if progress is not None:
            progress(done, len(by_file), file)
    return findings, scanned
