"""Helpers for the canary tests: broken copies of real exports made at test time, and records
judged from hand-made completions (for the pure checks and the gate rows)."""

from __future__ import annotations

import struct
from pathlib import Path

from ptq_validators.canary.completion import Completion
from ptq_validators.canary.prompts import PROMPTS
from ptq_validators.canary.run import CanaryRequest, EngineRun, judge
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


def good(prompt_id: str, shift: float = 0.0) -> Completion:
    return Completion(
        prompt_id, " text", [5, 6], [-1.0, -2.0], [1, 2, 3], [None, -1.0 + shift, -2.0], [None, 7, 8]
    )


def record(export: list[Completion], start: str = "started") -> dict:
    """The JSON record of an endpoint run that gave ``export``, against a source that gave `good`."""
    request = CanaryRequest("endpoint", "http://x")
    run = EngineRun(export, {"status": start, "message": "m"}, _engine())
    source = EngineRun([good(p.id) for p in PROMPTS], {"status": "started"}, _engine())
    return judge(request, run, source, "4-bit", PROMPTS).to_json()


def _engine() -> dict:
    return {"mode": "endpoint", "name": "vllm", "version": "0.32.0", "flags": [], "container_image": None,
            "transformers_version": None, "patches": []}  # fmt: skip
