"""The preset names a user types: ModelOpt ``--qformat`` / ``--kv_cache_qformat`` / ``--recipe`` and
llm-compressor schemes, checked the same way by ``ptqv gate``, ``ptqv plan`` and ``ptqv render``.

In: the value given on the command line or in a job spec. Out: the spelling the tool accepts
(qformats lower-case with legacy aliases resolved, schemes upper-case), or a ``UsageError`` that
names the value, suggests the closest valid names (``difflib``) and lists the rest.

Where the names come from: the gate's own preset data (``recipes/data/*.yaml``) for what it can
hold an export to, and ``templates/tool-inventory.json`` (read from ModelOpt's sources) for what
``hf_ptq.py`` accepts beyond that: the KV-cache qformats, built-in recipe names and the few
qformats the gate has no layer rules for (rendering those is fine; the gate then checks the
export against its own metadata only).
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from typing import Any

from ptq_validators.errors import UsageError

INVENTORY = "tool-inventory.json"
RECIPE_SUFFIXES = (".yaml", ".yml")


def gate_qformat(value: str, *, flag: str = "--qformat") -> str:
    """A ``--qformat`` the gate has preset data for, in its canonical lower-case spelling."""
    from ptq_validators.recipes.modelopt import qformat_names

    name = nonempty(flag, value).lower()
    if name in qformat_names():
        return name
    if name in _hf_ptq()["qformat"]:
        raise UsageError(
            f"the gate has no layer rules for ModelOpt qformat {name!r} (hf_ptq.py accepts it)",
            hint=f"leave {flag} out: the export is then held to its own hf_quant_config.json",
        )
    raise unknown("ModelOpt qformat", value, qformat_names())


def gate_scheme(value: str, *, flag: str = "--scheme") -> str:
    """An llm-compressor preset scheme, upper-case (llm-compressor's own spelling)."""
    from ptq_validators.recipes.compressed_tensors import scheme_names

    name = nonempty(flag, value).upper()
    if name not in scheme_names():
        raise unknown("llm-compressor scheme", value, scheme_names())
    return name


def hf_ptq_qformat(value: str, *, flag: str = "--qformat") -> str:
    """A qformat ``hf_ptq.py`` accepts: the gate's names (legacy aliases mapped to the name
    hf_ptq.py knows) plus the inventory's; unknown names fail with the gate's message."""
    from ptq_validators.datafiles import load_data
    from ptq_validators.recipes.modelopt import QFORMAT_FILE, qformat_names

    accepted = _hf_ptq()["qformat"]
    name = nonempty(flag, value).lower()
    name = load_data("recipes", QFORMAT_FILE)["aliases"].get(name, name)
    if name not in accepted:
        raise unknown("ModelOpt qformat", value, sorted({*accepted, *qformat_names()}))
    return name


def kv_cache_qformat(value: str, *, flag: str = "kv_cache_qformat") -> str:
    """A ``--kv_cache_qformat`` of ``hf_ptq.py``, lower-case."""
    accepted = _hf_ptq()["kv_cache_qformat"]
    name = nonempty(flag, value).lower()
    if name not in accepted:
        raise unknown("ModelOpt kv_cache_qformat", value, accepted)
    return name


def modelopt_recipe(value: str, *, flag: str = "--recipe") -> str:
    """A ``--recipe`` for ``hf_ptq.py``: a built-in recipe name (``general/ptq/...``, with or
    without ``.yaml``) or a recipe file path (``.yaml``/``.yml``), which is read where the job
    runs and so is not looked for here. Anything else is a mistyped built-in name."""
    name = nonempty(flag, value)
    builtins = _recipes()
    if name.endswith(RECIPE_SUFFIXES) and name.rsplit(".", 1)[0] not in builtins:
        return name  # a file of the user's
    if name.removesuffix(".yaml").removesuffix(".yml") in builtins:
        return name
    raise unknown("ModelOpt recipe", value, builtins, listing=False)


def unknown(kind: str, value: str, valid: list[str], *, listing: bool = True) -> UsageError:
    """The usage error for a name that is not in ``valid``: the closest names first."""
    close = difflib.get_close_matches(value.lower(), [v.lower() for v in valid], n=3, cutoff=0.6)
    by_lower = {v.lower(): v for v in valid}
    guess = "did you mean " + " or ".join(repr(by_lower[c]) for c in close) + "? " if close else ""
    if listing:
        rest = f"valid: {', '.join(sorted(valid))}"
    else:
        rest = f"the {len(valid)} built-in names are listed in templates/{INVENTORY}, or pass a .yaml file"
    return UsageError(f"unknown {kind} {value!r}", hint=guess + rest)


def nonempty(flag: str, value: str) -> str:
    """``value`` without surrounding blanks; an empty one is a usage error naming ``flag``."""
    name = value.strip()
    if not name:
        raise UsageError(f"{flag} is empty", hint=f"give a value, or leave {flag} out")
    return name


@cache
def _inventory() -> dict[str, Any]:
    from ptq_validators.resources import data_dir

    with open(data_dir("templates") / INVENTORY, encoding="utf-8") as handle:
        tools: dict[str, Any] = json.load(handle)["tools"]
    return tools


def _hf_ptq() -> dict[str, list[str]]:
    tool: dict[str, list[str]] = _inventory()["hf_ptq.py"]
    return tool


def _recipes() -> list[str]:
    names: list[str] = _inventory()["hf_ptq.py --recipe"]["recipes"]
    return names
