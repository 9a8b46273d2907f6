"""fnmatch globs as ModelOpt applies them (``*`` crosses dots, anchored at both ends, case
sensitive), made cheap for checkpoints with tens of thousands of modules.

Names that differ only in their layer and expert indices usually get the same answer:
``index_key`` masks every all-digit component, and callers ask once per key when
``index_free`` says no pattern can tell those components apart: no character class, no ``?``
(which counts characters), and every literal digit run between letters, as in ``conv1d``,
where no index component can be.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

_INDEX = re.compile(r"(?<=\.)\d+(?=\.|$)")
_DIGIT_RUN = re.compile(r"\d+")


def _flanked_by_letters(pattern: str, start: int, end: int) -> bool:
    return start > 0 and end < len(pattern) and pattern[start - 1].isalpha() and pattern[end].isalpha()


def index_free(patterns: Iterable[str]) -> bool:
    """True when none of ``patterns`` can tell one index component from another."""
    for pattern in patterns:
        if "[" in pattern or "?" in pattern:
            return False
        if any(not _flanked_by_letters(pattern, m.start(), m.end()) for m in _DIGIT_RUN.finditer(pattern)):
            return False
    return True


def index_key(name: str) -> str:
    """``name`` with every all-digit component replaced by ``#`` (which no name contains)."""
    return _INDEX.sub("#", name)


_MASK_DIGITS = str.maketrans("0123456789", "\0" * 10)
MASKED_RUN = re.compile("\0+")  # a run of masked digits in a digit shape


def digit_shapes(names: list[str]) -> list[str]:
    """Each name with its ASCII digits masked: names of one digit shape have the same length
    and the same characters but for digits, which stand in the same places. The names
    themselves (nothing shared) where a name holds the mask character or the line break the
    names are joined with. Made in three C calls, not one per name."""
    joined = "\n".join(names)
    if "\0" in joined:
        return names
    shapes = joined.translate(_MASK_DIGITS).split("\n")
    return shapes if len(shapes) == len(names) else names


def name_shapes(names: list[str]) -> list[str]:
    """A key per name that only names of one digit shape and one ``index_key`` share, so a
    caller asks once per key what the template and the places of the digits decide. A digit
    shape whose every digit run is a whole component after a dot (an index) is that key;
    others (``w1`` and ``w3``, a leading number) add their names' templates."""
    shapes = digit_shapes(names)
    if shapes is names:
        return names
    mixed = {shape for shape in set(shapes) if not _indices_only(shape)}
    if not mixed:
        return shapes
    return [
        f"{shape}\n{index_key(name)}" if shape in mixed else shape
        for shape, name in zip(shapes, names, strict=True)
    ]


def _indices_only(shape: str) -> bool:
    """Every masked run of ``shape`` is a component that ``index_key`` masks."""
    return all(
        run.start() > 0 and shape[run.start() - 1] == "." and shape[run.end() : run.end() + 1] in ("", ".")
        for run in MASKED_RUN.finditer(shape)
    )


def alternation(patterns: list[str], *, named: bool = False) -> re.Pattern[str]:
    """One regex matching any of ``patterns``; with ``named``, alternative ``i`` is the group
    ``e{i}``, so ``match.lastgroup`` says which pattern matched first."""
    parts = [
        f"(?P<e{i}>{fnmatch.translate(p)})" if named else f"(?:{fnmatch.translate(p)})"
        for i, p in enumerate(patterns)
    ]
    return re.compile("|".join(parts) or "(?!)")
