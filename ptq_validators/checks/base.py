"""Results: what every gate/scan check and every pre-flight finding is. One type, one
vocabulary: ``pass``, ``warn``, ``fail``, ``skip`` (the check did not apply) and ``info``
(context only). A failed check is a result, not an exception; any ``fail`` fails the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PASS, WARN, FAIL, SKIP, INFO = "pass", "warn", "fail", "skip", "info"
_SEVERITY = {SKIP: 0, INFO: 0, PASS: 1, WARN: 2, FAIL: 3}


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
    #: Set by a check whose failure is of another class than its id's usual one (``verdict``).
    failure_class: str | None = None

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


class Finding(CheckResult):
    """A pre-flight finding: a result named by its stable ``id`` (tests and agents key on it)
    whose ``detail`` says what and the fix. ``fail`` blocks, ``warn`` needs an explicit
    acknowledgement, ``info`` is context."""

    def __init__(self, id: str, status: str, detail: str) -> None:
        super().__init__(id, id, status, detail)


def verdict(results: Sequence[CheckResult]) -> str:
    """``fail`` when any result failed, else ``pass``."""
    return "fail" if any(result.status == FAIL for result in results) else "pass"


def worst(*statuses: str) -> str:
    """The most severe of ``statuses`` (fail > warn > pass > skip)."""
    return max(statuses, key=_SEVERITY.__getitem__, default=PASS)
