"""Markdown for a canary record: the check table first (as the gate prints it), then the engine."""

from __future__ import annotations

from ptq_validators.canary.run import CanaryRecord
from ptq_validators.report.markdown import _details, _table


def render_canary(record: CanaryRecord, *, limit: int = 20) -> str:
    engine = record.export.engine
    lines = _table(record.checks)
    what = record.request.checkpoint or engine.get("endpoint")
    on = " ".join(str(part) for part in (engine.get("name"), engine.get("version")) if part) or "the engine"
    lines += [
        "",
        f"**Verdict: {record.verdict.upper()}** — `{what}` on {on} ({engine.get('mode')}), "
        f"precision family {record.family}",
    ]
    if record.export.start.get("log"):
        lines.append(f"Engine log: `{record.export.start['log']}`")
    lines += _details(record.checks, limit)
    return "\n".join(lines) + "\n"
