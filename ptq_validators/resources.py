"""Find the bundled data folders (references, templates, examples, skills).

An installed wheel carries them under ``ptq_validators/_data/<name>``; a source checkout keeps
them at the top level. The wheel location wins when both exist.
"""

from __future__ import annotations

from pathlib import Path

from ptq_validators.errors import InputError

_PACKAGE_DIR = Path(__file__).resolve().parent
DATA_FOLDERS = ("references", "templates", "examples", "skills")


def data_dir(name: str) -> Path:
    """Return the directory of bundled data folder ``name`` (one of ``DATA_FOLDERS``)."""
    if name not in DATA_FOLDERS:
        raise ValueError(f"unknown data folder {name!r}; valid: {', '.join(DATA_FOLDERS)}")
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise InputError(
        f"the bundled folder {name!r} is missing from this installation",
        hint="reinstall ptq-validators from a wheel or run from a full checkout",
    )
