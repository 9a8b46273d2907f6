"""Helpers for the canary tests: broken copies of real exports, made at test time."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.ckpt_edit import RawTensor, copy_checkpoint, edit_tensors
from tests.conftest import FIXTURES

# One element of one scale on the active path (the first layer's down_proj, output row 0).
SCALE = "model.layers.0.mlp.down_proj.weight_scale"
BF16_BITS = {"nan": 0x7FC0, "huge": 0x7F7F}  # NaN, 3.39e38 (the largest finite BF16)


def broken_copy(tmp_path: Path, name: str, kind: str) -> Path:
    """A copy of fixture ``name`` whose ``SCALE`` starts with a NaN or a huge value."""
    target = copy_checkpoint(FIXTURES / name, tmp_path / f"{name}-{kind}")

    def edit(tensors: dict[str, RawTensor]) -> None:
        scale = tensors[SCALE]
        assert scale.dtype == "BF16", scale.dtype
        tensors[SCALE] = RawTensor(
            scale.dtype, scale.shape, struct.pack("<H", BF16_BITS[kind]) + scale.data[2:]
        )

    edit_tensors(target, edit)
    return target
