"""Checks over the checkpoint's documents: files present, and drift per document family."""

from __future__ import annotations

from ptq_validators.checks.base import FAIL, PASS, SKIP, WARN, CheckResult
from ptq_validators.checks.metadata import BLOCKING, EXPECTED, WARNING, MetadataDiff
from ptq_validators.wording import plural

_SHOWN_CHARS = 80

# Files whose absence in the export (when the source has them) blocks; others warn.
REQUIRED_IF_IN_SOURCE = frozenset(
    {
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "generation_config.json",
        "chat_template.jinja",
        "chat_template.json",
        "vocab.json",
        "merges.txt",
    }
)


def check_files(source_files: list[str], output_files: list[str], candidates: tuple[str, ...]) -> CheckResult:
    """Every document the source carries must be in the export."""
    missing = [name for name in candidates if name in source_files and name not in output_files]
    blocking = [name for name in missing if name in REQUIRED_IF_IN_SOURCE]
    if not missing:
        present = sum(1 for name in candidates if name in output_files)
        return CheckResult("files", "Sidecar files", PASS, f"{present} documents present")
    status = FAIL if blocking else WARN
    return CheckResult(
        "files",
        "Sidecar files",
        status,
        "missing: " + ", ".join(missing),
        measured=missing,
        expected=[],
        details=[f"{name}: in the source, missing from the export" for name in missing],
    )


def check_drift(check_id: str, title: str, diffs: list[MetadataDiff], *, compared: bool) -> CheckResult:
    """Blocking diffs fail, warnings warn, expected differences are listed but pass."""
    if not compared:
        return CheckResult(check_id, title, SKIP, "not present in the source")
    blocking = [d for d in diffs if d.classification == BLOCKING]
    warnings = [d for d in diffs if d.classification == WARNING]
    expected = [d for d in diffs if d.classification == EXPECTED]
    status = FAIL if blocking else WARN if warnings else PASS
    if not diffs:
        summary = "unchanged"
    else:
        parts = [
            f"{len(rows)} {name}"
            for name, rows in (("blocking", blocking), ("warning", warnings), ("expected", expected))
            if rows
        ]
        summary = f"{plural(len(diffs), 'difference')} ({', '.join(parts)})"
    details = [
        f"{d.file} {d.key}: {_short(d.source)} → {_short(d.output)} ({d.classification})"
        for d in blocking + warnings
    ]
    if expected:
        # Expected differences (quantization_config added, dtype ...) are counted, not dumped.
        keys = sorted({f"{d.file} {d.key}" for d in expected})
        details.append(f"{plural(len(expected), 'expected difference')}: {', '.join(keys)}")
    return CheckResult(check_id, title, status, summary, measured=len(blocking), expected=0, details=details)


def _short(value: object) -> str:
    """A value as one short line: long documents are cut, not dumped."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"
