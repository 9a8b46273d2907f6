"""Index ↔ shard consistency and stray artifacts of the export."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptq_validators.checks.base import FAIL, PASS, WARN, CheckResult
from ptq_validators.wording import plural

if TYPE_CHECKING:  # the type only: checks import nothing that reads
    from ptq_validators.checkpoint import IntegrityIssue


def check_integrity(issues: list[IntegrityIssue], shard_count: int) -> CheckResult:
    """Blocking index/shard problems fail; tolerated header quirks warn."""
    blocking = [f"{i.file}: {i.message}" for i in issues if i.blocking]
    warnings = [f"{i.file}: {i.message}" for i in issues if not i.blocking]
    status = FAIL if blocking else WARN if warnings else PASS
    summary = (
        f"{len(blocking)} blocking, {len(warnings)} warnings"
        if blocking or warnings
        else f"{plural(shard_count, 'shard')}, index consistent"
    )
    return CheckResult(
        "integrity",
        "Shards and index",
        status,
        summary,
        measured=len(blocking),
        expected=0,
        details=blocking + warnings,
    )
