"""Load the versioned pre-flight data files in ``preflight/data/`` (``yaml.safe_load`` only)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_DATA_DIR = Path(__file__).resolve().parent / "data"


@cache
def load(filename: str) -> dict[str, Any]:
    """The parsed data file ``filename`` (e.g. ``gpus.yaml``); each carries an ``upstream`` key."""
    with open(_DATA_DIR / filename, encoding="utf-8") as handle:
        return yaml.safe_load(handle)
