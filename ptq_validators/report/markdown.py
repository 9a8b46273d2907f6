"""Markdown rendering. The gate table (``| Check | Result |``) always comes first; details
follow, capped at ``limit`` lines per check with "… N more"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptq_validators.checks.base import CheckResult
from ptq_validators.precision import describe_counts

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
    """The gate report: the table first, then verdict, layer groups and details."""
    lines = _table(report.checks)
    lines += [
        "",
        f"**Verdict: {report.verdict.upper()}** — `{report.output}` against source `{report.source}`",
    ]
    declared = report.table.declaration.summary
    lines.append(f"Declared: {_declared_line(declared)}")
    if report.serving:
        lines.append(
            "Serving canary: " + ", ".join(f"{key} {value}" for key, value in report.serving.items())
        )
    lines += ["", "| Layer group | Precision |", "|---|---|"]
    for group, counts in report.table.group_counts().items():
        lines.append(f"| {group} | {describe_counts(counts)} |")
    lines += _details(report.checks, limit)
    return "\n".join(lines) + "\n"


def render_scan(report: ScanReport, *, limit: int = 20) -> str:
    size = report.size()
    lines = _table(report.checks)
    lines += [
        "",
        f"**{report.path}** — {_declared_line(report.table.declaration.summary)}",
        f"{size['weight_bytes']} weight bytes, {size['parameters']} parameters, "
        f"{size['bits_per_param']} bits/param; linear layers {size['linear_bits_per_weight']} "
        "bits/weight",
        "",
        "| Layer group | Precision |",
        "|---|---|",
    ]
    for group, counts in report.table.group_counts().items():
        lines.append(f"| {group} | {describe_counts(counts)} |")
    lines += ["", "| Layer | Group | Precision | Declared | Bits/weight |", "|---|---|---|---|---|"]
    rows = report.table.layers
    for layer in rows[: limit * 5]:
        declared = layer.declared.precision.value if layer.declared.precision else "unquantized"
        lines.append(
            f"| {layer.name} | {layer.group.value} | {layer.precision.value}"
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
