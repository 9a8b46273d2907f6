"""A pre-flight finding: one thing an agent must know, with how much it matters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["block", "warn", "info"]


@dataclass(frozen=True)
class Finding:
    """``id`` is stable (tests and agents key on it); ``detail`` says what and the fix.

    ``block`` findings make the verdict ``fail``; ``warn`` needs an explicit acknowledgement;
    ``info`` is context.
    """

    id: str
    severity: Severity
    detail: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def verdict(findings: list[Finding]) -> str:
    """``fail`` when any finding blocks, else ``pass``."""
    return "fail" if any(f.severity == "block" for f in findings) else "pass"
