"""``plan.json``, the file ``ptqv plan --out`` writes and ``ptqv gate --plan`` reads: the layer
table's rows (``layers.LayerRow``) under the JSON envelope (``envelope``), kind ``ptqv-plan``.

In: a path. Out: the plan's rows, then per export layer the precision the plan intends (a plan
row's precision when it is quantized, else "left unquantized"), and the ``plan`` check. A bad
file is an ``InputError`` naming it and the fix.
"""

from __future__ import annotations

import json

from ptq_validators.checks import coverage
from ptq_validators.checks.base import CheckResult
from ptq_validators.envelope import SCHEMA_VERSION
from ptq_validators.errors import InputError
from ptq_validators.layers import LayerRow, LayerTable
from ptq_validators.precision import Activation
from ptq_validators.recipes import Intent

PLAN_KIND = "ptqv-plan"
TITLE = "Plan vs export"
_HINT = "pass the file written by `ptqv plan --out`"
# ModelOpt splits fused 3-D expert parameters into per-expert linears on export.
FUSED_SPLITS = {
    "gate_up_proj": ("gate_proj", "up_proj"),
    "down_proj": ("down_proj",),
    "up_proj": ("up_proj",),
}


def load_plan(path: str) -> list[LayerRow]:
    """The rows of a ``ptqv plan --out`` file."""
    try:
        with open(path, encoding="utf-8") as handle:
            plan = json.load(handle)
    except OSError as exc:
        raise InputError(f"{path}: cannot read plan: {exc.strerror}", hint=_HINT) from None
    except ValueError as exc:
        raise InputError(f"{path}: invalid JSON: {exc}", hint=_HINT) from None
    if not (
        isinstance(plan, dict) and plan.get("kind") == PLAN_KIND and isinstance(plan.get("layers"), list)
    ):
        raise InputError(f"{path}: not a ptqv plan (expected kind '{PLAN_KIND}' with 'layers')", hint=_HINT)
    if plan.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"{path}: plan schema_version {plan.get('schema_version')!r} is not {SCHEMA_VERSION}",
            hint="re-create the plan with this version of ptqv",
        )
    rows = []
    for row in plan["layers"]:
        try:
            rows.append(LayerRow.from_json(row))
        except ValueError as exc:
            raise InputError(
                f"{path}: invalid layer row {row!r} ({exc})", hint="re-create the plan with `ptqv plan --out`"
            ) from None
    if not rows:
        # an empty plan intends nothing, so every export would meet it
        raise InputError(f"{path}: plan has no layers", hint="re-create the plan with `ptqv plan --out`")
    return rows


def plan_intents(rows: list[LayerRow], found: set[str]) -> dict[str, Intent]:
    """What the plan intends for each layer name, with its fused expert parameters mapped onto
    the per-expert linears ModelOpt exports (``found``: the export's layer names)."""
    expanded: dict[str, Intent] = {}
    for row in rows:
        intended = row.precision if row.precision.is_quantized else None
        activation = Activation.parse(row.activation) if intended and row.activation else None
        intent = Intent(intended, row.group_size if intended else None, "plan", activation)
        prefix, _, param = row.name.rpartition(".")
        splits = FUSED_SPLITS.get(param) if row.name not in found else None
        members = [
            f
            for f in found
            if splits
            and f.startswith(prefix + ".")
            and f[len(prefix) + 1 :].partition(".")[0].isdigit()
            and f.rpartition(".")[2] in splits
            and f.count(".") == row.name.count(".") + 1
        ]
        for member in members or [row.name]:
            expanded[member] = intent
    return expanded


def check_plan(table: LayerTable, plan_path: str | None) -> CheckResult:
    """The export against its plan: every layer at the planned precision (blocking)."""
    if plan_path is None:
        return coverage.skipped("plan", TITLE, "no --plan given")
    intents = plan_intents(load_plan(plan_path), {layer.name for layer in table.layers})
    # the plan lists the layers it decided on; a quantized layer it does not name was decided by
    # something else (a plan for another model, a recipe edited after planning)
    unplanned = [
        layer.name
        for layer in table.layers
        if layer.name not in intents and layer.kind.stored.precision.is_quantized
    ]
    return coverage.check_expectation(
        table, intents, check_id="plan", title=TITLE, by="plan", unplanned=unplanned
    )
