"""The JSON envelope every ``--json`` document and saved file shares: one ``schema_version``,
a ``kind`` naming the document (``ptqv-gate``, ``ptqv-plan`` ...), then the document's own
fields; and one encoder, ``render_json``. README "JSON output" documents the envelope and the kinds.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_VERSION = 1


def envelope(kind: str, **fields: Any) -> dict[str, Any]:
    """``{"schema_version", "kind", **fields}``; ``kind`` without the ``ptqv-`` prefix."""
    return {"schema_version": SCHEMA_VERSION, "kind": f"ptqv-{kind}", **fields}


def render_json(document: Any) -> str:
    """The one encoder: the document on one line, non-ASCII kept, with a trailing newline.

    Compact on purpose: ``indent`` makes the json module fall back to its pure-Python encoder,
    which takes seconds on the 46k-layer report of a 671B export (pipe to ``jq`` to read it)."""
    return json.dumps(document, ensure_ascii=False) + "\n"
