"""The layer table: every linear-like weight of a checkpoint with its group, the tensors that
store it, the precision found on disk, the precision the metadata declares, and exact bits.

Rows are built from headers only. Each row has a kind (``LayerKind``): what it shares with the
layers named like it (layer and expert indices masked) and stored alike, worked out once per
kind, so a MoE export's tens of thousands of layers cost a few dozen judgements and a key each.
A row's ``status`` compares found with declared, weight and
activation side: ``ok``, ``unexpected_unquantized`` (declared quantized, stored in float),
``quantized_but_excluded`` (stored quantized, declared unquantized), ``declaration_mismatch``
(both quantized, different format or group size, or a static activation declared without its
stored input scale, or the reverse), ``fake_quant`` (float weight beside scales) or
``unrecognized``.
"""

from __future__ import annotations

import operator
import re
from collections import Counter, defaultdict, deque
from collections.abc import Hashable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from itertools import compress, count, repeat
from typing import Any, NamedTuple

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.formats import read_declaration, recognize
from ptq_validators.formats.base import (
    Declaration,
    Declared,
    Hints,
    Module,
    Stored,
)
from ptq_validators.formats.roles import (
    AUXILIARY_ROLES,
    FUSED_ROLE_SUFFIXES,
    KNOWN_ROLES,
    QUANTIZATION_ROLES,
    WEIGHT_SIDE_ROLES,
)
from ptq_validators.globs import MASKED_RUN, digit_shapes, index_key, name_shapes
from ptq_validators.io.safetensors import INFO_LAYOUT, TensorInfo
from ptq_validators.model_config import num_hidden_layers
from ptq_validators.precision import NO_ACTIVATION, Activation, Precision, scheme_label
from ptq_validators.taxonomy import LayerGroup, classify_template, mtp_flags

QUANT_DOCUMENTS = ("config.json", "hf_quant_config.json", "quantize_config.json")

_DIGIT_RUNS = re.compile(r"(\d+)")
_EMBEDDING_LEAF = re.compile(r"(?:^|_)(?:embed_tokens|embeddings?|wte|wpe)$")

# The tensors a static activation scale is stored as (ModelOpt / compressed-tensors NVFP4 /
# transformers FP8Linear).
STATIC_INPUT_ROLES = frozenset({"input_scale", "input_global_scale", "activation_scale"})

OK = "ok"
UNEXPECTED_UNQUANTIZED = "unexpected_unquantized"
QUANTIZED_BUT_EXCLUDED = "quantized_but_excluded"
DECLARATION_MISMATCH = "declaration_mismatch"
FAKE_QUANT = "fake_quant"
UNRECOGNIZED = "unrecognized"


@dataclass(slots=True)
class LayerRow:
    """One row of the layer table as it is saved: the one type behind ``plan.json`` rows, the
    gate's and scan's JSON ``layers`` and pre-flight's inventory, so a plan saved before
    calibration loads back as the rows the gate compares the export with.

    ``precision`` is the weight's precision: found on disk (gate, scan), or intended by the
    recipe, else the source's dtype (plan). ``declared*`` say what the governing document wants
    and why: the checkpoint's quantization metadata (gate), the recipe's intent (plan; None:
    left unquantized). ``fused``: the weight is part of a fused 3-D expert parameter, as stored
    (gate) or in the built model (plan: transformers 5 fuses experts that checkpoints store per
    expert). ``activation`` is the activation side (an ``Activation`` label: ``none``,
    ``FP8 static`` ...; None: unknown): the declared kind with the staticness the stored
    tensors show (gate, scan), or the recipe's intent (plan); ``declared_activation`` is the
    governing document's. JSON adds ``scheme``, the pair as the tools name it (``NVFP4A16``).
    Fields a use does not know stay None / empty.
    """

    name: str
    group: LayerGroup
    precision: Precision
    group_size: int | None = None
    activation: str | None = None
    fused: bool = False
    shape: tuple[int, ...] = ()
    module_class: str | None = None
    declared: Precision | None = None
    declared_group_size: int | None = None
    declared_by: str | None = None
    declared_activation: str | None = None
    bits_per_weight: float | None = None
    tensors: tuple[str, ...] = ()
    status: str | None = None
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group.value,
            "precision": self.precision.value,
            "group_size": self.group_size,
            "activation": self.activation,
            "scheme": scheme_label(self.precision, _activation(self.activation)),
            "fused": self.fused,
            "shape": list(self.shape),
            "module_class": self.module_class,
            "declared": self.declared.value if self.declared else None,
            "declared_group_size": self.declared_group_size,
            "declared_by": self.declared_by,
            "declared_activation": self.declared_activation,
            "bits_per_weight": self.bits_per_weight,
            "tensors": list(self.tensors),
            "status": self.status,
            "problems": list(self.problems),
        }

    @classmethod
    def from_json(cls, row: Any) -> LayerRow:
        """The row ``to_json`` wrote (keys past ``name``, ``group`` and ``precision`` may be
        missing: plan files before this row type carried only those and ``group_size``).
        Raises ``ValueError`` naming what is wrong."""
        if not isinstance(row, dict):
            raise ValueError("a layer row is a JSON object")
        try:
            declared = row.get("declared")
            return cls(
                name=_text(row["name"]),
                group=LayerGroup(row["group"]),
                precision=Precision(row["precision"]),
                group_size=_optional_int(row.get("group_size")),
                activation=_activation_label(row.get("activation")),
                fused=bool(row.get("fused", False)),
                shape=tuple(int(d) for d in row.get("shape") or ()),
                module_class=row.get("module_class"),
                declared=Precision(declared) if declared is not None else None,
                declared_group_size=_optional_int(row.get("declared_group_size")),
                declared_by=row.get("declared_by"),
                declared_activation=_activation_label(row.get("declared_activation")),
                bits_per_weight=row.get("bits_per_weight"),
                tensors=tuple(str(t) for t in row.get("tensors") or ()),
                status=row.get("status"),
                problems=tuple(str(p) for p in row.get("problems") or ()),
            )
        except KeyError as exc:
            raise ValueError(f"missing key {exc}") from None
        except TypeError as exc:
            raise ValueError(str(exc)) from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"name {value!r} is not a string")
    return value


def _activation(label: str | None) -> Activation | None:
    return Activation.parse(label) if label is not None else None


def _activation_label(value: Any) -> str | None:
    """A valid activation label or None (``ValueError`` for anything else)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"activation {value!r} is not a string")
    return Activation.parse(value).label


def _optional_int(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{value!r} is not an integer")
    return value


@dataclass(frozen=True, slots=True, eq=False)
class LayerKind:
    """What every layer of one name template (``index_key``: layer and expert indices masked)
    and layout (roles, dtype and shape per role, declaration and recognition hints) shares: the
    group, module class, stored format, declaration, bits and status, worked out once. A 671B
    MoE export has ~46k layers but a few dozen kinds. Compared by identity (one object per
    distinct kind of a table)."""

    template: str
    group: LayerGroup
    module_class: str
    fused: bool
    stored: Stored
    declared: Declared
    roles: tuple[str, ...]  # the roles stored, sorted
    weight_bits: int
    auxiliary_elements: int  # elements of the auxiliary tensors (bias)
    status: str
    static_input: bool
    activation: Activation | None
    scheme: str

    @property
    def precision(self) -> Precision:
        return self.stored.precision

    @property
    def elements(self) -> int:
        return self.stored.elements


def layer_kind(
    template: str,
    group: LayerGroup,
    fused: bool,
    stored: Stored,
    declared: Declared,
    tensors: dict[str, TensorInfo],
    weight_bits: int,
) -> LayerKind:
    """The kind of the layers named like ``template`` that store ``tensors`` (one instance's)
    recognised as ``stored`` and declared as ``declared``: status and activation side judged."""
    static_input = not STATIC_INPUT_ROLES.isdisjoint(tensors)
    activation = stored_activation(stored.precision, declared.activation, static_input)
    return LayerKind(
        template,
        group,
        module_class(template, group),
        fused,
        stored,
        declared,
        tuple(sorted(tensors)),
        weight_bits,
        sum(info.numel for role, info in tensors.items() if role in AUXILIARY_ROLES),
        _status(stored, declared, static_input),
        static_input,
        activation,
        scheme_label(stored.precision, activation),
    )


class Layer(NamedTuple):
    """One linear-like weight (a 2-D weight, or a fused 3-D expert parameter): its name, its
    tensors, and the kind it shares with the layers named and stored like it.

    A NamedTuple, as ``Module`` is, so that a 671B export's ~46k layers are built in C (a
    class with an ``__init__`` costs a Python call each, 80 ms there)."""

    name: str
    kind: LayerKind
    tensors: dict[str, TensorInfo]

    @property
    def group(self) -> LayerGroup:
        return self.kind.group

    @property
    def fused(self) -> bool:
        return self.kind.fused

    @property
    def stored(self) -> Stored:
        return self.kind.stored

    @property
    def declared(self) -> Declared:
        return self.kind.declared

    @property
    def weight_bits(self) -> int:
        return self.kind.weight_bits

    @property
    def status(self) -> str:
        return self.kind.status

    @property
    def precision(self) -> Precision:
        return self.kind.stored.precision

    @property
    def elements(self) -> int:
        return self.kind.stored.elements

    @property
    def module_class(self) -> str:
        """The torch class the declaration and recipes match this weight as."""
        return self.kind.module_class

    @property
    def static_input(self) -> bool:
        """A static activation scale is stored beside the weight."""
        return self.kind.static_input

    @property
    def activation(self) -> Activation | None:
        """The activation side: none for a float weight; else the declared kind, static when
        its scale is stored; None when the metadata says nothing about activations."""
        return self.kind.activation

    @property
    def scheme(self) -> str:
        """The weight/activation pair as the tools name it (``NVFP4``, ``NVFP4A16`` ...)."""
        return self.kind.scheme

    @property
    def bits_per_weight(self) -> Fraction:
        """Exact on-disk bits per original weight element (weight-side tensors only)."""
        elements = self.elements
        return Fraction(self.weight_bits, elements) if elements else Fraction(0)

    def row(self) -> LayerRow:
        kind = self.kind
        stored, declared, elements = kind.stored, kind.declared, kind.stored.elements
        return LayerRow(
            name=self.name,
            group=kind.group,
            precision=stored.precision,
            group_size=stored.group_size,
            activation=kind.activation.label if kind.activation else None,
            fused=kind.fused,
            shape=stored.shape,
            module_class=kind.module_class,
            declared=declared.precision,
            declared_group_size=declared.group_size,
            declared_by=declared.rule,
            declared_activation=declared.activation.label if declared.activation else None,
            # Plain int division is correctly rounded, like float(Fraction), and much cheaper.
            bits_per_weight=round(kind.weight_bits / elements, 6) if elements else 0.0,
            tensors=kind.roles,
            status=kind.status,
            problems=tuple(stored.problems),
        )

    def to_json(self) -> dict[str, Any]:
        return self.row().to_json()


def stored_activation(
    weight: Precision, declared: Activation | None, static_input: bool
) -> Activation | None:
    """The activation side a layer's tensors carry out: none for a float weight, the declared
    kind (static exactly when a static scale is stored), None when nothing is declared."""
    if not weight.is_quantized:
        return NO_ACTIVATION
    if declared is None or declared.dtype is None:
        return declared
    return Activation(declared.dtype, static_input)


def module_class(name: str, group: LayerGroup) -> str:
    """Without a module tree, a 2-D weight is taken to be a torch ``Linear`` and an embedding
    (the token embedding, or a table named like one, e.g. a vision tower's
    ``position_embedding``) an ``Embedding``: the classes the quantizers see for standard models."""
    if group is LayerGroup.EMBED or _embedding_leaf(name.rpartition(".")[2]):
        return "Embedding"
    return "Linear"


@lru_cache(maxsize=4096)  # a model has a few dozen distinct leaves, asked about once per layer
def _embedding_leaf(leaf: str) -> bool:
    return _EMBEDDING_LEAF.search(leaf) is not None


@dataclass
class LayerTable:
    """All layers of one checkpoint, and its tensors grouped by module (layer or not).
    ``names`` and ``kinds`` are the layers' names and kinds as columns, in table order (made
    from ``layers`` when not given): passes over a whole table read these lists, not 46k
    layer objects scattered in memory."""

    layers: list[Layer]
    declaration: Declaration
    grouping: Grouping
    num_hidden_layers: int | None = None
    names: list[str] = field(default_factory=list, repr=False, compare=False)
    kinds: list[LayerKind] = field(default_factory=list, repr=False, compare=False)
    _by_name: dict[str, Layer] | None = field(default=None, init=False, repr=False, compare=False)
    _kind_counts: Counter[LayerKind] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.layers) or len(self.kinds) != len(self.layers):
            self.names, self.kinds = list(map(NAME_OF, self.layers)), list(map(KIND_OF, self.layers))

    @property
    def modules(self) -> dict[str, Module]:
        """Every module by name."""
        return self.grouping.modules

    # The table does not change once built: the indexes below are made once, on first use.
    def by_name(self) -> dict[str, Layer]:
        if self._by_name is None:
            self._by_name = dict(zip(self.names, self.layers, strict=True))
        return self._by_name

    def kind_counts(self) -> Counter[LayerKind]:
        """Layers per kind, in order of first appearance (counted at C speed: the checks
        judge a kind once and weigh it by its count)."""
        if self._kind_counts is None:
            self._kind_counts = Counter(self.kinds)
        return self._kind_counts

    def layers_of(self, kinds: set[LayerKind]) -> list[Layer]:
        """The layers of ``kinds``, in table order (none without a pass over the table)."""
        return list(compress(self.layers, self.of_kinds(kinds))) if kinds else []

    def of_kinds(self, kinds: AbstractSet[LayerKind]) -> list[bool]:
        """Per layer in table order, whether its kind is among ``kinds`` (for ``compress``)."""
        return list(map(kinds.__contains__, self.kinds))

    def precision_counts(self) -> dict[str, int]:
        """Layers per weight precision."""
        counts: Counter[str] = Counter()
        for kind, n in self.kind_counts().items():
            counts[kind.stored.precision.value] += n
        return dict(sorted(counts.items()))

    def scheme_counts(self) -> dict[str, int]:
        """Layers per weight/activation pair (``NVFP4A16``, ``FP8 static`` ...)."""
        counts: Counter[str] = Counter()
        for kind, n in self.kind_counts().items():
            counts[kind.scheme] += n
        return dict(sorted(counts.items()))

    def group_counts(self) -> dict[str, dict[str, int]]:
        """Layers per group and weight/activation pair."""
        counts: dict[str, Counter[str]] = {}
        for kind, n in self.kind_counts().items():
            counts.setdefault(kind.group.value, Counter())[kind.scheme] += n
        return {group: dict(sorted(c.items())) for group, c in sorted(counts.items())}

    @property
    def parameters(self) -> int:
        """Original parameter count (``original_parameters``)."""
        elements = {
            layer.name: layer.kind.stored.elements + layer.kind.auxiliary_elements for layer in self.layers
        }
        return original_parameters(self.modules, elements)


# A layer's (or module's) fields as C-speed getters, for passes over a whole table.
KIND_OF = operator.attrgetter("kind")
NAME_OF = operator.attrgetter("name")
TENSORS_OF = operator.attrgetter("tensors")  # by role


def split_role(tensor_name: str, info: TensorInfo) -> tuple[str, str, bool]:
    """``(module, role, fused)`` of a tensor name.

    ``a.b.weight_scale`` → ``(a.b, weight_scale)``; a fused expert parameter
    ``…experts.gate_up_proj`` → ``(…experts.gate_up_proj, weight, True)`` and its BMM-style
    companions ``…experts.gate_up_proj_weight_scale`` → ``(…experts.gate_up_proj, weight_scale)``.
    Unknown leaves keep their own name as the role.
    """
    prefix, _, leaf = tensor_name.rpartition(".")
    if leaf in KNOWN_ROLES or not prefix:
        return prefix, leaf, False
    if leaf.startswith("_svdquant_lora_") and prefix.endswith(".weight_quantizer"):
        return prefix[: -len(".weight_quantizer")], leaf[1:], False
    if prefix.rpartition(".")[2] == "experts":
        for suffix in FUSED_ROLE_SUFFIXES:
            if leaf.endswith("_" + suffix):
                return f"{prefix}.{leaf[: -len(suffix) - 1]}", suffix, True
        if len(info.shape) >= 3:
            return f"{prefix}.{leaf}", "weight", True
    return prefix, leaf, False


@dataclass
class Grouping:
    """A checkpoint's tensors (its table's two columns: ``names`` and ``infos``) grouped by
    module (``group_modules``), and every tensor's role in the table's order: the checks that
    sort tensors by role read these at C speed. ``shadowed`` marks the tensors no module holds,
    because a later tensor has the same module and role (a module keeps the last); None when
    there is none. ``role_layouts``: every (role, layout number) of a tensor a module holds,
    once the layer table has found them on one module per layout (None before: a check then
    pairs the tensors itself)."""

    modules: dict[str, Module]
    names: list[str]
    infos: list[TensorInfo]
    roles: list[str]
    shadowed: list[bool] | None = None
    role_layouts: frozenset[tuple[str, int]] | None = None
    _held_names: AbstractSet[str] | None = field(default=None, init=False, repr=False, compare=False)

    def held(self) -> tuple[list[str], list[str]]:
        """Names and roles of the tensors the modules hold, in the table's order."""
        if self.shadowed is None:
            return self.names, self.roles
        kept = list(map(operator.not_, self.shadowed))
        return list(compress(self.names, kept)), list(compress(self.roles, kept))

    def role_set(self) -> set[str]:
        """The distinct roles of the tensors the modules hold (from ``role_layouts`` when known)."""
        if self.role_layouts is not None and self.shadowed is None:
            return {role for role, _ in self.role_layouts}
        return set(self.held()[1])

    def held_names(self) -> AbstractSet[str]:
        """The names of the tensors the modules hold, as a set (made on first use: a check that
        proves what it needs by counting never asks)."""
        if self._held_names is None:
            self._held_names = frozenset(self.held()[0])
        return self._held_names


_CHUNK = 16384  # names split at a time: a 671B export's split names at once would be ~40 MB
SHARED_ROLES = {role: role for role in KNOWN_ROLES}  # one string per role, shared by every module


def group_modules(every_name: list[str], every_info: list[TensorInfo]) -> Grouping:
    """Group the tensors ``every_name`` names (``every_info``: theirs, in that order) by module
    prefix (``split_role``), modules in the order of their first tensor, each module's roles in
    tensor order."""
    # Each module's tensors by role, the dict made when its first tensor is met: one lookup
    # per tensor, at C speed.
    held: defaultdict[str, dict[str, TensorInfo]] = defaultdict(dict)
    roles: list[str] = []
    fused: set[str] = set()
    for start in range(0, len(every_name), _CHUNK):
        names, infos = every_name[start : start + _CHUNK], every_info[start : start + _CHUNK]
        # Nearly every name ends in a known role after its last dot: split_role's answer, taken
        # a chunk of names at a time in C; only the others are split one by one.
        split = list(map(str.rpartition, names, repeat(".")))
        prefixes = list(map(_FIRST, split))
        leaves: list[Any] = list(map(SHARED_ROLES.get, map(_LAST, split)))
        for i in compress(range(len(names)), map(operator.is_, leaves, repeat(None))):
            prefixes[i], leaves[i], is_fused = split_role(names[i], infos[i])
            if is_fused:
                fused.add(prefixes[i])
        deque(map(operator.setitem, map(held.__getitem__, prefixes), leaves, infos), maxlen=0)
        roles += leaves
    flags = list(map(fused.__contains__, held)) if fused else [False] * len(held)
    rows = zip(held, held.values(), flags, strict=True)
    modules = dict(zip(held, map(tuple.__new__, repeat(Module), rows), strict=True))
    grouping = Grouping(modules, every_name, every_info, roles)
    if sum(map(len, map(TENSORS_OF, modules.values()))) != len(roles):
        grouping.shadowed = [
            modules[split_role(name, info)[0]].tensors[role] is not info
            for name, info, role in zip(every_name, every_info, roles, strict=True)
        ]
    return grouping


_FIRST, _LAST = operator.itemgetter(0), operator.itemgetter(-1)
_FUSED = operator.attrgetter("fused")


def is_layer(module: Module) -> bool:
    """A linear-like weight: a 2-D anchor, or a 3-D+ anchor of a fused expert parameter."""
    anchor = module.anchor
    if anchor is None:
        return False
    rank = len(anchor.shape)
    return rank == 2 or (rank >= 3 and (module.fused or ".experts." in f".{module.name}."))


def _layouts(shapes: list[str], modules: list[Module]) -> list[int]:
    """For each of ``modules`` (``shapes``: their ``name_shapes``), the position of the first
    module laid out alike: same name shape, fused flag, and roles with their layouts (dtype and
    shape, by number) in order. Such modules are one layer or none, of one template; the first
    stands for them. Keyed at C speed, no call per module."""
    tensors = list(map(TENSORS_OF, modules))
    values: Any = list(map(dict.values, tensors))
    keys = zip(
        shapes,
        map(_FUSED, modules),
        map(tuple, tensors),
        map(tuple, map(map, repeat(INFO_LAYOUT), values)),
        strict=True,
    )
    first: dict[tuple[Any, ...], int] = {}
    return list(map(first.setdefault, keys, count()))


def read_documents(checkpoint: Checkpoint) -> dict[str, Any]:
    return {name: checkpoint.json_document(name) for name in QUANT_DOCUMENTS}


def essential_names(grouping: Grouping) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A checkpoint's tensor names (as its modules hold them) less its own quantization tensors
    (an FP8 source's ``weight_scale_inv`` need not survive into an NVFP4 export), and the other
    names (those, and any no module holds); each in table order, to go through once (the order
    the names lie in memory: a pass in set order costs half as much again)."""
    names, roles = grouping.names, grouping.roles
    if grouping.shadowed is None and QUANTIZATION_ROLES.isdisjoint(roles):
        return tuple(names), ()  # a float checkpoint
    essential = list(map(operator.not_, map(QUANTIZATION_ROLES.__contains__, roles)))
    if grouping.shadowed is not None:
        essential = list(map(operator.and_, essential, map(operator.not_, grouping.shadowed)))
    others = map(operator.not_, essential)
    return tuple(compress(names, essential)), tuple(compress(names, others))


def original_parameters(modules: dict[str, Module], elements: dict[str, int]) -> int:
    """Original parameter count: each layer's elements and biases (``elements``, by layer
    name), plus the elements of every tensor that belongs to no layer (norms, biases of
    non-linear modules, buffers)."""
    return sum(elements.values()) + sum(
        info.numel
        for name, module in modules.items()
        if name not in elements
        for info in module.tensors.values()
    )


@dataclass
class OriginalLayers:
    """What a source checkpoint's layers say about the original model: each layer's original
    shape, and the parameter count; with the tensors grouped by module."""

    grouping: Grouping
    shapes: dict[str, tuple[int, ...]]
    parameters: int


def original_layers(
    checkpoint: Checkpoint, part: tuple[list[str], list[TensorInfo]] | None = None
) -> OriginalLayers:
    """The original shapes and parameter count of ``checkpoint``'s layers (or of the modules
    that ``part``, some of its tensors as names and infos, make up), without building its layer
    table. A source whose metadata declares every module alike (a float checkpoint) needs
    neither templates nor groups: each distinct layout is recognised once."""
    documents = read_documents(checkpoint)
    declaration = read_declaration(documents)
    grouping = group_modules(*(part or (checkpoint.names, checkpoint.infos)))
    modules = grouping.modules
    if not declaration.uniform:
        found, _ = _layer_kinds(
            modules, declaration, num_hidden_layers(documents.get("config.json") or {}), {}
        )
        of_kind = {
            kind: (kind.stored.shape, kind.elements + kind.auxiliary_elements) for kind in set(found.values())
        }
        per_layer = list(map(of_kind.__getitem__, found.values()))
        shapes = dict(zip(found, map(_FIRST, per_layer), strict=True))
        elements = dict(zip(found, map(_LAST, per_layer), strict=True))
        return OriginalLayers(grouping, shapes, original_parameters(modules, elements))
    declared = declaration.declared("")
    hints = Hints(declaration.declared_bits(""), declared.group_size, None, declared.block)
    names, listed = list(modules), list(modules.values())
    layouts = _layouts(name_shapes(names), listed)
    recognized: dict[tuple[Any, ...], tuple[tuple[int, ...], int]] = {}
    known: dict[int, tuple[tuple[int, ...], int] | None] = {}
    for at in dict.fromkeys(layouts):
        module = listed[at]
        if not is_layer(module):
            known[at] = None
            continue
        tensors = module.tensors
        layout = (module.fused, tuple(tensors), tuple(map(INFO_LAYOUT, tensors.values())))
        if layout not in recognized:
            recognized[layout] = original_shape(module, hints)
        known[at] = recognized[layout]
    found_layers = [known[at] for at in layouts]
    layer_names = list(compress(names, found_layers))
    layer_found = list(filter(None, found_layers))
    shapes = dict(zip(layer_names, map(_FIRST, layer_found), strict=True))
    elements = dict(zip(layer_names, map(_LAST, layer_found), strict=True))
    return OriginalLayers(grouping, shapes, original_parameters(modules, elements))


def original_shape(module: Module, hints: Hints) -> tuple[tuple[int, ...], int]:
    """The original shape of ``module``'s weight, and its elements with those of its biases."""
    stored = recognize(module, hints)
    auxiliary = sum(info.numel for role, info in module.tensors.items() if role in AUXILIARY_ROLES)
    return stored.shape, stored.elements + auxiliary


def _layer_kinds(
    modules: dict[str, Module],
    declaration: Declaration,
    depth: int | None,
    shapes: dict[str, tuple[int, ...]],
) -> tuple[dict[str, LayerKind], frozenset[tuple[str, int]]]:
    """The kind of each layer among ``modules``, by name in module order; and every (role,
    layout number) of their tensors (``Grouping.role_layouts``), read off one module per layout."""
    # The experts of a MoE model repeat a few name shapes and tensor layouts tens of thousands
    # of times. Each module's layout is keyed at C speed and asked once whether it is a layer;
    # each layer is keyed by its layout, MTP index, declaration key and source shape, and each
    # distinct key is judged once, on its first layer (kinds are shared by the coarser key of
    # template, group, declaration key, source shape and layout).
    names, listed = list(modules), list(modules.values())
    name_keys = name_shapes(names)
    layouts = _layouts(name_keys, listed)
    alike = set(layouts)
    role_layouts = frozenset((role, info.layout) for at in alike for role, info in listed[at].tensors.items())
    layer_layouts = {at for at in alike if is_layer(listed[at])}
    picked = list(compress(range(len(names)), map(layer_layouts.__contains__, layouts)))
    layer_names = list(map(names.__getitem__, picked))
    keys = zip(
        map(layouts.__getitem__, picked),
        mtp_flags(layer_names, list(map(name_keys.__getitem__, picked)), depth),
        declaration.instance_keys(layer_names),
        map(shapes.get, layer_names),
        strict=True,
    )
    first: dict[tuple[Any, ...], int] = {}
    kind_keys = list(map(first.setdefault, keys, count()))
    declared_of: dict[tuple[str, LayerGroup, Hashable], tuple[Declared, int | None]] = {}
    recognized: dict[tuple[Any, ...], tuple[Stored, int]] = {}
    kinds: dict[tuple[Any, ...], LayerKind] = {}
    judged: dict[int, LayerKind] = {}
    for (_, mtp, instance, source_shape), at in first.items():
        name = layer_names[at]
        module = modules[name]
        template = index_key(name)
        group = LayerGroup.MTP if mtp else classify_template(template)
        asked = (template, group, instance)
        tensors = module.tensors
        layout = (tuple(tensors), tuple(map(INFO_LAYOUT, tensors.values())))
        key = (asked, source_shape, module.fused, layout)
        kind = kinds.get(key)
        if kind is None:
            known_declared = declared_of.get(asked)
            if known_declared is None:
                known_declared = declared_of[asked] = (
                    declaration.declared(name, module_class=module_class(template, group)),
                    declaration.declared_bits(name),
                )
            declared, declared_bits = known_declared
            hints = Hints(declared_bits, declared.group_size, source_shape, declared.block)
            known = recognized.get((hints, module.fused, layout))
            if known is None:
                known = recognized[hints, module.fused, layout] = (
                    recognize(module, hints),
                    sum(info.bits for role, info in tensors.items() if role in WEIGHT_SIDE_ROLES),
                )
            stored, weight_bits = known
            kind = kinds[key] = layer_kind(
                template, group, module.fused, stored, declared, tensors, weight_bits
            )
        judged[at] = kind
    return dict(zip(layer_names, map(judged.__getitem__, kind_keys), strict=True)), role_layouts


def build_layer_table(
    checkpoint: Checkpoint, *, source_shapes: dict[str, tuple[int, ...]] | None = None
) -> LayerTable:
    """Build the layer table of ``checkpoint``, layers in natural name order. ``source_shapes``
    (module → original shape, from the source checkpoint) pins the input width of packed INT
    weights."""
    documents = read_documents(checkpoint)
    declaration = read_declaration(documents)
    depth = num_hidden_layers(documents.get("config.json") or {})
    grouping = group_modules(checkpoint.names, checkpoint.infos)
    modules = grouping.modules
    kinds, grouping.role_layouts = _layer_kinds(modules, declaration, depth, source_shapes or {})
    order = natural_order(list(kinds))
    # The layer shares its module's tensor dict: neither is changed after grouping.
    held = map(TENSORS_OF, map(modules.__getitem__, order))
    in_order = list(map(kinds.__getitem__, order))
    layers = list(map(tuple.__new__, repeat(Layer), zip(order, in_order, held, strict=True)))
    return LayerTable(layers, declaration, grouping, depth, order, in_order)


def _status(stored: Stored, declared: Declared, static_input: bool) -> str:
    found = stored.precision
    if found is Precision.UNKNOWN:
        return UNRECOGNIZED
    if found is Precision.FAKE_QUANT:
        return FAKE_QUANT
    if declared.precision is Precision.FAKE_QUANT:
        return DECLARATION_MISMATCH if found.is_quantized else UNEXPECTED_UNQUANTIZED
    if not found.is_quantized:
        return UNEXPECTED_UNQUANTIZED if declared.precision is not None else OK
    if declared.precision is None:
        return QUANTIZED_BUT_EXCLUDED
    if declared.precision is not found:
        return DECLARATION_MISMATCH
    if declared.group_size and stored.group_size and declared.group_size != stored.group_size:
        return DECLARATION_MISMATCH
    if declared.block and stored.block and declared.block != stored.block:
        return DECLARATION_MISMATCH
    if declared.activation is not None and declared.activation.static != static_input:
        return DECLARATION_MISMATCH  # a static input scale declared but absent, or the reverse
    return OK


def natural_order(names: list[str]) -> list[str]:
    """``names`` sorted by ``_natural_key`` (text as text, digit runs as numbers), by plain
    string comparison of keys made per name shape: names of one digit shape differ only in
    digit runs that stand in the same places, and each run is padded on the left to one width
    with a character below every other, in C for all names of a shape at once. For ASCII names
    without leading zeros that order is the natural one (a padded number sorts before any text
    and, at equal width, by value); others are sorted by ``_natural_key``."""
    shapes = digit_shapes(names)
    if shapes is names or not all(map(str.isascii, names)):  # ("\\d" takes non-ASCII digits too)
        return sorted(names, key=_natural_key)
    members: defaultdict[str, list[str]] = defaultdict(list)  # shape → its names, at C speed
    deque(map(list.append, map(members.__getitem__, shapes), names), maxlen=0)
    runs = {shape: [run.span() for run in MASKED_RUN.finditer(shape)] for shape in members}
    width = 1 + max((end - start for spans in runs.values() for start, end in spans), default=0)
    keys: list[str] = []
    ordered: list[str] = []
    for shape, group in members.items():
        # Within a shape the digit runs have one width each, so plain order is the natural one:
        # sorted first, each shape's keys are a sorted run, which the final sort only merges.
        group.sort()
        texts = MASKED_RUN.split(shape)
        parts: list[Iterable[str]] = [repeat(texts[0], len(group))]
        for (start, end), text in zip(runs[shape], texts[1:], strict=True):
            digits: list[str] = list(map(operator.getitem, group, repeat(slice(start, end))))
            if end - start > 1 and any(map(str.startswith, digits, repeat("0"))):
                return sorted(names, key=_natural_key)  # "007" and "7" are one number
            parts += [repeat("\0" * (width - end + start), len(group)), digits, repeat(text, len(group))]
        keys += map("".join, zip(*parts, strict=True))
        ordered += group
    return list(map(ordered.__getitem__, sorted(range(len(keys)), key=keys.__getitem__)))


def _natural_key(name: str) -> list[Any]:
    # Splitting on digit runs alternates text and numbers at fixed positions, so the parts of
    # two keys always compare text with text and number with number (a list compares like a
    # tuple and is cheaper to make).
    parts: list[Any] = _DIGIT_RUNS.split(name)
    parts[1::2] = map(int, parts[1::2])
    return parts
