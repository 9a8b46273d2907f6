"""GPU memory sizing for calibration, from the source checkpoint's weight bytes.

Calibration loads the *source* weights (an FP8 source stays ~1 byte per parameter), hf_ptq caps
each GPU at ``gpu_max_mem_percentage`` (0.8), and activations, calibration batches and the
quantizer state add roughly a quarter on top. Rule (ModelOpt PTQ skill sizing, DERIVED factor):
``gpus = ceil(weight_bytes * 1.25 / (gpu_memory * 0.8))`` rounded up to 1, 2, 4 or 8 per node;
more than one node, or 200B+ parameters, means multi-node FSDP2 (``--use_fsdp2``).
"""

from __future__ import annotations

import math
from typing import Any

OVERHEAD = 1.25
GPU_MEM_FRACTION = 0.8
GPUS_PER_NODE = 8
MULTI_NODE_PARAMS = 200e9


def calibration_sizing(weight_bytes: int, params: int, memory_gib: float, gpu_name: str) -> dict[str, Any]:
    """How many GPUs of ``memory_gib`` the calibration needs, and whether it is multi-node."""
    need_gib = weight_bytes * OVERHEAD / 2**30
    per_gpu = memory_gib * GPU_MEM_FRACTION
    gpus = max(1, math.ceil(need_gib / per_gpu))
    nodes = math.ceil(gpus / GPUS_PER_NODE)
    if nodes == 1:
        gpus = next(n for n in (1, 2, 4, 8) if n >= gpus)
    multi_node = nodes > 1 or params >= MULTI_NODE_PARAMS
    if multi_node:
        nodes = max(nodes, 2)
        gpus = nodes * GPUS_PER_NODE
    return {
        "gpu": gpu_name,
        "gpu_memory_gib": memory_gib,
        "need_gib": round(need_gib, 1),
        "gpus": gpus,
        "nodes": nodes,
        "multi_node_fsdp2": multi_node,
        "rule": f"ceil(weight bytes x {OVERHEAD} / ({memory_gib} GiB x {GPU_MEM_FRACTION})), "
        f"rounded to 1/2/4/8 per node; 200B+ parameters or more than "
        f"{GPUS_PER_NODE} GPUs: multi-node FSDP2",
    }
