"""Rendering of gate and scan reports: Markdown for people (``report.markdown``), versioned
JSON for agents (``render_json``)."""

from __future__ import annotations

import json
from typing import Any


def render_json(document: dict[str, Any]) -> str:
    """The JSON document on one line, with a trailing newline.

    Compact on purpose: ``indent`` makes the json module fall back to its pure-Python encoder,
    which takes seconds on the 46k-layer report of a 671B export (pipe to ``jq`` to read it)."""
    return json.dumps(document, ensure_ascii=False) + "\n"
