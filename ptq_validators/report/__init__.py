"""Rendering of gate and scan reports: Markdown for people (``report.markdown``), JSON for
agents (the one encoder, ``envelope.render_json``)."""

from __future__ import annotations

from ptq_validators.envelope import render_json

__all__ = ["render_json"]
