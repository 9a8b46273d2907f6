"""The versioned YAML data files bundled beside the code that reads them
(``preflight/data/``, ``recipes/data/``): parsed once, with ``yaml.safe_load`` only.

Top-level keys starting with ``_`` hold YAML anchors that other entries splice in; they are not
data and are dropped.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def load_data(stage: str, filename: str) -> dict[str, Any]:
    """The parsed ``<stage>/data/<filename>`` (e.g. ``("preflight", "gpus.yaml")``)."""
    with open(_PACKAGE_DIR / stage / "data" / filename, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return {key: value for key, value in data.items() if not str(key).startswith("_")}
