"""MoE completeness: every expert the config declares stores its weight and every tensor its
format requires. A never-routed expert that lost its input scale is how NaN outputs start. An
expert the metadata declares unquantized, stored so among quantized siblings, is named as such
(not as lacking their scales), and still fails: engines load a MoE layer's experts in one format."""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Iterable
from itertools import compress
from typing import Any

from ptq_validators.checks.base import FAIL, PASS, SKIP, CheckResult
from ptq_validators.formats.roles import QUANTIZATION_ROLES
from ptq_validators.globs import index_key
from ptq_validators.layers import Layer, LayerKind, LayerTable
from ptq_validators.model_config import expert_count
from ptq_validators.wording import plural

# A per-expert weight's name template: <moe>.experts.<id>.<projection>, the id masked.
_EXPERT_TEMPLATE = re.compile(r"^.+\.experts\.#\.[^.]+$")
TITLE = "MoE expert completeness"


def check_moe_completeness(table: LayerTable, config: dict[str, Any]) -> CheckResult:
    """Per MoE layer and projection: expert ids 0..E-1 present, each with the union of the
    tensors its siblings carry and the ones its declared format requires."""
    declared_experts = expert_count(config)
    kinds = table.kind_counts()
    # A name is a per-expert weight exactly when its template is (the expert id is an index
    # component, masked as "#"); only those layers are split into MoE, id and projection.
    expert_kinds = {kind for kind in kinds if _EXPERT_TEMPLATE.match(kind.template)}
    picked = table.of_kinds(expert_kinds) if expert_kinds else []
    names, of_layer = list(compress(table.names, picked)), list(compress(table.kinds, picked))
    fused = table.layers_of(
        {kind for kind in kinds if kind not in expert_kinds and kind.fused and kind.group.value == "experts"}
    )
    if not names and not fused:
        return CheckResult("moe", TITLE, SKIP, "no MoE experts")
    complete = _complete(names, of_layer, expert_kinds, kinds, declared_experts)
    if complete is not None:
        details: list[str] = []
        moe_layers = len(complete)
    else:
        per_moe = _per_moe(list(compress(table.layers, picked)))
        if not per_moe and not fused:
            return CheckResult("moe", TITLE, SKIP, "no MoE experts")
        details = _expert_problems(per_moe, declared_experts)
        moe_layers = len({moe for moe, _ in per_moe})
    for layer in fused:
        stored_experts = layer.stored.shape[0] if len(layer.stored.shape) == 3 else None
        if declared_experts and stored_experts != declared_experts:
            details.append(
                f"{layer.name}: stores {stored_experts} experts, the config declares {declared_experts}"
            )
    layers = moe_layers + len({f.name.rpartition(".")[0] for f in fused})
    affected = len({detail.partition(".experts")[0] for detail in details})
    summary = (
        f"{plural(len(details), 'problem')} in {affected} of {plural(layers, 'MoE layer')}"
        if details
        else f"{plural(layers, 'MoE layer')} x {declared_experts or 'all'} experts complete"
    )
    return CheckResult(
        "moe", TITLE, FAIL if details else PASS, summary, measured=len(details), expected=0, details=details
    )


def _complete(
    names: list[str],
    of_layer: list[LayerKind],
    kinds: set[LayerKind],
    counts: Counter[LayerKind],
    declared: int | None,
) -> set[str] | None:
    """The MoE layers of the experts (``names``, their kinds ``of_layer``: the table's layers
    of ``kinds``) when each stores every expert id 0..E-1 of each of its projections with every
    tensor required (the usual case, told without grouping the layers in Python); None when
    that is not certain, and ``_expert_problems`` must tell."""
    if not declared or not names:
        return None
    # The experts of one MoE layer and projection share a template. Within a template, kind A
    # conflicts with kind B when A lacks a tensor B stores or its format requires: then no MoE
    # layer may hold both (an MTP layer's excluded experts beside the quantized ones do not).
    by_template: dict[str, list[LayerKind]] = {}
    for kind in kinds:
        by_template.setdefault(kind.template, []).append(kind)
    projections: dict[str, set[str]] = {}
    conflicts = []
    for template, alike in by_template.items():
        if len(alike) > _FEW_KINDS:  # kinds per instance (a per-module declaration): group them
            return None
        for kind in alike:
            conflicts += [(kind, other) for other in alike if not _requires(other).issubset(kind.roles)]
        moe, _, projection = template.rpartition(".experts.#.")
        if projection == "#":  # an all-digit projection name: not told apart by its template
            return None
        projections.setdefault(moe, set()).add(projection)
    if any(kind is other for kind, other in conflicts):
        return None
    # Each name is <expert>.<its template's projection>, <expert> = <MoE layer>.experts.<id>:
    # cut at C speed, and each distinct expert split once.
    cut = {kind: slice(None, -len(kind.template.rpartition(".")[2]) - 1) for kind in kinds}
    heads = list(map(str.__getitem__, names, map(cut.__getitem__, of_layer)))
    per_expert = Counter(heads)
    split = list(map(_SPLIT_EXPERTS, per_expert))
    for digits in set(map(_ID, split)):
        if not digits.isdecimal() or str(int(digits)) != digits or int(digits) >= declared:
            return None
    # Names are unique: with canonical ids below E, a MoE layer of E experts, each with one
    # layer per projection of its template, has each id of each projection.
    moes = Counter(map(_MOE, split))
    if any(n != declared for n in moes.values()):
        return None
    wanted = {moe: len(projections.get(index_key(moe), ())) for moe in moes}
    if list(map(wanted.__getitem__, map(_MOE, split))) != list(per_expert.values()):
        return None
    # Each (MoE layer, projection) now holds E layers: where the smaller kind of a conflicting
    # pair fills every one it is in, the other kind is in none of them.
    smaller = {min(pair, key=counts.__getitem__) for pair in conflicts}
    if smaller:  # one pass for all of them: their layers per (kind, MoE layer)
        moe_of = dict(zip(per_expert, map(_MOE, split), strict=True))
        chosen = list(map(smaller.__contains__, of_layer))
        held = Counter(
            zip(compress(of_layer, chosen), map(moe_of.__getitem__, compress(heads, chosen)), strict=True)
        )
        if any(n != declared for n in held.values()):
            return None
    return set(moes)


def _requires(kind: LayerKind) -> set[str]:
    """What the siblings of a ``kind`` expert must store: its tensors and, quantized, what its
    declared format requires (the bias is optional)."""
    required = set(kind.roles)
    if kind.stored.precision.is_quantized:
        required |= kind.declared.required_roles
    required.discard("bias")
    return required


def _missing_roles(kinds: Iterable[LayerKind]) -> dict[LayerKind, list[str]]:
    """Per kind, the roles it lacks of those its siblings store or their declared format
    requires (the bias is optional)."""
    present = set(kinds)
    required = set().union(*map(_requires, present))
    return {kind: sorted(required.difference(kind.roles)) for kind in present}


def _per_moe(experts: list[Layer]) -> dict[tuple[str, str], dict[int, Layer]]:
    """The expert layers by (MoE layer, projection), then by expert id."""
    per_moe: dict[tuple[str, str], dict[int, Layer]] = {}
    for layer in experts:
        moe, _, tail = layer.name.rpartition(".experts.")
        digits, _, proj = tail.partition(".")
        if not digits.isdecimal():  # the id the template masked, unless a name holds a "#"
            continue
        per_moe.setdefault((moe, proj), {})[int(digits)] = layer
    return per_moe


def _expert_problems(per_moe: dict[tuple[str, str], dict[int, Layer]], declared: int | None) -> list[str]:
    """Per (MoE layer, projection), in name order: the expert ids missing of 0..E-1 (E: the
    declared count, else the highest id stored + 1), the ids declared unquantized and stored so
    among quantized siblings (per rule), then per role the other ids that lack it."""
    details: list[str] = []
    for (moe, proj), experts in sorted(per_moe.items()):
        ids = range(declared) if declared else range(max(experts) + 1)
        absent = [i for i in ids if i not in experts]
        if absent:
            details.append(f"{moe}.experts.*.{proj}: expert ids {_ids(absent)} are missing")
        # What an expert stores and must store follows from its kind: a set per distinct kind.
        kinds = {expert.kind for expert in experts.values()}
        missing = _missing_roles(kinds)
        kept = _kept_unquantized(kinds)
        lacking: dict[str, list[int]] = {}
        kept_by: dict[tuple[str, str], list[int]] = {}
        if any(missing.values()):
            for expert_id, expert in sorted(experts.items()):
                roles = missing[expert.kind]
                if roles and expert.kind in kept:  # its scales are absent as declared
                    kept_by.setdefault(kept[expert.kind], []).append(expert_id)
                    roles = [role for role in roles if role not in QUANTIZATION_ROLES]
                for role in roles:
                    lacking.setdefault(role, []).append(expert_id)
        details += [
            f"{moe}.experts.*.{proj}: expert ids {_ids(ids_)} are declared unquantized ({rule}) and stored "
            f"{precision} among quantized siblings: engines load a MoE layer's experts as one fused module "
            "of one format"
            for (rule, precision), ids_ in kept_by.items()
        ]
        details += [
            f"{moe}.experts.*.{proj}: expert ids {_ids(ids_)} lack {role}" for role, ids_ in lacking.items()
        ]
    return details


def _kept_unquantized(kinds: set[LayerKind]) -> dict[LayerKind, tuple[str, str]]:
    """(declaring rule, stored precision) of each kind among ``kinds`` (the experts of one MoE
    layer and projection) declared unquantized and stored so, where a sibling is quantized:
    such an expert lacks its siblings' scales because the metadata says so, not by accident. It
    still fails: vLLM and SGLang build one fused ``experts`` module per MoE layer, of one format,
    and honour exclusions for all its experts or none (vllm-project/vllm#46757,
    sgl-project/sglang#39317)."""
    if not any(kind.stored.precision.is_quantized for kind in kinds):
        return {}
    return {
        kind: (kind.declared.rule, kind.stored.precision.value)
        for kind in kinds
        if kind.declared.precision is None and not kind.stored.precision.is_quantized
    }


_FEW_KINDS = 16  # kinds of one template compared pairwise
_SPLIT_EXPERTS = operator.methodcaller("rpartition", ".experts.")
_MOE, _ID = operator.itemgetter(0), operator.itemgetter(2)


def _ids(ids: list[int] | range) -> str:
    ids = list(ids)
    return str(ids) if len(ids) <= 12 else f"{ids[:12]}… ({len(ids)} in all)"
