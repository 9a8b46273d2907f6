"""One layer table, two uses: for every fixture made from a committed source, ``ptqv plan`` on
the source and ``ptqv gate`` on the export produce the same rows (``layers.LayerRow``): the same
names, the same group for each, and, where the fixture's recipe is one ``ptqv plan`` can express
(a ModelOpt qformat or an llm-compressor scheme with its ignore list), the precision the plan
intends is the precision the gate finds."""

from __future__ import annotations

from functools import cache

import pytest

from ptq_validators.gate import GateOptions, run_gate
from ptq_validators.io.source import LocalSource
from ptq_validators.layers import LayerRow
from ptq_validators.plan_file import plan_intents
from ptq_validators.preflight.plan import plan_model
from ptq_validators.recipes import llmc_scheme, modelopt_qformat
from tests.conftest import FIXTURES, quantized_fixtures


@cache
def _plan(source: str, qformat: str | None, scheme: str | None, ignore: tuple[str, ...]) -> list[LayerRow]:
    if scheme:
        recipe, spec = llmc_scheme(scheme, ignore=list(ignore)), {"scheme": scheme, "ignore": list(ignore)}
    else:
        recipe, spec = modelopt_qformat(qformat or "fp8"), {"qformat": qformat or "fp8", "ignore": []}
    plan = plan_model(LocalSource(FIXTURES / source), recipe, spec)
    return [LayerRow.from_json(row) for row in plan["layers"]]


def _expressible(recipe: dict) -> tuple[str | None, str | None, tuple[str, ...]] | None:
    """(qformat, scheme, ignore) when `ptqv plan` can state the fixture's recipe."""
    qformat, scheme = recipe.get("qformat"), recipe.get("scheme")
    if scheme:
        return None, scheme, tuple(recipe.get("ignore") or ())
    if qformat and "," not in qformat:  # a single ModelOpt preset (not AutoQuantize)
        return qformat, None, ()
    return None


@pytest.mark.parametrize("entry", quantized_fixtures(), ids=lambda e: e["name"])
def test_plan_and_gate_build_the_same_rows(entry):
    recipe = _expressible(entry["recipe"])
    planned = _plan(entry["source"], *(recipe or (None, None, ())))
    report = run_gate(
        LocalSource(FIXTURES / entry["name"]), LocalSource(FIXTURES / entry["source"]), GateOptions()
    )
    found = {layer.name: layer.row() for layer in report.table.layers}
    # The plan lists the weights a recipe's linear targets can reach: embeddings are not planned.
    found_names = {name for name, row in found.items() if row.module_class != "Embedding"}
    intents = plan_intents(planned, set(found))
    assert set(intents) == found_names, sorted(set(intents) ^ found_names)[:8]

    by_plan = {row.name: row for row in planned}
    for row in planned:
        if row.name in found:
            assert row.group is found[row.name].group, row.name
    if recipe is None:
        return
    disagree = []
    for name, intent in intents.items():
        row = found[name]
        planned_group = by_plan[name].group if name in by_plan else row.group
        assert planned_group is row.group, name
        stored = row.precision if row.precision.is_quantized else None
        # A group size is compared where both sides know one (the ``plan`` check's rule): an
        # INT weight whose row is one group stores one scale column and shows none.
        sizes = (intent.group_size, row.group_size)
        if intent.precision is not stored or (all(sizes) and sizes[0] != sizes[1]):
            disagree.append(
                f"{name}: planned {intent.precision} g{sizes[0]}, found {row.precision} g{sizes[1]}"
            )
    assert not disagree, disagree[:8]
