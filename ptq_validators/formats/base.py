"""What a format adapter provides: the precision a checkpoint declares for a module, and the
precision its stored tensors show.

A ``Module`` is the set of tensors that share a module prefix, keyed by role (``weight``,
``weight_scale``, ``input_scale`` ...). Each adapter module in this package offers
``recognize(module, hints) -> Stored | None`` (the stored precision, group size and original
shape, or None when the tensors are not of its family) and, where the family has metadata, a
``Declaration`` read once from the checkpoint that answers ``declared(module_name)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, NamedTuple

from ptq_validators.formats.roles import ANCHOR_ROLES
from ptq_validators.io.safetensors import TensorInfo
from ptq_validators.precision import Activation, Precision


class Module(NamedTuple):
    """Tensors sharing one module prefix, by role. ``fused`` marks a fused 3-D expert parameter.

    A NamedTuple, so that grouping a 671B export's ~46k modules builds them in C (a class with
    an ``__init__`` costs a Python call each); the tensors dict is not changed once grouped."""

    name: str
    tensors: dict[str, TensorInfo]
    fused: bool = False

    @property
    def anchor(self) -> TensorInfo | None:
        """The tensor that stores the weight itself (packed or not), if any."""
        for role in ANCHOR_ROLES:
            if role in self.tensors:
                return self.tensors[role]
        return None

    def get(self, role: str) -> TensorInfo | None:
        return self.tensors.get(role)


@dataclass
class Stored:
    """What the tensors show: precision, group size, original shape, and structure problems.
    ``block`` is the 2-D block of block-wise scales; ``contraction_axis`` the axis of the
    original shape that is reduced in the matmul (the last one, except for BMM experts)."""

    precision: Precision
    shape: tuple[int, ...]
    group_size: int | None = None
    problems: list[str] = field(default_factory=list)
    note: str | None = None
    block: tuple[int, int] | None = None
    contraction_axis: int = -1

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Declared:
    """What the metadata says about one module. ``precision`` None: declared unquantized.
    ``required_roles`` are the tensors the declared format must store beside the weight
    (``weight_scale``, ``input_scale`` for static activations ...). ``activation`` is the
    declared activation side (None: the metadata says nothing about it)."""

    precision: Precision | None
    group_size: int | None
    rule: str
    required_roles: frozenset[str] = frozenset()
    block: tuple[int, int] | None = None  # the declared [rows, cols] block of block-wise scales
    activation: Activation | None = None


class Hints(NamedTuple):
    """What recognition may lean on beyond the tensors: the declaration for this module and the
    original weight shape from the source checkpoint (needed for INT packing widths). A
    NamedTuple: one is made per layer, and it keys the layout cache."""

    declared_bits: int | None = None
    declared_group_size: int | None = None
    source_shape: tuple[int, ...] | None = None
    declared_block: tuple[int, int] | None = None


class Declaration(ABC):
    """A checkpoint's quantization metadata, parsed once."""

    family: str
    summary: dict[str, Any]
    #: The KV-cache quantization the metadata declares (e.g. ``FP8``); None when it declares none.
    kv_cache: str | None = None
    #: ``declared`` and ``declared_bits`` give every module the same answer (no exclusions, no
    #: per-module entries): a float checkpoint's metadata.
    uniform: bool = False

    @abstractmethod
    def declared(self, module_name: str, *, module_class: str | None = None) -> Declared:
        """The precision the metadata declares for ``module_name``."""

    def declared_bits(self, module_name: str) -> int | None:
        """Declared weight bit width, where it cannot be read from tensors (INT packing)."""
        return None

    def instance_key(self, module_name: str) -> Hashable:
        """What decides ``declared`` and ``declared_bits`` for ``module_name`` besides its name
        template (``index_key``: layer and expert indices masked) and module class: names of
        one template and class with equal keys get equal answers, so the layer table asks once
        per distinct key. The name itself unless a family knows better (nothing shared)."""
        return module_name

    def instance_keys(self, module_names: list[str]) -> list[Hashable]:
        """``instance_key`` of each of ``module_names`` (a family whose answer is one for
        every name says so without a call per name)."""
        return list(map(self.instance_key, module_names))

    def exclusion_patterns(self) -> list[str]:
        """The exclude / ignore entries as written (empty when the family has none)."""
        return []

    def pattern_matches(self, pattern: str, module_name: str, module_class: str | None = None) -> bool:
        """Whether one exclusion entry matches a module, with the family's own semantics."""
        return False

    def pattern_index_free(self, pattern: str) -> bool:
        """Whether ``pattern_matches`` gives one exclusion entry the same answer for every name
        of one ``index_key`` (and module class), as ``globs.index_free`` proves it in the syntax
        the family reads the entry in. False unless a family says (asked name by name: always
        right, only slower)."""
        return False

    def matching(self, pattern: str, names: Iterable[str], classes: Iterable[str]) -> Iterator[bool]:
        """``pattern_matches`` for each of ``names`` with its module class, in turn (a family
        whose entries compile to one regex answers tens of thousands at C speed)."""
        return map(bool, map(self.pattern_matches, repeat(pattern), names, classes))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
