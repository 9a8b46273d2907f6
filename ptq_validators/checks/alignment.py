"""Shape alignment for the stored format: block formats need the contraction dimension to be a
multiple of their block (NVFP4 16, MX 32), grouped INT needs the group to divide the input
dimension; FP8 block-wise weights whose dims are not multiples of the block are legal on disk
but rejected by some engines' kernels when sharded (a warning)."""

from __future__ import annotations

from ptq_validators.checks.base import FAIL, PASS, WARN, CheckResult
from ptq_validators.formats.base import Stored
from ptq_validators.layers import LayerTable
from ptq_validators.precision import Precision

GROUPED = frozenset(
    {
        Precision.NVFP4,
        Precision.MXFP4,
        Precision.MXFP8,
        Precision.INT2,
        Precision.INT3,
        Precision.INT4,
        Precision.INT5,
        Precision.INT6,
        Precision.INT7,
        Precision.INT8,
    }
)
TITLE = "Shape alignment"


def check_alignment(table: LayerTable) -> CheckResult:
    failures, warnings = [], []
    # The verdict follows from the stored layout: only the layers of kinds that fail or warn
    # are walked for their names.
    flagged = {kind for kind in table.kind_counts() if _misaligned(kind.stored) != (None, None)}
    for layer in table.layers_of(flagged):
        failure, warning = _misaligned(layer.stored)
        if failure:
            failures.append(f"{layer.name}: {failure}")
        if warning:
            warnings.append(f"{layer.name}: {warning}")
    status = FAIL if failures else WARN if warnings else PASS
    summary = (
        f"{len(failures)} misaligned, {len(warnings)} padded block layers"
        if failures or warnings
        else "every quantized layer is a whole number of groups"
    )
    return CheckResult(
        "alignment", TITLE, status, summary, measured=len(failures), expected=0, details=failures + warnings
    )


def _misaligned(stored: Stored) -> tuple[str | None, str | None]:
    """What is wrong with a stored layout's alignment: (blocking, warning), None where fine."""
    if len(stored.shape) < 2:
        return None, None
    failure = warning = None
    contraction = stored.shape[stored.contraction_axis]
    if stored.precision in GROUPED and stored.group_size and contraction % stored.group_size:
        failure = (
            f"contraction dim {contraction} is not a multiple of the "
            f"{stored.precision.value} group {stored.group_size}"
        )
    if stored.precision is Precision.FP8_BLOCK and stored.block:
        (b_out, b_in), (out_dim, in_dim) = stored.block, stored.shape[-2:]
        if out_dim % b_out or in_dim % b_in:
            warning = (
                f"[{out_dim}, {in_dim}] is not a multiple of the {b_out}x{b_in} block "
                "(padded grid; engines may refuse to shard it)"
            )
    return failure, warning
