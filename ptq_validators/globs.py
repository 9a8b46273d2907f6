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


def alternation(patterns: list[str], *, named: bool = False) -> re.Pattern[str]:
    """One regex matching any of ``patterns``; with ``named``, alternative ``i`` is the group
    ``e{i}``, so ``match.lastgroup`` says which pattern matched first."""
    parts = [
        f"(?P<e{i}>{fnmatch.translate(p)})" if named else f"(?:{fnmatch.translate(p)})"
        for i, p in enumerate(patterns)
    ]
    return re.compile("|".join(parts) or "(?!)")
