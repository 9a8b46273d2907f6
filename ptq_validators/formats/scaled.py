"""FP8 and INT8 weights stored as is beside their scales (ModelOpt, compressed-tensors and
Hugging Face fine-grained FP8 share these layouts; docs/formats.md §2.1, §3.1, §4).

The scale's shape decides the granularity: one element is per-tensor, one per output row is
per-channel, a coarse 2-D (or ModelOpt's 4-D ``[ob,1,ib,1]``) grid is block-wise, and a
``U8``/``F8_E8M0`` scale per 32 inputs is MXFP8.
"""

from __future__ import annotations

import math

from ptq_validators.formats.base import Hints, Module, Stored, ceil_div
from ptq_validators.io.safetensors import TensorInfo
from ptq_validators.precision import Precision, int_precision

FAMILY = "scaled"
FP8_DTYPES = frozenset({"F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ"})
E8M0_DTYPES = frozenset({"U8", "F8_E8M0"})


def recognize(module: Module, hints: Hints) -> Stored | None:
    """FP8 (tensor / channel / block / MX) or INT8-container weights; None otherwise."""
    weight = module.get("weight")
    if weight is None or len(weight.shape) < 2:
        return None
    if weight.dtype in FP8_DTYPES:
        return _fp8(module, weight, hints)
    if weight.dtype == "I8":
        return _int8(module, weight, hints)
    return None


def _fp8(module: Module, weight: TensorInfo, hints: Hints) -> Stored:
    shape = weight.shape
    out_dim, in_dim = shape[-2], shape[-1]
    lead = shape[:-2]
    scale_inv = module.get("weight_scale_inv")
    if scale_inv is not None:
        if _is_per_tensor(scale_inv, lead):  # HF FP8 with weight_block_size null
            return Stored(Precision.FP8, shape)
        return _block(shape, scale_inv, "weight_scale_inv", _declared_block(hints))
    scale = module.get("weight_scale")
    if scale is None:
        return Stored(Precision.FP8, shape, problems=["FP8 weight without a weight_scale"])
    if scale.dtype in E8M0_DTYPES and scale.shape == (*lead, out_dim, ceil_div(in_dim, 32)):
        return Stored(Precision.MXFP8, shape, 32)
    if _is_per_tensor(scale, lead):
        return Stored(Precision.FP8, shape)
    if scale.shape in ((*lead, out_dim), (*lead, out_dim, 1)):
        return Stored(Precision.FP8_PER_CHANNEL, shape)
    return _block(shape, scale, "weight_scale", _declared_block(hints))


def _is_per_tensor(scale: TensorInfo, lead: tuple[int, ...]) -> bool:
    """One scale per tensor (or per expert) is ``[]``, ``[1]`` or ``[E]``; a rank-2 ``[1, 1]``
    is a block grid with a single cell (a weight smaller than the block)."""
    return scale.numel in (1, math.prod(lead)) and len(scale.shape) <= len(lead) + 1


def _declared_block(hints: Hints) -> tuple[int, int] | None:
    """The declared block: both dims where the metadata has them (HF ``weight_block_size``), else
    the square of the declared group size."""
    group = hints.declared_group_size
    return hints.declared_block or ((group, group) if group else None)


def _block(shape: tuple[int, ...], scale: TensorInfo, role: str, declared: tuple[int, int] | None) -> Stored:
    """A block grid: 2-D ``[ceil(out/b0), ceil(in/b1)]`` or ModelOpt's 4-D ``[ob, 1, ib, 1]``.
    The declared (square) block wins when the grid fits it: a weight smaller than its block
    has a one-cell grid that would fit any larger power of two."""
    out_dim, in_dim = shape[-2], shape[-1]
    grid = scale.shape
    if len(grid) >= 4 and grid[-1] == 1 and grid[-3] == 1:
        grid = (*grid[:-4], grid[-4], grid[-2])
    if len(grid) < 2 or grid[-2] == 0 or grid[-1] == 0:
        return Stored(
            Precision.FP8_BLOCK, shape, problems=[f"{role} shape {list(scale.shape)} is not a block grid"]
        )
    block_out: int | None
    block_in: int | None
    if declared and ceil_div(out_dim, declared[0]) == grid[-2] and ceil_div(in_dim, declared[1]) == grid[-1]:
        block_out, block_in = declared
    else:
        block_out, block_in = _block_size(out_dim, grid[-2]), _block_size(in_dim, grid[-1])
    problems: list[str] = []
    if block_out is None or block_in is None:
        problems.append(f"{role} grid {list(scale.shape)} does not tile weight {list(shape)}")
    block = (block_out, block_in) if block_out and block_in else None
    return Stored(
        Precision.FP8_BLOCK, shape, block_in, problems, note=f"block {block_out}x{block_in}", block=block
    )


def _block_size(dim: int, cells: int) -> int | None:
    """The power-of-two block size b with ceil(dim / b) == cells, if one exists."""
    if dim == 0:
        return None
    size = 1 << (ceil_div(dim, cells) - 1).bit_length()  # smallest power of two >= dim/cells
    return size if ceil_div(dim, size) == cells else None


def _int8(module: Module, weight: TensorInfo, hints: Hints) -> Stored:
    shape = weight.shape
    out_dim, in_dim = shape[-2], shape[-1]
    scale = module.get("weight_scale")
    if scale is None:
        return Stored(Precision.INT8, shape, problems=["INT8 weight without a weight_scale"])
    # compressed-tensors int-quantized keeps W4 (and other widths) in an I8 container.
    bits = hints.declared_bits if hints.declared_bits and hints.declared_bits < 8 else 8
    precision = int_precision(bits)
    note = f"{bits}-bit values in an I8 container" if bits < 8 else None
    if scale.shape[-1:] == (1,) or scale.shape == shape[:-1] or scale.numel == 1:
        return Stored(precision, shape, note=note)
    groups = scale.shape[-1]
    group = hints.declared_group_size or (in_dim // groups if in_dim % groups == 0 else None)
    problems = []
    if group is None or ceil_div(in_dim, group) != groups or scale.shape[-2] != out_dim:
        problems.append(f"weight_scale {list(scale.shape)} does not match groups of weight {list(shape)}")
    return Stored(precision, shape, group, problems, note)
