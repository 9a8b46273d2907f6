"""Layer precision and coverage checks over a layer table (pure functions).

What a check decides from a layer's kind (status, stored format, declaration, group) is decided
once per kind and weighed by the kind's count; only the kinds that make a detail line are
walked layer by layer, in table order, for their names."""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import compress, repeat
from typing import Any, cast

from ptq_validators import layers as lt
from ptq_validators.checks.base import FAIL, PASS, SKIP, WARN, CheckResult
from ptq_validators.layers import KIND_OF, NAME_OF, Layer, LayerKind, LayerTable
from ptq_validators.precision import Precision, describe_counts, scheme_label
from ptq_validators.recipes import Intent
from ptq_validators.taxonomy import LayerGroup
from ptq_validators.wording import plural

_STATUS_TEXT = {
    lt.UNEXPECTED_UNQUANTIZED: "unexpected unquantized",
    lt.QUANTIZED_BUT_EXCLUDED: "quantized but excluded",
    lt.DECLARATION_MISMATCH: "declaration mismatch",
    lt.FAKE_QUANT: "fake quant (float weight beside scales)",
    lt.UNRECOGNIZED: "unrecognized layout",
}


def check_precision(table: LayerTable) -> CheckResult:
    """Counts per precision; structural problems in stored layouts are blocking."""
    flawed = {kind for kind in table.kind_counts() if kind.stored.problems}
    problems = [
        f"{layer.name}: {problem}" for layer in table.layers_of(flawed) for problem in layer.stored.problems
    ]
    status = FAIL if problems else PASS
    summary = describe_counts(table.scheme_counts()) or "no linear layers"
    return CheckResult(
        "layer_precision",
        "Layer precision counts",
        status,
        summary,
        measured=table.precision_counts(),
        details=problems,
    )


def check_coverage(table: LayerTable) -> CheckResult:
    """Every layer is either quantized as declared (weight and activation side) or declared
    unquantized. An expert that lacks its static input scale is the MoE check's to report:
    this row counts it and refers there."""
    kinds = table.kind_counts()
    bad = {kind for kind in kinds if kind.status != lt.OK}
    owned = {kind for kind in bad if _lacks_input_scale(kind) and not kind.fused and _is_expert(kind)}
    moe_owned = sum(kinds[kind] for kind in owned)
    mine = table.layers_of(bad - owned)
    counts = Counter(layer.status for layer in mine)
    quantized = sum(n for kind, n in kinds.items() if kind.stored.precision.is_quantized)
    total = len(table.layers)
    details = [_layer_line(layer) for layer in mine]
    if not quantized:
        details.insert(0, "no layer is stored quantized")
    status = FAIL if mine or not quantized else PASS
    if mine:
        summary = ", ".join(f"{count} {_STATUS_TEXT[s]}" for s, count in counts.items())
        summary += f" (of {plural(total, 'layer')})"
    else:
        matching = total - moe_owned
        summary = (
            f"{matching}/{total} match the declaration: {quantized} quantized, {total - quantized} excluded"
        )
    if moe_owned:
        summary += (
            f"; {plural(moe_owned, 'expert layer')} without the declared static input scale "
            "(see MoE expert completeness)"
        )
    if not quantized:
        summary = "no quantized layers" + (f"; {summary}" if mine else "")
    return CheckResult(
        "coverage",
        "Coverage vs declared metadata",
        status,
        summary,
        measured={s: counts.get(s, 0) for s in _STATUS_TEXT},
        expected=0,
        details=details,
    )


def _is_expert(kind: LayerKind) -> bool:
    # Indices are masked in the template, never "experts": it holds ".experts." as the name does.
    return kind.group is LayerGroup.EXPERTS and ".experts." in kind.template


def _lacks_input_scale(kind: LayerKind) -> bool:
    """The weight is as declared; only the declared static input scale is not stored."""
    declared = kind.declared
    return (
        kind.status == lt.DECLARATION_MISMATCH
        and declared.precision is kind.stored.precision
        and declared.activation is not None
        and declared.activation.static
        and not kind.static_input
    )


def _layer_line(layer: Layer) -> str:
    declared = layer.declared
    declared_text = (
        scheme_label(declared.precision, declared.activation) if declared.precision else "unquantized"
    )
    line = (
        f"{layer.name}: {_STATUS_TEXT.get(layer.status, layer.status)} — stored "
        f"{layer.scheme}, declared {declared_text} ({declared.rule})"
    )
    if _lacks_input_scale(layer.kind):
        line += ": no static input scale (input_scale) is stored"
    elif (
        layer.status == lt.DECLARATION_MISMATCH
        and declared.precision is layer.precision
        and layer.static_input
        and declared.activation is not None
        and not declared.activation.static
    ):
        line += ": a static input scale is stored that the declaration does not use"
    return line


def check_vision(table: LayerTable, *, allow: bool) -> CheckResult:
    """Vision towers and multimodal projectors must stay unquantized unless allowed."""
    groups = (LayerGroup.VISION, LayerGroup.PROJECTOR)
    kinds = table.kind_counts()
    members = {kind for kind in kinds if kind.group in groups}
    if not members:
        return CheckResult("vision", "Vision tower / projector", SKIP, "no vision tower or projector")
    carrying = table.layers_of({kind for kind in members if _carries_quantization(kind)})
    if not carrying:
        return CheckResult(
            "vision",
            "Vision tower / projector",
            PASS,
            f"{sum(kinds[kind] for kind in members)} layers, none quantized",
        )
    status = WARN if allow else FAIL
    summary = f"{len(carrying)}/{sum(kinds[kind] for kind in members)} layers carry quantization tensors"
    if allow:
        summary += " (allowed by --allow-quantized-vision)"
    details = [
        f"{layer.name}: {layer.precision.value} ({', '.join(sorted(layer.tensors))})" for layer in carrying
    ]
    return CheckResult(
        "vision",
        "Vision tower / projector",
        status,
        summary,
        measured=len(carrying),
        expected=0,
        details=details,
    )


def _carries_quantization(kind: LayerKind) -> bool:
    precision = kind.stored.precision
    return (
        precision.is_quantized
        or precision is Precision.FAKE_QUANT
        or any(role != "weight" and role != "bias" for role in kind.roles)
    )


def check_head_and_embeddings(table: LayerTable) -> CheckResult:
    """A quantized lm_head or embedding is legal but many engines cannot serve it: warn."""
    members = named_layers(
        table, {kind for kind in table.kind_counts() if kind.group in (LayerGroup.LM_HEAD, LayerGroup.EMBED)}
    )
    quantized = [(name, kind) for name, kind in members if kind.stored.precision.is_quantized]
    if not members:
        return CheckResult("lm_head_embed", "lm_head / embeddings", SKIP, "none stored")
    if not quantized:
        return CheckResult(
            "lm_head_embed",
            "lm_head / embeddings",
            PASS,
            ", ".join(f"{name} {kind.stored.precision.value}" for name, kind in members),
        )
    details = [
        f"{name} is stored {kind.stored.precision.value}: check that the serving engine "
        "supports a quantized " + kind.group.value
        for name, kind in quantized
    ]
    return CheckResult(
        "lm_head_embed",
        "lm_head / embeddings",
        WARN,
        f"{len(quantized)} quantized: " + ", ".join(name for name, _ in quantized),
        details=details,
    )


def named_layers(table: LayerTable, kinds: set[LayerKind]) -> list[tuple[str, LayerKind]]:
    """(name, kind) of the layers of ``kinds``, in table order. A template without an index
    component (``#``) is the name of its kind's one layer, so kinds of such templates (a
    head, an embedding) are named without a pass over the table."""
    if all("#" not in kind.template for kind in kinds):
        return [(kind.template, kind) for kind in table.kind_counts() if kind in kinds]
    return [(layer.name, layer.kind) for layer in table.layers_of(kinds)]


def check_expectation(
    table: LayerTable,
    intents: dict[str, Intent] | dict[LayerKind, Intent],
    *,
    check_id: str,
    title: str,
    allow_extra: bool = False,
    conflicts: tuple[str, ...] = (),
    note: str | None = None,
    by: str = "recipe",
    unplanned: Sequence[str] = (),
) -> CheckResult:
    """Compare each layer with what a recipe or plan intends for it, weight and activation
    side: the intent is a contract, so every disagreement is blocking. A layer the intent
    leaves unquantized but the export stores quantized is a warning only when ``allow_extra``.

    ``intents`` are by layer name (a plan's rows, a recipe asked name by name), or by kind, one
    per kind of ``table`` (a recipe that answers alike for every name of one template): then
    each kind is judged once and weighed by its count. Either way only the layers that make a
    detail line are named.

    ``conflicts``: the recipe contradicts the checkpoint's own declaration (blocking, listed
    first). Layers whose stored form disagrees with their declaration are the coverage check's
    to report: this row counts them and refers there. ``note`` is appended to the summary
    (e.g. where the ignore list came from). ``by`` names what intends (``recipe`` or ``plan``)
    in the wording; ``unplanned``: the export's quantized layers the intent does not name (blocking:
    something other than the plan decided them)."""
    if isinstance(next(iter(intents), None), LayerKind):
        units, named, missing = _kind_units(table, cast("dict[LayerKind, Intent]", intents))
    else:
        units, named, missing = _name_units(table, cast("dict[str, Intent]", intents))
    return _expectation(
        units,
        named,
        missing,
        list(unplanned),
        bool(intents),
        check_id,
        title,
        allow_extra,
        conflicts,
        note,
        by,
    )


Units = dict[Any, tuple[LayerKind, Intent, int]]
Named = Callable[[dict[Any, Any]], Iterable[tuple[str, Any]]]


def _name_units(table: LayerTable, intents: dict[str, Intent]) -> tuple[Units, Named, list[str]]:
    """The (kind, intent) pairs of the layers ``intents`` names, counted; how to name the
    layers of some of them; and the names the table lacks."""
    layer_of = dict(zip(map(NAME_OF, table.layers), table.layers, strict=True))
    found = list(map(layer_of.get, intents))
    kept = list(map(operator.is_not, found, repeat(None)))
    names = list(compress(intents, kept))
    wanted = list(compress(intents.values(), kept))
    # What a layer's kind and its intent make of it follows from the pair: counted per distinct
    # pair (intents are shared objects: one per rule, or per name template), in order of first
    # appearance, at C speed.
    keys = list(zip(map(KIND_OF, compress(found, kept)), map(id, wanted), strict=True))
    by_id = dict(zip(map(id, wanted), wanted, strict=True))
    units = {key: (key[0], by_id[key[1]], n) for key, n in Counter(keys).items()}

    def named(flagged: dict[Any, Any]) -> Iterable[tuple[str, Any]]:
        return compress(zip(names, keys, strict=True), map(flagged.__contains__, keys))

    return units, named, list(compress(intents, map(operator.not_, kept)))


def _kind_units(table: LayerTable, intents: dict[LayerKind, Intent]) -> tuple[Units, Named, list[str]]:
    """``_name_units`` for intents by kind: each kind with its count, in table order."""

    def named(flagged: dict[Any, Any]) -> Iterable[tuple[str, Any]]:
        layers = table.layers_of(set(flagged))
        return zip(map(NAME_OF, layers), map(KIND_OF, layers), strict=True)

    return {kind: (kind, intents[kind], n) for kind, n in table.kind_counts().items()}, named, []


def _expectation(
    units: Units,
    named: Named,
    missing: list[str],
    unplanned: list[str],
    asked: bool,
    check_id: str,
    title: str,
    allow_extra: bool,
    conflicts: tuple[str, ...],
    note: str | None,
    by: str,
) -> CheckResult:
    """The expectation row from ``units`` (key → (kind, intent, layers), in order of first
    appearance), ``named`` (the (name, unit key) of the layers of the units asked for, in
    intent order), the intended names the export lacks, the export's names the intent lacks,
    and whether anything was intended."""
    groups: dict[LayerGroup, list[int]] = {}
    differ: dict[tuple[str, str], list[str]] = {}
    extra: dict[str, list[str]] = {}
    rule: dict[Any, str] = {}  # per line key: the rule of its first name's intent
    flagged: dict[Any, tuple[dict[Any, list[str]], Any]] = {}
    owned = 0
    # A group or line key first appears with the first unit that has it: units in order of
    # first appearance make the orders a pass over the layers would.
    for unit, (kind, intent, count) in units.items():
        verdict, key = _outcome(kind, intent)
        if verdict == "owned":
            owned += count
            continue
        counts = groups.setdefault(kind.group, [0, 0])
        if verdict == "met":
            counts[0] += count
            counts[1] += count
        elif verdict == "differs":
            counts[0] += count
            differ.setdefault(key, [])
            flagged[unit] = (differ, key)
        elif verdict == "extra":
            extra.setdefault(key, [])
            flagged[unit] = (extra, key)
    if flagged:
        for name, unit in named(flagged):
            lines, key = flagged[unit]
            lines[key].append(name)
            rule.setdefault(key, units[unit][1].rule)
    intended_any = any(t for t, _ in groups.values())
    details = list(conflicts)
    if not intended_any and asked:
        details.append(f"the {by} quantizes none of the stored layers: it does not fit this model")
    details += [
        f"group {g.value}: targeted by the {by}, but none of its {plural(t, 'layer')} is stored as intended"
        for g, (t, c) in groups.items()
        if t and not c
    ]
    for (intended, stored), names in differ.items():
        details.append(
            f"{plural(len(names), 'layer')} intended {intended}{_why(rule[intended, stored], by)}, stored "
            f"{stored}: {_names(names)}"
        )
    for scheme, names in extra.items():
        details.append(
            f"{plural(len(names), 'layer')} the {by} leaves unquantized{_why(rule[scheme], by)} "
            f"{'is' if len(names) == 1 else 'are'} stored {scheme}: {_names(names)}"
            + ("" if allow_extra else " (pass --allow-extra-quantization if that is intended)")
        )
    if missing:
        details.append(
            f"{plural(len(missing), 'layer')} in the {by} but not in the export: {_names(missing)}"
        )
    if unplanned:
        details.append(
            f"{plural(len(unplanned), 'quantized layer')} in the export but not in the {by}: {_names(unplanned)}"
        )
    blocking = (
        conflicts
        or differ
        or missing
        or unplanned
        or (extra and not allow_extra)
        or (asked and not intended_any)
    )
    status = FAIL if blocking else WARN if extra else PASS
    measured = {g.value: {"targeted": t, "covered": c} for g, (t, c) in sorted(groups.items())}
    parts = [f"{g} {m['covered']}/{m['targeted']}" for g, m in measured.items() if m["targeted"]]
    problems = list(conflicts[:1])
    mismatched = sum(len(n) for n in differ.values())
    if mismatched:
        problems.append(f"{plural(mismatched, 'layer')} not stored as intended")
    extras = sum(len(n) for n in extra.values())
    if extras:
        problems.append(f"{plural(extras, 'layer')} quantized against the {by}")
    if missing:
        problems.append(f"{plural(len(missing), 'layer')} of the {by} missing from the export")
    if unplanned:
        problems.append(f"{plural(len(unplanned), 'quantized layer')} not in the {by}")
    if owned:
        verb = "disagrees" if owned == 1 else "disagree"
        problems.append(f"{plural(owned, 'layer')} {verb} with the declaration (see Coverage)")
    met = ("intended precision met: " + ", ".join(parts)) if parts else "no layer is intended quantized"
    summary = "; ".join([*problems, met, *([note] if note else [])])
    failure_class = None
    if status == FAIL:
        failure_class = "user_config" if conflicts else "model_unsupported" if not intended_any else None
    return CheckResult(
        check_id, title, status, summary, measured=measured, details=details, failure_class=failure_class
    )


def _outcome(kind: LayerKind, intent: Intent) -> tuple[str, Any]:
    """How a layer of ``kind`` fares against ``intent``: ``owned`` (it disagrees with its own
    declaration: the coverage check's), ``met``, ``differs`` (with the (intended, stored)
    labels), ``extra`` (quantized against an unquantized intent, with the stored scheme) or
    ``unquantized`` (left unquantized as intended)."""
    if kind.status != lt.OK:
        return "owned", None
    if intent.precision is not None:
        if _meets(kind, intent):
            return "met", None
        intended = scheme_label(intent.precision, intent.activation) + _group(intent.group_size)
        return "differs", (intended, kind.scheme + _group(kind.stored.group_size))
    if kind.stored.precision.is_quantized:
        return "extra", kind.scheme
    return "unquantized", None


def _meets(kind: LayerKind, intent: Intent) -> bool:
    """The stored weight (and, where both are known, activation side) is what was intended."""
    stored = kind.stored
    if stored.precision is not intent.precision:
        return False
    if intent.group_size and stored.group_size and intent.group_size != stored.group_size:
        return False
    activation = kind.activation
    return intent.activation is None or activation is None or intent.activation == activation


def _why(rule: str, by: str) -> str:
    """The rule that set an intent, in parentheses; nothing when it is only the intent's source
    (a plan's rows carry the rule ``plan``)."""
    return "" if rule == by else f" ({rule})"


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _group(size: int | None) -> str:
    return f" g{size}" if size else ""


def skipped(check_id: str, title: str, reason: str) -> CheckResult:
    return CheckResult(check_id, title, SKIP, reason)
