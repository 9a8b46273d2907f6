"""The gate's outcome for people and automation: the failing check ids, the first problem in
one line, the ``failure_class`` and the ``summary`` a day-0 release gate consumes.

In: the gate's check results, layer table, size block and metadata diffs. Out: plain values
(the report renders them; nothing here reads files).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ptq_validators import layers as lt
from ptq_validators.checks.base import FAIL, WARN, CheckResult
from ptq_validators.checks.metadata import MetadataDiff
from ptq_validators.layers import LayerKind, LayerTable
from ptq_validators.precision import Precision

# The class of a failure by the check that owns it, most fundamental first: an unreadable
# input makes every other finding moot; a recipe that contradicts the checkpoint is the user's
# to fix before coverage means anything.
FAILURE_CLASSES = ("input", "user_config", "model_unsupported", "coverage", "metadata_drift", "serving")
_CLASS_BY_CHECK = {
    "integrity": "input",
    "safety": "input",
    "config": "metadata_drift",
    "tokenizer": "metadata_drift",
    "chat_template": "metadata_drift",
    "generation_config": "metadata_drift",
    "files": "metadata_drift",
    "deploy": "serving",
    "canary": "serving",
}
_FP8 = frozenset({Precision.FP8, Precision.FP8_PER_CHANNEL, Precision.FP8_BLOCK})
#: The layer buckets of ``summary.layers``, in the order they are decided.
LAYER_BUCKETS = (
    "NVFP4",
    "FP8",
    "INT4",
    "BF16_or_excluded",
    "unexpected_unquantized",
    "declaration_mismatch",
    "other",
)


def failing(checks: list[CheckResult], status: str = FAIL) -> list[CheckResult]:
    return [check for check in checks if check.status == status]


def failure_class(checks: list[CheckResult]) -> str | None:
    """The most fundamental class among the failed checks (None when nothing failed)."""
    classes = {check.failure_class or _CLASS_BY_CHECK.get(check.id, "coverage") for check in failing(checks)}
    return next((c for c in FAILURE_CLASSES if c in classes), None)


def headline(checks: list[CheckResult]) -> str:
    """What follows the verdict on the report's first line: ``coverage, recipe: <the first
    problem>`` when checks failed, ``warnings: tokenizer: <the first warning>`` when some
    warned, else how many checks passed."""
    failed, warned = failing(checks), failing(checks, WARN)
    shown = failed or warned
    if not shown:
        ran = sum(1 for check in checks if check.status != "skip")
        return f"all {ran} checks that apply passed"
    first = shown[0]
    problem = (first.details[0] if first.details else first.summary).replace("\n", " ")
    ids = ", ".join(check.id for check in shown)
    return f"{ids}: {problem}" if failed else f"warnings: {ids}: {problem}"


def bucket(layer: LayerKind) -> str:
    """The day-0 bucket of every layer of one kind (``LAYER_BUCKETS``)."""
    if layer.status == lt.UNEXPECTED_UNQUANTIZED:
        return "unexpected_unquantized"
    if layer.status == lt.DECLARATION_MISMATCH:
        return "declaration_mismatch"
    if layer.status != lt.OK:
        return "other"
    if not layer.precision.is_quantized:
        return "BF16_or_excluded"
    if layer.precision is Precision.NVFP4:
        return "NVFP4"
    if layer.precision in _FP8:
        return "FP8"
    return "INT4" if layer.precision is Precision.INT4 else "other"


def summary(
    table: LayerTable, size: dict[str, Any], recipe: dict[str, Any] | None, diffs: list[MetadataDiff]
) -> dict[str, Any]:
    """The fields a release gate reads without walking ``checks`` or ``layers``."""
    counts: Counter[str] = Counter()
    for kind, n in table.kind_counts().items():  # a layer's bucket follows from its kind
        counts[bucket(kind)] += n
    diff_counts = Counter(diff.classification for diff in diffs)
    return {
        "source_bytes": size["source_bytes"],
        "output_bytes": size["output_bytes"],
        "recipe": recipe.get("name") if recipe else None,
        "declared": table.declaration.summary.get("quant_algo") or table.declaration.family,
        "layers": {name: counts.get(name, 0) for name in LAYER_BUCKETS},
        "metadata_diffs": {name: diff_counts.get(name, 0) for name in ("blocking", "warning", "expected")},
    }
