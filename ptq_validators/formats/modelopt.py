"""NVIDIA ModelOpt unified Hugging Face exports (docs/formats.md §2).

Stored: ``weight U8`` beside an ``F8_E4M3`` block scale is NVFP4 (packed along IN; BMM experts
keep the transposed ``[E, in/2, out]`` layout), beside an E8M0 scale it is MXFP4, and beside a
float scale with twice the rows it is INT4-AWQ (packed along OUT). FP8/INT8 layouts are shared
with other producers (``scaled.py``).

Declared: ``hf_quant_config.json`` (preferred: it keeps ``group_size`` and ``quantized_layers``)
or the ``quantization_config`` ModelOpt writes into ``config.json``. A single ``quant_algo``
applies to every module not matched by an ``exclude_modules`` wildcard (fnmatch, ``*`` crosses
dots); ``MIXED_PRECISION`` lists quantized modules in ``quantized_layers`` and everything else
is unquantized.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, repeat
from typing import Any

from ptq_validators.formats.base import Declaration, Declared, Hints, Module, Stored
from ptq_validators.formats.scaled import E8M0_DTYPES
from ptq_validators.globs import alternation, index_free, index_key, literal_prefixes
from ptq_validators.io.safetensors import FLOAT_DTYPES, TensorInfo
from ptq_validators.precision import NO_ACTIVATION, Activation, Precision

FAMILY = "modelopt"


@dataclass(frozen=True)
class AlgoSpec:
    """What one ``quant_algo`` stores: weight precision, default group size, the tensors
    every quantized module carries beside its weight (docs/formats.md §2.1) and the activation
    side (a static one stores ``input_scale``)."""

    precision: Precision
    group_size: int | None
    roles: frozenset[str]
    activation: Activation = NO_ACTIVATION


def _spec(precision: Precision, group: int | None, *roles: str, act: str = "none") -> AlgoSpec:
    return AlgoSpec(precision, group, frozenset(roles), Activation.parse(act))


# Lower-case passthrough spellings (fp8_pb_wo, mxfp4) are matched case-insensitively.
QUANT_ALGOS: dict[str, AlgoSpec] = {
    "FP8": _spec(Precision.FP8, None, "weight_scale", "input_scale", act="FP8 static"),
    "FP8_PER_CHANNEL_PER_TOKEN": _spec(Precision.FP8_PER_CHANNEL, None, "weight_scale", act="FP8 dynamic"),
    "FP8_PB_WO": _spec(Precision.FP8_BLOCK, 128, "weight_scale"),
    "FP8_PB_REAL": _spec(Precision.FP8_BLOCK, 128, "weight_scale", act="FP8 dynamic"),
    "W8A8_SQ_PER_CHANNEL": _spec(Precision.INT8, None, "weight_scale", "input_scale", act="INT8 static"),
    "W8A16": _spec(Precision.INT8, None, "weight_scale"),
    "W4A16_AWQ": _spec(Precision.INT4, 128, "weight_scale"),
    "W4A8_AWQ": _spec(Precision.INT4, 128, "weight_scale", "weight_scale_2", "input_scale", act="FP8 static"),
    "NVFP4": _spec(Precision.NVFP4, 16, "weight_scale", "weight_scale_2", "input_scale", act="FP4 static"),
    "NVFP4_AWQ": _spec(
        Precision.NVFP4, 16, "weight_scale", "weight_scale_2", "input_scale", act="FP4 static"
    ),
    "NVFP4_SVD": _spec(
        Precision.NVFP4, 16, "weight_scale", "weight_scale_2", "input_scale", act="FP4 static"
    ),
    "W4A16_NVFP4": _spec(Precision.NVFP4, 16, "weight_scale", "weight_scale_2"),
    "W4A8_NVFP4_FP8": _spec(
        Precision.NVFP4, 32, "weight_scale", "weight_scale_2", "input_scale", act="FP8 static"
    ),
    "MXFP8": _spec(Precision.MXFP8, 32, "weight_scale", act="MXFP8 dynamic"),
    "MXFP4": _spec(Precision.MXFP4, 32, "weight_scale", act="MXFP4 dynamic"),
    "W4A8_MXFP4_FP8": _spec(Precision.MXFP4, 32, "weight_scale", "input_scale", act="FP8 static"),
}
_UNKNOWN_ALGO = _spec(Precision.UNKNOWN, None)


def recognize(module: Module, hints: Hints) -> Stored | None:
    """ModelOpt's packed 4-bit layouts (``weight U8`` or ``F4``); None for anything else."""
    weight = module.get("weight")
    scale = module.get("weight_scale")
    if weight is None or scale is None or weight.dtype not in ("U8", "F4") or len(weight.shape) < 2:
        return None
    if scale.dtype == "F8_E4M3":
        return _fp4(weight, scale, Precision.NVFP4)
    if scale.dtype in E8M0_DTYPES:
        return _fp4(weight, scale, Precision.MXFP4)
    if scale.dtype in FLOAT_DTYPES and weight.dtype == "U8":
        return _int4_awq(weight, scale)
    return None


def _fp4(weight: TensorInfo, scale: TensorInfo, precision: Precision) -> Stored:
    """E2M1 pairs packed along the contraction dim: the last dim, or dim -2 for BMM experts."""
    logical = weight.dtype == "F4"
    w, s = weight.shape, scale.shape
    packed_axis = -1
    if len(s) == len(w) and s[-2] != w[-2] and s[-1] == w[-1]:
        packed_axis = -2  # BMM experts: [E, in/2, out] with scale [E, in/16, out]
    unpacked = list(w)
    if not logical:
        unpacked[packed_axis] *= 2
    problems = []
    cells = s[packed_axis] if len(s) == len(w) else 0
    group = unpacked[packed_axis] // cells if cells and unpacked[packed_axis] % cells == 0 else None
    if group is None or len(s) != len(w):
        problems.append(f"weight_scale {list(s)} does not tile weight {list(w)}")
    return Stored(precision, tuple(unpacked), group, problems, contraction_axis=packed_axis)


def _int4_awq(weight: TensorInfo, scale: TensorInfo) -> Stored:
    """INT4 packed along OUT: ``U8 [out/2, in]`` with ``weight_scale [out, in/g]``."""
    w, s = weight.shape, scale.shape
    shape = (*w[:-2], 2 * w[-2], w[-1])
    problems = []
    group = None
    if len(s) != len(w) or s[-2] != shape[-2] or s[-1] == 0 or shape[-1] % s[-1]:
        problems.append(f"weight_scale {list(s)} does not match INT4 weight {list(w)}")
    else:
        group = shape[-1] // s[-1]
    return Stored(Precision.INT4, shape, group, problems)


def algo_spec(quant_algo: str) -> AlgoSpec:
    """What ``quant_algo`` stores (precision UNKNOWN when the algorithm is unknown)."""
    return QUANT_ALGOS.get(str(quant_algo).upper(), _UNKNOWN_ALGO)


class ModelOptDeclaration(Declaration):
    """The ModelOpt quantization block, nested (hf_quant_config.json) or flat (config.json)."""

    family = FAMILY

    def __init__(self, block: dict[str, Any], origin: str) -> None:
        self.origin = origin
        self.quant_algo = block.get("quant_algo")
        self.kv_cache_quant_algo = block.get("kv_cache_quant_algo")
        self.kv_cache = str(self.kv_cache_quant_algo) if self.kv_cache_quant_algo else None
        self.group_size = block.get("group_size")
        excludes = block.get("exclude_modules", block.get("ignore")) or []
        self.exclude_modules = [p for p in excludes if isinstance(p, str)]
        # One alternation of the translated globs: a 671B export asks this ~50k times.
        self._excluded = alternation(self.exclude_modules) if self.exclude_modules else None
        self._index_free = index_free(self.exclude_modules)
        self._single_declared: Declared | None = None
        layers = block.get("quantized_layers") or {}
        self.quantized_layers = layers if isinstance(layers, dict) else {}
        # Only entries whose digits can tell layers or experts apart (``model.layers.61*``)
        # need a layer's full name; the first of them that matches keys its declaration.
        sensitive = [p for p in self.exclude_modules if not index_free([p])]
        self._sensitive = alternation(sensitive, named=True) if sensitive else None
        self._sensitive_prefixes = literal_prefixes(sensitive)
        self.summary = {
            "family": FAMILY,
            "origin": origin,
            "quant_algo": self.quant_algo,
            "kv_cache_quant_algo": self.kv_cache_quant_algo,
            "group_size": self.group_size,
            "exclude_modules": self.exclude_modules,
            "quantized_layers": len(self.quantized_layers),
        }

    def exclusion_patterns(self) -> list[str]:
        return list(self.exclude_modules)

    def pattern_matches(self, pattern: str, module_name: str, module_class: str | None = None) -> bool:
        return _glob(pattern).match(module_name) is not None  # fnmatch.fnmatchcase

    def pattern_index_free(self, pattern: str) -> bool:
        return index_free([pattern])  # fnmatch globs

    def matching(self, pattern: str, names: Iterable[str], classes: Iterable[str]) -> Iterator[bool]:
        return map(bool, map(_glob(pattern).match, names))  # one regex, mapped at C speed

    def _exclusion(self, module_name: str) -> str | None:
        """The exclude entry matching ``module_name`` (None when none does). Globs that cannot
        tell indices apart (``index_free``) are asked once per name template (``index_key``)."""
        if self._excluded is None:
            return None
        return self._exclusion_of(index_key(module_name) if self._index_free else module_name)

    @lru_cache(maxsize=8192)  # noqa: B019 -- one declaration per checkpoint, alive for the run
    def _exclusion_of(self, module_name: str) -> str | None:
        if self._excluded is None or not self._excluded.match(module_name):
            return None
        return next(p for p in self.exclude_modules if fnmatch.fnmatchcase(module_name, p))

    def instance_key(self, module_name: str) -> Hashable:
        """The first digit-sensitive exclude entry that matches (None: none does); the other
        entries answer alike for every name of one template. MIXED_PRECISION declares each
        module by its full name."""
        if str(self.quant_algo).upper() == "MIXED_PRECISION":
            return module_name
        match = self._sensitive.match(module_name) if self._sensitive is not None else None
        return None if match is None else match.lastgroup

    def instance_keys(self, module_names: list[str]) -> list[Hashable]:
        if str(self.quant_algo).upper() == "MIXED_PRECISION":
            return list(module_names)
        if self._sensitive is None:
            return [None] * len(module_names)  # no entry tells one name of a template from another
        if self._sensitive_prefixes is None:
            return [match and match.lastgroup for match in map(self._sensitive.match, module_names)]
        # Usually few names can match (``model.layers.61*``: the MTP layer's): only names that
        # start like an entry are asked.
        keys: list[Hashable] = [None] * len(module_names)
        hits = map(str.startswith, module_names, repeat(self._sensitive_prefixes))
        for at in compress(range(len(module_names)), hits):
            match = self._sensitive.match(module_names[at])
            keys[at] = match and match.lastgroup
        return keys

    def declared(self, module_name: str, *, module_class: str | None = None) -> Declared:
        pattern = self._exclusion(module_name)
        if pattern is not None:
            return _excluded(pattern)
        if str(self.quant_algo).upper() == "MIXED_PRECISION":
            entry = self.quantized_layers.get(module_name)
            if not isinstance(entry, dict):
                return _ABSENT
            spec = algo_spec(entry.get("quant_algo", ""))
            return Declared(
                spec.precision,
                entry.get("group_size", spec.group_size),
                f"quantized_layers {entry.get('quant_algo')}",
                spec.roles,
                activation=spec.activation,
            )
        return self._single

    @property
    def _single(self) -> Declared:
        """The one declaration every non-excluded module shares (built once)."""
        if self._single_declared is None:
            if not self.quant_algo:
                self._single_declared = Declared(None, None, "quant_algo is null")
            else:
                spec = algo_spec(self.quant_algo)
                self._single_declared = Declared(
                    spec.precision,
                    self.group_size or spec.group_size,
                    f"quant_algo {self.quant_algo}",
                    spec.roles,
                    activation=spec.activation,
                )
        return self._single_declared


_ABSENT = Declared(None, None, "absent from quantized_layers")


@lru_cache(maxsize=256)
def _excluded(pattern: str) -> Declared:
    return Declared(None, None, f"exclude_modules {pattern!r}")


def read_declaration(documents: dict[str, Any]) -> ModelOptDeclaration | None:
    """From ``hf_quant_config.json`` when present, else ``config.json``'s modelopt block."""
    hf_quant = documents.get("hf_quant_config.json")
    if isinstance(hf_quant, dict):
        block = hf_quant.get("quantization", hf_quant)
        if isinstance(block, dict):
            return ModelOptDeclaration(block, "hf_quant_config.json")
    quant_config = (documents.get("config.json") or {}).get("quantization_config")
    if isinstance(quant_config, dict) and quant_config.get("quant_method") == "modelopt":
        return ModelOptDeclaration(quant_config, "config.json quantization_config")
    return None


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """A glob as fnmatchcase matches it (``*`` crosses dots, anchored, case sensitive)."""
    return re.compile(fnmatch.translate(pattern))
