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
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

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
from ptq_validators.globs import index_key
from ptq_validators.io.safetensors import TensorInfo
from ptq_validators.model_config import num_hidden_layers
from ptq_validators.precision import NO_ACTIVATION, Activation, Precision, scheme_label
from ptq_validators.taxonomy import LayerGroup, classify

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


@dataclass(slots=True, eq=False)
class Layer:
    """One linear-like weight (a 2-D weight, or a fused 3-D expert parameter): its name, its
    tensors, and the kind it shares with the layers named and stored like it."""

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
    """All layers of one checkpoint, and every module (layer or not) by name."""

    layers: list[Layer]
    declaration: Declaration
    modules: dict[str, Module] = field(default_factory=dict)
    num_hidden_layers: int | None = None
    _by_name: dict[str, Layer] | None = field(default=None, init=False, repr=False, compare=False)
    _kind_counts: Counter[LayerKind] | None = field(default=None, init=False, repr=False, compare=False)

    # The table does not change once built: the indexes below are made once, on first use.
    def by_name(self) -> dict[str, Layer]:
        if self._by_name is None:
            self._by_name = {layer.name: layer for layer in self.layers}
        return self._by_name

    def kind_counts(self) -> Counter[LayerKind]:
        """Layers per kind, in order of first appearance (counted at C speed: the checks
        judge a kind once and weigh it by its count)."""
        if self._kind_counts is None:
            self._kind_counts = Counter(map(_KIND, self.layers))
        return self._kind_counts

    def layers_of(self, kinds: set[LayerKind]) -> list[Layer]:
        """The layers of ``kinds``, in table order (none without a pass over the table)."""
        return [layer for layer in self.layers if layer.kind in kinds] if kinds else []

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


_KIND = operator.attrgetter("kind")
_NAME = operator.attrgetter("name")


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


def group_modules(tensors: dict[str, TensorInfo]) -> dict[str, Module]:
    """Group tensors by module prefix."""
    modules: dict[str, Module] = {}
    get = modules.get
    # Nearly every tensor ends in a known role after its last dot (every name split at C
    # speed): the answer split_role gives, taken inline.
    for name, (prefix, _, leaf), info in zip(
        tensors, map(_SPLIT_LAST_DOT, tensors), tensors.values(), strict=True
    ):
        fused = False
        if leaf not in KNOWN_ROLES:
            prefix, leaf, fused = split_role(name, info)
        module = get(prefix)
        if module is None:
            module = modules[prefix] = Module(prefix)
        module.tensors[leaf] = info
        if fused:
            module.fused = True
    return modules


_SPLIT_LAST_DOT = operator.methodcaller("rpartition", ".")


def is_layer(module: Module) -> bool:
    """A linear-like weight: a 2-D anchor, or a 3-D+ anchor of a fused expert parameter."""
    anchor = module.anchor
    if anchor is None:
        return False
    rank = len(anchor.shape)
    return rank == 2 or (rank >= 3 and (module.fused or ".experts." in f".{module.name}."))


def read_documents(checkpoint: Checkpoint) -> dict[str, Any]:
    return {name: checkpoint.json_document(name) for name in QUANT_DOCUMENTS}


def essential_names(modules: dict[str, Module]) -> set[str]:
    """A checkpoint's tensor names (grouped by module) minus its own quantization tensors (an
    FP8 source's ``weight_scale_inv`` need not survive into an NVFP4 export)."""
    names: set[str] = set()
    for module in modules.values():
        tensors = module.tensors
        if QUANTIZATION_ROLES.isdisjoint(tensors):  # a float checkpoint's every module
            names.update(map(_TENSOR_NAME, tensors.values()))
        else:
            names.update(info.name for role, info in tensors.items() if role not in QUANTIZATION_ROLES)
    return names


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
    shape, and the parameter count; with the modules they were grouped from."""

    modules: dict[str, Module]
    shapes: dict[str, tuple[int, ...]]
    parameters: int


def original_layers(checkpoint: Checkpoint) -> OriginalLayers:
    """The original shapes and parameter count of ``checkpoint``'s layers, without building
    its layer table. A source whose metadata declares every module alike (a float checkpoint)
    needs neither names' templates nor groups: each distinct layout is recognised once."""
    documents = read_documents(checkpoint)
    declaration = read_declaration(documents)
    modules = group_modules(checkpoint.tensors)
    if not declaration.uniform:
        found = _layer_kinds(modules, declaration, num_hidden_layers(documents.get("config.json") or {}), {})
        shapes = {name: kind.stored.shape for name, kind in found.items()}
        elements = {name: kind.stored.elements + kind.auxiliary_elements for name, kind in found.items()}
        return OriginalLayers(modules, shapes, original_parameters(modules, elements))
    declared = declaration.declared("")
    hints = Hints(declaration.declared_bits(""), declared.group_size, None, declared.block)
    recognized: dict[tuple[Any, ...], tuple[tuple[int, ...], int]] = {}
    shapes, elements = {}, {}
    for name, module in modules.items():
        if not is_layer(module):
            continue
        tensors = module.tensors
        layout = (module.fused, tuple(tensors), tuple(map(_DTYPE_AND_SHAPE, tensors.values())))
        known = recognized.get(layout)
        if known is None:
            stored = recognize(module, hints)
            aux = sum(info.numel for role, info in tensors.items() if role in AUXILIARY_ROLES)
            known = recognized[layout] = (stored.shape, stored.elements + aux)
        shapes[name], elements[name] = known
    return OriginalLayers(modules, shapes, original_parameters(modules, elements))


def _layer_kinds(
    modules: dict[str, Module],
    declaration: Declaration,
    depth: int | None,
    shapes: dict[str, tuple[int, ...]],
) -> dict[str, LayerKind]:
    """The kind of each layer among ``modules``, by name in module order."""
    # The experts of a MoE model repeat a few name templates and tensor layouts tens of
    # thousands of times: each distinct (template, group, declaration key, source shape,
    # layout) is one kind, judged once; a distinct layout with its hints is recognised once.
    # Per layer remain its template, group (an MTP layer differs by its index), the lookups
    # that can tell instances apart, and the layout key.
    declared_of: dict[tuple[str, LayerGroup, Hashable], tuple[Declared, int | None]] = {}
    recognized: dict[tuple[Any, ...], tuple[Stored, int]] = {}
    kinds: dict[tuple[Any, ...], LayerKind] = {}
    by_name: dict[str, LayerKind] = {}
    for name, module in modules.items():
        if not is_layer(module):
            continue
        template = index_key(name)
        group = classify(name, num_hidden_layers=depth, template=template)
        asked = (template, group, declaration.instance_key(name))
        tensors = module.tensors
        source_shape = shapes.get(name)
        layout = (tuple(tensors), tuple(map(_DTYPE_AND_SHAPE, tensors.values())))
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
        by_name[name] = kind
    return by_name


def build_layer_table(
    checkpoint: Checkpoint, *, source_shapes: dict[str, tuple[int, ...]] | None = None
) -> LayerTable:
    """Build the layer table of ``checkpoint``, layers in natural name order. ``source_shapes``
    (module → original shape, from the source checkpoint) pins the input width of packed INT
    weights."""
    documents = read_documents(checkpoint)
    declaration = read_declaration(documents)
    depth = num_hidden_layers(documents.get("config.json") or {})
    modules = group_modules(checkpoint.tensors)
    kinds = _layer_kinds(modules, declaration, depth, source_shapes or {})
    # The layer shares its module's tensor dict: neither is changed after grouping.
    layers = [Layer(name, kinds[name], modules[name].tensors) for name in sorted(kinds, key=_natural_key)]
    return LayerTable(layers, declaration, modules, depth)


_DTYPE_AND_SHAPE = operator.itemgetter(1, 2)  # TensorInfo (dtype, shape)
_TENSOR_NAME = operator.itemgetter(0)  # TensorInfo name


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


def _natural_key(name: str) -> list[Any]:
    # Splitting on digit runs alternates text and numbers at fixed positions, so the parts of
    # two keys always compare text with text and number with number (a list compares like a
    # tuple and is cheaper to make).
    parts: list[Any] = _DIGIT_RUNS.split(name)
    parts[1::2] = map(int, parts[1::2])
    return parts
