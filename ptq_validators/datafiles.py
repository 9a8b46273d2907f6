"""The versioned YAML data files bundled beside the code that reads them
(``preflight/data/``, ``recipes/data/``, ``checks/data/``, ``canary/data/``): parsed once, by
YAML's safe loader only (libyaml's, where PyYAML has it: the same data about ten times faster,
which a small gate's start-up feels; ``tests/test_datafiles.py`` checks both agree).

Top-level keys starting with ``_`` hold YAML anchors that other entries splice in; they are not
data and are dropped.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import IO, Any

import yaml

_PACKAGE_DIR = Path(__file__).resolve().parent
# Safe either way: CSafeLoader is SafeLoader's constructor on libyaml's parser. Only for the
# files we ship: a user's file keeps ``yaml.safe_load``, whose error marks the messages quote.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_bundled(stream: IO[str]) -> Any:
    """One YAML file we ship, parsed by ``SAFE_LOADER``."""
    return yaml.load(stream, Loader=SAFE_LOADER)  # a safe loader


@cache
def load_data(stage: str, filename: str) -> dict[str, Any]:
    """The parsed ``<stage>/data/<filename>`` (e.g. ``("preflight", "gpus.yaml")``)."""
    with open(_PACKAGE_DIR / stage / "data" / filename, encoding="utf-8") as handle:
        data = parse_bundled(handle)
    return {key: value for key, value in data.items() if not str(key).startswith("_")}
