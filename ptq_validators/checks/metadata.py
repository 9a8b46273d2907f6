"""Metadata drift between the source checkpoint and the export (config, tokenizer, chat
template, special tokens, generation config, sidecar files).

Pure functions over parsed documents: each returns ``MetadataDiff`` rows classified
``expected`` (the export is meant to change it, or a save-time stamp changed), ``warning`` or
``blocking`` (serving would behave differently: context length, rope, vocabulary, template,
sampling defaults, eos ids). Which key is which lives in one data file,
``checks/data/metadata_rules.yaml``, with the reason for each rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

EXPECTED, WARNING, BLOCKING = "expected", "warning", "blocking"

RULES_FILE = "metadata_rules.yaml"
_MAX_VALUE_CHARS = 120


@dataclass(frozen=True)
class MetadataDiff:
    """One differing key. ``source``/``output`` are the values (summarised when large)."""

    file: str
    key: str
    source: Any
    output: Any
    classification: str

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "key": self.key,
            "source": self.source,
            "output": self.output,
            "classification": self.classification,
        }


Classifier = Callable[[str], str]


def diff_documents(
    file: str,
    source: dict[str, Any],
    output: dict[str, Any],
    classify: Classifier,
    *,
    depth: int = 2,
    prefix: str = "",
) -> list[MetadataDiff]:
    """Key-by-key differences, descending ``depth`` levels into nested objects; ``classify``
    receives the key path (``text_config.rope_theta``) and returns the classification."""
    diffs: list[MetadataDiff] = []
    for key in sorted(set(source) | set(output)):
        path = f"{prefix}{key}"
        src, out = source.get(key, _MISSING), output.get(key, _MISSING)
        if src == out:
            continue
        if depth > 1 and isinstance(src, dict) and isinstance(out, dict):
            diffs.extend(diff_documents(file, src, out, classify, depth=depth - 1, prefix=f"{path}."))
            continue
        diffs.append(MetadataDiff(file, path, _show(src), _show(out), classify(path)))
    return diffs


@dataclass(frozen=True)
class Rules:
    """The key lists of one document family in ``metadata_rules.yaml``."""

    expected: frozenset[str]
    warning: frozenset[str]
    blocking: frozenset[str]

    def classify(self, path: str) -> str:
        """``expected`` / ``warning`` / ``blocking`` for key ``path`` (matched on its first or
        last part; unlisted keys warn)."""
        parts = path.split(".")
        ends = {parts[0], parts[-1]}
        if ends & self.expected:
            return EXPECTED
        if ends & self.warning:
            return WARNING
        return BLOCKING if ends & self.blocking else WARNING


@cache
def rules(family: str) -> Rules:
    """The rules of ``family`` (``config``, ``tokenizer`` or ``generation``) from the data file."""
    from ptq_validators.datafiles import load_data

    section = load_data("checks", RULES_FILE)[family]
    return Rules(*(frozenset(section.get(kind) or []) for kind in (EXPECTED, WARNING, BLOCKING)))


def classify_config(path: str) -> str:
    return rules("config").classify(path)


def classify_tokenizer(path: str) -> str:
    return rules("tokenizer").classify(path)


def classify_generation(path: str) -> str:
    return rules("generation").classify(path)


def classify_strict(path: str) -> str:
    return BLOCKING


def diff_vocabulary(file: str, source: dict[str, Any], output: dict[str, Any]) -> list[MetadataDiff]:
    """tokenizer.json: vocabulary and merges summarised as counts, other keys by value."""
    diffs: list[MetadataDiff] = []
    src_model, out_model = source.get("model") or {}, output.get("model") or {}
    for key in ("vocab", "merges"):
        src, out = src_model.get(key), out_model.get(key)
        if src != out:
            diffs.append(
                MetadataDiff(
                    file, f"model.{key}", _summarise_collection(src), _summarise_change(src, out), BLOCKING
                )
            )
    rest_src = {k: v for k, v in source.items() if k != "model"}
    rest_out = {k: v for k, v in output.items() if k != "model"}
    rest_src["model"] = {k: v for k, v in src_model.items() if k not in ("vocab", "merges")}
    rest_out["model"] = {k: v for k, v in out_model.items() if k not in ("vocab", "merges")}
    diffs.extend(diff_documents(file, rest_src, rest_out, classify_tokenizer, depth=1))
    return diffs


def _summarise_collection(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return f"{len(value)} entries"
    return _show(value)


def _summarise_change(src: Any, out: Any) -> Any:
    if isinstance(src, dict) and isinstance(out, dict):
        added = len(out.keys() - src.keys())
        removed = len(src.keys() - out.keys())
        changed = sum(1 for k in src.keys() & out.keys() if src[k] != out[k])
        return f"{len(out)} entries ({added} added, {removed} removed, {changed} changed)"
    if isinstance(src, list) and isinstance(out, list):
        differing = sum(1 for a, b in zip(src, out, strict=False) if a != b) + abs(len(src) - len(out))
        return f"{len(out)} entries ({differing} differ)"
    return _summarise_collection(out)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _show(value: Any) -> Any:
    """JSON-safe, length-capped rendering of a value for reports."""
    if value is _MISSING:
        return None
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) <= _MAX_VALUE_CHARS:
        return value
    return text[: _MAX_VALUE_CHARS - 1] + "…"
