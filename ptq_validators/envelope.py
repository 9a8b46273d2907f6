"""The JSON envelope every ``--json`` document and saved file shares: one ``schema_version``,
a ``kind`` naming the document (``ptqv-gate``, ``ptqv-plan`` ...), then the document's own
fields; and one encoder (compact: the indented path is several times slower on tables of
tens of thousands of layers). README "JSON output" documents the envelope and the kinds.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_VERSION = 1


def envelope(kind: str, **fields: Any) -> dict[str, Any]:
    """``{"schema_version", "kind", **fields}``; ``kind`` without the ``ptqv-`` prefix."""
    return {"schema_version": SCHEMA_VERSION, "kind": f"ptqv-{kind}", **fields}


def dumps(document: Any) -> str:
    """The one encoder: compact JSON, non-ASCII kept, one trailing newline."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"
