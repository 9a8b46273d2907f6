"""Exclusion patterns as their tools apply them, made cheap for checkpoints with tens of thousands
of modules: fnmatch globs as ModelOpt matches them (``*`` crosses dots, anchored at both ends,
case sensitive), and the question which patterns can tell layer and expert indices apart.

Names that differ only in their layer and expert indices usually get the same answer:
``index_key`` masks every all-digit component, and callers ask once per key when
``index_free`` proves, in the pattern's own syntax (a glob, a regex or a literal name), that no
pattern can tell those components apart. Anything it cannot prove is asked name by name, which
is always right, only slower.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Literal

_INDEX = re.compile(r"(?<=\.)\d+(?=\.|$)")

#: How a family's entries read: ``glob`` (fnmatch), ``regex`` (Python ``re``, however anchored;
#: a literal suffix test of the entry is covered too) or ``literal`` (equality, substring).
Syntax = Literal["glob", "regex", "literal"]
# Tokens of a pattern other than its literal characters (which are one character long).
_GAP = "any text"  # glob ``*``, regex ``.*``
_ONE = "any character"  # glob ``?``, regex ``.``
_REGEX_SPECIAL = frozenset("^$*+?{}[]()|")


def index_free(patterns: Iterable[str], syntax: Syntax = "glob") -> bool:
    """True when none of ``patterns`` (read in ``syntax``) can tell one index component from
    another: every name of one ``index_key``, and the key itself, gets one answer.

    A pattern qualifies when it is made of literal characters, gaps (any text) and single
    any-characters only, holds no ``#`` (the mask a key holds), and every stretch of it that can
    match a digit (a literal digit run, or one any-character) stands between two letters, as in
    ``conv1d`` or ``mlp.gate``, where no index component can be: gaps stretch over indices of any
    length, literal characters other than digits match only the name around them. Character
    classes, counted repeats, alternations, escapes such as ``\\d`` or ``\\w``, and two
    any-characters in one stretch (which could match the dots around an index) do not qualify."""
    return all(_index_free(_TOKENS[syntax](pattern)) for pattern in patterns)


def _index_free(tokens: list[str] | None) -> bool:
    """``index_free`` for one pattern's tokens (None: a pattern outside what it can prove)."""
    if tokens is None or "#" in tokens:
        return False
    letter = [len(token) == 1 and token.isalpha() for token in tokens]
    digit_like = [token == _ONE or (len(token) == 1 and token.isdecimal()) for token in tokens]
    start = 0
    while start < len(tokens):
        if not digit_like[start]:
            start += 1
            continue
        end = start
        while end < len(tokens) and digit_like[end]:
            end += 1
        flanked = start > 0 and end < len(tokens) and letter[start - 1] and letter[end]
        if not flanked or tokens[start:end].count(_ONE) > 1:
            return False
        start = end
    return True


def _glob_tokens(pattern: str) -> list[str] | None:
    """fnmatch's tokens (None: a character class, which picks characters)."""
    if "[" in pattern:
        return None
    return [_GAP if char == "*" else _ONE if char == "?" else char for char in pattern]


def _regex_tokens(pattern: str) -> list[str] | None:
    """The tokens of a regex of literal characters, escaped punctuation, ``.*`` and ``.``, with
    a leading ``^`` or a trailing ``$`` (which only anchor); None for any other regex."""
    tokens: list[str] = []
    at = 0
    while at < len(pattern):
        char = pattern[at]
        if char == "\\":
            escaped = pattern[at + 1 : at + 2]
            if not escaped or escaped.isalnum():  # \d, \w, \b, a back-reference ...
                return None
            tokens.append(escaped)
            at += 2
            continue
        if pattern.startswith(".*", at):
            tokens.append(_GAP)
            at += 2
            continue
        if char == ".":
            tokens.append(_ONE)
        elif (char == "^" and at == 0) or (char == "$" and at == len(pattern) - 1):
            pass
        elif char in _REGEX_SPECIAL:
            return None
        else:
            tokens.append(char)
        at += 1
    return tokens


_TOKENS: dict[Syntax, Callable[[str], list[str] | None]] = {
    "glob": _glob_tokens,
    "regex": _regex_tokens,
    "literal": list,
}


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


def literal_prefixes(patterns: list[str]) -> tuple[str, ...] | None:
    """The text of each glob before its first wildcard (``*``, ``?`` or ``[``): a name that a
    glob matches (anchored, case sensitive) starts with it, so a ``str.startswith`` over many
    names at C speed rules most of them out before a regex is asked. None when some glob
    starts with a wildcard (it can match any name)."""
    prefixes = tuple(_WILDCARD.split(pattern, 1)[0] for pattern in patterns)
    return prefixes if all(prefixes) else None


_WILDCARD = re.compile(r"[*?\[]")


def alternation(patterns: list[str], *, named: bool = False) -> re.Pattern[str]:
    """One regex matching any of ``patterns``; with ``named``, alternative ``i`` is the group
    ``e{i}``, so ``match.lastgroup`` says which pattern matched first."""
    parts = [
        f"(?P<e{i}>{fnmatch.translate(p)})" if named else f"(?:{fnmatch.translate(p)})"
        for i, p in enumerate(patterns)
    ]
    return re.compile("|".join(parts) or "(?!)")
