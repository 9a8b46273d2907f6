"""Check results: what every check returns. A failed check is a result, not an exception."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
_SEVERITY = {SKIP: 0, PASS: 1, WARN: 2, FAIL: 3}


@dataclass
class CheckResult:
    """One row of the gate table. ``summary`` is the Result column; ``details`` list evidence
    (layer or tensor names) worst first; ``measured``/``expected`` are machine-readable."""

    id: str
    title: str
    status: str
    summary: str
    measured: Any = None
    expected: Any = None
    details: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "measured": self.measured,
            "expected": self.expected,
            "detail": self.summary,
            "details": self.details,
        }


def worst(*statuses: str) -> str:
    """The most severe of ``statuses`` (fail > warn > pass > skip)."""
    return max(statuses, key=_SEVERITY.__getitem__, default=PASS)
