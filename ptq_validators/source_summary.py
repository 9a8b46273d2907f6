"""What the gate needs of the source checkpoint: sizes, original layer shapes and tensor names.

Read from the source's tensor names without building its layer table, and mostly without
grouping its tensors into modules: only the export's table is built. A source's modules of one
name shape (layer and expert indices masked) nearly always store the same roles with the same
dtypes and shapes, which counting its tensors per (name shape, role, dtype, shape) proves at C
speed; each such template is then recognised once, on one of its modules, and its layers share
the answer. The shapes the counts do not prove alike are read module by module
(``layers.original_layers``), with the same result; so is a whole source that is mostly unalike,
or one where a name may not split into module and role at its last dot (a fused expert
parameter, which ``layers.split_role`` cuts elsewhere).
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from itertools import compress, count, repeat
from typing import Any

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.formats import read_declaration
from ptq_validators.formats.base import Declaration, Hints, Module
from ptq_validators.formats.roles import QUANTIZATION_ROLES
from ptq_validators.globs import index_key, name_shapes
from ptq_validators.io.safetensors import INFO_LAYOUT, TensorInfo, numbered_layout
from ptq_validators.layers import (
    SHARED_ROLES,
    essential_names,
    is_layer,
    module_class,
    original_layers,
    original_shape,
    read_documents,
)
from ptq_validators.model_config import num_hidden_layers
from ptq_validators.taxonomy import LayerGroup, classify_template, mtp_flags


@dataclass(frozen=True)
class SourceSummary:
    """Sizes, original layer shapes and tensor names of the source checkpoint."""

    weight_bytes: int
    parameters: int
    shapes: dict[str, tuple[int, ...]]
    essential_names: tuple[str, ...]  # the names the export must keep, in table order
    other_names: tuple[str, ...]  # the rest of the names (its quantization tensors), in table order
    # The roles of ``other_names``, each a name's last component (an export that holds such a
    # name gives it that role too); None when some name's role is read otherwise.
    other_roles: frozenset[str] | None

    # Sets made on first use (the names check of an export that keeps every essential name and
    # none of the others never builds ``other_set``).
    @cached_property
    def essential_set(self) -> frozenset[str]:
        return frozenset(self.essential_names)

    @cached_property
    def other_set(self) -> frozenset[str]:
        return frozenset(self.other_names)

    @property
    def tensor_names(self) -> frozenset[str]:
        """Every tensor name of the source."""
        return self.essential_set | self.other_set


def summarize(source: Checkpoint) -> SourceSummary:
    """Read what the gate uses from the already opened ``source``'s layers."""
    summary = _summarize_by_template(source)
    if summary is not None:
        return summary
    found = original_layers(source)
    return SourceSummary(
        source.weight_bytes,
        found.parameters,
        found.shapes,
        *essential_names(found.grouping),
        other_roles=None,  # roles read by grouping, some of them not a name's last component
    )


_FIRST, _LAST = operator.itemgetter(0), operator.itemgetter(-1)


def _summarize_by_template(source: Checkpoint) -> SourceSummary | None:
    """``summarize``'s answer with one module per name shape recognised (the modules of the
    shapes the counts do not prove alike are read one by one), or None when a tensor name does
    not split into module and role at its last dot."""
    names, infos = source.names, source.infos
    split = list(map(str.rpartition, names, repeat(".")))
    roles: list[Any] = list(map(SHARED_ROLES.get, map(_LAST, split)))
    for at in compress(range(len(names)), map(operator.is_, roles, repeat(None))):
        prefix, _, leaf = split[at]
        if leaf.startswith("_svdquant_lora_") or prefix.rpartition(".")[2] == "experts":
            return None  # split_role may give it another module (a fused expert parameter)
        roles[at] = leaf  # a buffer such as e_score_correction_bias: its own role
    prefixes = list(map(_FIRST, split))
    del split
    modules = list(dict.fromkeys(prefixes))  # in the order of their first tensor
    if "" in modules:  # "weight" and ".weight" would both be role weight of module ""
        return None
    module_shapes = name_shapes(modules)
    shape_of = dict(zip(modules, module_shapes, strict=True))
    tensor_shapes = list(map(shape_of.__getitem__, prefixes))
    del prefixes, shape_of
    # Tensor names are unique and each is its module, a dot and its role: a module holds a role
    # at most once. So when every (shape, role, layout) of a name shape counts as many tensors
    # as the shape has modules, each of those modules holds each of its roles, in that layout
    # (the role has no other): one module speaks for all.
    layouts = Counter(zip(tensor_shapes, roles, map(INFO_LAYOUT, infos), strict=True))
    modules_of = Counter(module_shapes)
    roles_of: dict[str, list[str]] = {}
    for shape, role, _ in layouts:
        roles_of.setdefault(shape, []).append(role)
    mixed = {shape for (shape, _, _), tensors_of in layouts.items() if tensors_of != modules_of[shape]}
    if 2 * sum(map(modules_of.__getitem__, mixed)) > len(modules):
        return None  # mostly unalike (an export with some layers excluded): module by module
    first = dict(zip(reversed(module_shapes), reversed(modules), strict=True))  # shape → first module
    tensors = _tensors_named(
        {f"{name}.{role}" for shape, name in first.items() for role in roles_of[shape]}, source
    )
    layer_shapes = {
        shape
        for shape, name in first.items()
        if shape not in mixed and is_layer(_module(name, roles_of[shape], tensors))
    }
    picked = list(map(layer_shapes.__contains__, module_shapes))
    layer_names = list(compress(modules, picked))
    found = _original_shapes(source, layer_names, list(compress(module_shapes, picked)), roles_of, tensors)
    shapes = dict(zip(layer_names, map(_FIRST, found), strict=True))
    # Parameters: each layer's original elements and biases, and every tensor of the modules
    # that are no layer (norms, routers' biases, buffers).
    parameters = sum(map(_LAST, found)) + sum(
        tensor_count * math.prod(numbered_layout(layout)[1])
        for (shape, _, layout), tensor_count in layouts.items()
        if shape not in layer_shapes and shape not in mixed
    )
    if mixed:  # the modules of these shapes one by one
        of_mixed = list(map(mixed.__contains__, tensor_shapes))
        apart = original_layers(source, (list(compress(names, of_mixed)), list(compress(infos, of_mixed))))
        shapes.update(apart.shapes)
        parameters += apart.parameters
    essential: tuple[str, ...] = tuple(names)
    others: tuple[str, ...] = ()
    other_roles: frozenset[str] = frozenset()  # here every role is its name's last component
    if not QUANTIZATION_ROLES.isdisjoint(roles):
        quantization = list(map(QUANTIZATION_ROLES.__contains__, roles))
        essential = tuple(compress(names, map(operator.not_, quantization)))
        others = tuple(compress(names, quantization))
        other_roles = frozenset(compress(roles, quantization))
    return SourceSummary(source.weight_bytes, parameters, shapes, essential, others, other_roles)


def _original_shapes(
    source: Checkpoint,
    layer_names: list[str],
    layer_shapes: list[str],
    roles_of: dict[str, list[str]],
    tensors: dict[str, TensorInfo],
) -> list[tuple[tuple[int, ...], int]]:
    """(original shape, elements with biases) of each of ``layer_names`` (``layer_shapes``: their
    name shapes, each with its roles' layout in ``roles_of``), recognised once per name shape,
    MTP flag and declaration key, on the first layer that has them. ``tensors``: those of the
    first module of each name shape, by name."""
    documents = read_documents(source)
    declaration = read_declaration(documents)
    if declaration.uniform:
        declared = declaration.declared("")
        hints = Hints(declaration.declared_bits(""), declared.group_size, None, declared.block)
        found = {  # the first layer of a name shape is its first module: its tensors are known
            shape: original_shape(_module(name, roles_of[shape], tensors), hints)
            for shape, name in dict(zip(reversed(layer_shapes), reversed(layer_names), strict=True)).items()
        }
        return list(map(found.__getitem__, layer_shapes))
    depth = num_hidden_layers(documents.get("config.json") or {})
    keys = zip(
        layer_shapes,
        mtp_flags(layer_names, layer_shapes, depth),
        declaration.instance_keys(layer_names),
        strict=True,
    )
    first: dict[tuple[Any, ...], int] = {}
    positions = list(map(first.setdefault, keys, count()))
    # The first layer of each key need not be its shape's first module (an MTP layer's is not).
    judged_tensors = _tensors_named(
        {f"{layer_names[at]}.{role}" for (shape, _, _), at in first.items() for role in roles_of[shape]},
        source,
    )
    judged = {
        at: _declared_original_shape(
            declaration, layer_names[at], mtp, _module(layer_names[at], roles_of[shape], judged_tensors)
        )
        for (shape, mtp, _), at in first.items()
    }
    return list(map(judged.__getitem__, positions))


def _declared_original_shape(
    declaration: Declaration, name: str, mtp: bool, module: Module
) -> tuple[tuple[int, ...], int]:
    """``layers.original_shape`` with the hints the declaration gives the layer ``name``."""
    template = index_key(name)
    group = LayerGroup.MTP if mtp else classify_template(template)
    declared = declaration.declared(name, module_class=module_class(template, group))
    return original_shape(
        module, Hints(declaration.declared_bits(name), declared.group_size, None, declared.block)
    )


def _tensors_named(wanted: set[str], source: Checkpoint) -> dict[str, TensorInfo]:
    """The tensors of ``source`` named in ``wanted``, by name, found in one pass at C speed: a
    few dozen modules are looked at, and a dict of all 90k names would cost more."""
    return dict(
        compress(zip(source.names, source.infos, strict=True), map(wanted.__contains__, source.names))
    )


def _module(name: str, roles: list[str], tensors: dict[str, TensorInfo]) -> Module:
    """Module ``name`` with its tensors of ``roles``."""
    return Module(name, {role: tensors[f"{name}.{role}"] for role in roles})
