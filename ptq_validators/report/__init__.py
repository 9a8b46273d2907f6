"""Rendering of gate and scan reports: Markdown for people (``report.markdown``), versioned
JSON for agents (``render_json``)."""

from __future__ import annotations

import json
from typing import Any


def render_json(document: dict[str, Any]) -> str:
    """The JSON document, indented, with a trailing newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
