"""The names check against its definition in sets, for every fixture gated against every fixture
as its source: matching pairs, renamed and dropped names, a source's own quantization tensors
kept or not (the check skips lookups where counts or roles prove their answer)."""

from __future__ import annotations

from functools import cache

import pytest

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.checks.names import compare_names
from ptq_validators.formats.roles import KNOWN_ROLES, PACKED_ANCHORS, QUANTIZATION_ROLES
from ptq_validators.io.source import LocalSource
from ptq_validators.layers import LayerTable, build_layer_table
from ptq_validators.source_summary import SourceSummary, summarize
from tests.conftest import FIXTURES

CHECKPOINTS = sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())


@cache
def source_summary(name: str) -> SourceSummary:
    return summarize(Checkpoint.open(LocalSource(FIXTURES / name)))


def expected(table: LayerTable, source: SourceSummary) -> tuple[int, list[str], list[str], list[str]]:
    """``compare_names`` by its definition: the source names the export holds, and those that a
    packed or added name of the export stands for; names outside the source; essential source
    names neither held nor stood for; tensors outside the vocabulary."""
    known, essential = source.tensor_names, set(source.essential_names)
    held = {info.name for module in table.modules.values() for info in module.tensors.values()}
    bases: set[str] = set()
    foreign: list[str] = []
    for module_name, module in table.modules.items():
        for role, info in module.tensors.items():
            if info.name in known or (role in QUANTIZATION_ROLES and role not in PACKED_ANCHORS):
                continue
            if role in PACKED_ANCHORS:
                bases.add(module_name + PACKED_ANCHORS[role])
            elif role not in KNOWN_ROLES or "quantizer" in info.name or role.endswith("_amax"):
                foreign.append(info.name)
            else:
                bases.add(info.name)
    matched = len(held & known) + len((bases & known) - held)
    return matched, sorted(bases - known), sorted(essential - held - bases), sorted(foreign)


@pytest.mark.parametrize("export", CHECKPOINTS)
def test_names_check_is_its_set_definition_against_every_source(export):
    table = build_layer_table(Checkpoint.open(LocalSource(FIXTURES / export)))
    for source in CHECKPOINTS:
        summary = source_summary(source)
        assert compare_names(table, summary) == expected(table, summary), source
