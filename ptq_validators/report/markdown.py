"""Markdown rendering. The gate report leads with its verdict (line 1: verdict, failing check
ids, the first problem), then one size line, then the table with FAIL and WARN rows first and
the skipped checks folded into one row; details follow, capped at ``limit`` lines per check
with "… N more". The scan report opens with its table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptq_validators.checks.base import FAIL, SKIP, WARN, CheckResult
from ptq_validators.precision import describe_counts, scheme_label
from ptq_validators.verdict import headline

if TYPE_CHECKING:  # the types only: report imports nothing that reads
    from ptq_validators.gate import GateReport
    from ptq_validators.scan import ScanReport

_ICON = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "skip", "info": "info"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(checks: list[CheckResult]) -> list[str]:
    lines = ["| Check | Result |", "|---|---|"]
    for check in checks:
        lines.append(f"| {_cell(check.title)} | {_ICON[check.status]} {_cell(check.summary)} |")
    return lines


def _details(checks: list[CheckResult], limit: int) -> list[str]:
    lines: list[str] = []
    for check in checks:
        if not check.details or check.status == "skip":
            continue
        lines += ["", f"### {check.title} — {_ICON[check.status]}", ""]
        lines += [f"- {_cell(detail)}" for detail in check.details[:limit]]
        if len(check.details) > limit:
            lines.append(f"- … {len(check.details) - limit} more")
    return lines


def render_gate(report: GateReport, *, limit: int = 20) -> str:
    """The gate report: verdict line, size line, table (worst first), layer groups, details."""
    lines = [
        f"**Verdict: {report.verdict.upper()}** — {_cell(headline(report.checks))}",
        _size_line(report.size),
        "",
        f"`{report.output}` against source `{report.source}`; declared: "
        f"{_declared_line(report.table.declaration.summary)}",
        "",
    ]
    if report.serving:
        lines += [
            "Serving canary: " + ", ".join(f"{key} {value}" for key, value in report.serving.items()),
            "",
        ]
    lines += _gate_table(report.checks)
    lines += ["", "| Layer group | Precision |", "|---|---|"]
    for group, counts in report.table.group_counts().items():
        lines.append(f"| {group} | {describe_counts(counts)} |")
    lines += _details(report.checks, limit)
    return "\n".join(lines) + "\n"


def _gate_table(checks: list[CheckResult]) -> list[str]:
    """FAIL rows, then WARN rows, then the rest in check order; skipped checks in one row."""
    rank = {FAIL: 0, WARN: 1}
    shown = sorted((c for c in checks if c.status != SKIP), key=lambda c: rank.get(c.status, 2))
    lines = _table(shown)
    skipped = [c for c in checks if c.status == SKIP]
    if skipped:
        titles = ", ".join(c.title for c in skipped)
        lines.append(f"| Skipped ({len(skipped)}) | {_cell(titles)} |")
    return lines


def _size_line(size: dict) -> str:
    """Quantized layers' exact bits per weight by precision, their parameter share, and the
    whole model's bits per parameter, in one line."""
    quantized = size.get("quantized") or {}
    per_scheme = ", ".join(
        f"{scheme} {bits:.4f}" for scheme, bits in quantized.get("bits_per_weight", {}).items()
    )
    whole = size.get("bits_per_param")
    model = f"whole model {whole:.4f} bits/param" if whole is not None else "source has no weights"
    if not per_scheme:
        return f"Size: no quantized layers; {model}"
    share = 100 * quantized.get("parameter_share", 0)
    return f"Size: quantized layers {per_scheme} bits/weight, holding {share:.1f}% of parameters; {model}"


def _optional(value: object) -> str:
    """A measured figure, or "n/a" where there was nothing to measure (no weights)."""
    return "n/a" if value is None else str(value)


def render_scan(report: ScanReport, *, limit: int = 20) -> str:
    size = report.size()
    lines = _table(report.checks)
    lines += [
        "",
        f"**{report.path}** — {_declared_line(report.table.declaration.summary)}",
        f"{size['weight_bytes']} weight bytes, {size['parameters']} parameters, "
        f"{_optional(size['bits_per_param'])} bits/param; "
        f"linear layers {_optional(size['linear_bits_per_weight'])} bits/weight",
        "",
        "| Layer group | Precision |",
        "|---|---|",
    ]
    for group, counts in report.table.group_counts().items():
        lines.append(f"| {group} | {describe_counts(counts)} |")
    lines += ["", "| Layer | Group | Precision | Declared | Bits/weight |", "|---|---|---|---|---|"]
    rows = report.table.layers
    for layer in rows[: limit * 5]:
        declared = (
            scheme_label(layer.declared.precision, layer.declared.activation)
            if layer.declared.precision
            else "unquantized"
        )
        lines.append(
            f"| {layer.name} | {layer.group.value} | {layer.scheme}"
            f"{f' g{layer.stored.group_size}' if layer.stored.group_size else ''} | "
            f"{declared} | {float(layer.bits_per_weight):.4f} |"
        )
    if len(rows) > limit * 5:
        lines.append(f"| … {len(rows) - limit * 5} more | | | | |")
    lines += _details(report.checks, limit)
    return "\n".join(lines) + "\n"


def _declared_line(summary: dict) -> str:
    family = summary.get("family")
    keys = (
        "quant_algo",
        "kv_cache_quant_algo",
        "group_size",
        "format",
        "quantization_status",
        "bits",
        "desc_act",
        "checkpoint_format",
        "weight_block_size",
        "version",
    )
    parts = [f"{key}={summary[key]}" for key in keys if summary.get(key) is not None]
    origin = f" from {summary['origin']}" if summary.get("origin") else ""
    return f"{family}{origin}" + (f" ({', '.join(parts)})" if parts else "")
