"""The index cross-check reports the same problems however ``Checkpoint.open`` finds them.

``Checkpoint.open`` checks the index against the shards as it reads them (each shard claims its
entries of the index) and compares the two in full only when a claim fails; whatever the edit of
the index, its issues must be exactly those of the full comparison, in the same order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptq_validators.checkpoint import INDEX_FILE, Checkpoint, IntegrityIssue, _cross_check_index
from ptq_validators.io.source import LocalSource
from tests.ckpt_edit import copy_checkpoint, edit_tensors, read_tensors, shard
from tests.conftest import FIXTURES

SHARDS = [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
CROSS_CHECK = ("index names tensor ", "index puts tensor ", "is missing from the index")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, tuple[Path, dict[str, str]]]:
    """A 3-shard export, and the same with a tensor of the first shard also in the third."""
    made = {}
    for kind in ("clean", "duplicate"):
        out = copy_checkpoint(FIXTURES / "modelopt-nvfp4-llama", tmp_path_factory.mktemp(kind) / "out")
        weight_map = shard(out, 3)
        if kind == "duplicate":
            first, _ = read_tensors(out / SHARDS[0])
            name = sorted(first)[0]
            copied = first[name]
            edit_tensors(
                out, lambda tensors, name=name, copied=copied: tensors.__setitem__(name, copied), SHARDS[2]
            )
        made[kind] = (out, weight_map)
    return made


def open_with_index(out: Path, weight_map: dict[str, str]) -> tuple[Checkpoint, list[IntegrityIssue]]:
    (out / INDEX_FILE).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    checkpoint = Checkpoint.open(LocalSource(out))
    return checkpoint, _cross_check_index(weight_map, checkpoint.tensor_file)


def cross_check_issues(checkpoint: Checkpoint) -> list[IntegrityIssue]:
    return [issue for issue in checkpoint.issues if any(part in issue.message for part in CROSS_CHECK)]


edits = st.lists(
    st.tuples(
        st.sampled_from(["move", "drop", "ghost", "first"]), st.integers(0, 10_000), st.sampled_from(SHARDS)
    ),
    max_size=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["clean", "duplicate"]), edit=edits)
def test_edited_indexes_report_what_the_full_comparison_reports(checkpoints, kind, edit):
    out, original = checkpoints[kind]
    weight_map = dict(original)
    for action, pick, where in edit:
        names = sorted(weight_map)
        name = names[pick % len(names)] if names else "x"
        if action == "move" and names:
            weight_map[name] = where
        elif action == "drop":
            weight_map.pop(name, None)
        elif action == "ghost":
            weight_map[f"model.layers.{pick}.ghost.weight"] = where
        elif action == "first" and names:  # the same entries, in another order
            weight_map = {name: weight_map.pop(name), **weight_map}
    if not weight_map:
        return
    checkpoint, expected = open_with_index(out, weight_map)
    assert cross_check_issues(checkpoint) == expected
    assert checkpoint.issues[len(checkpoint.issues) - len(expected) :] == expected
    also_stored = [issue for issue in checkpoint.issues if "is also stored in" in issue.message]
    read = set(weight_map.values())
    assert len(also_stored) == (kind == "duplicate" and {SHARDS[0], SHARDS[2]} <= read)


def test_a_consistent_index_reports_nothing_and_keeps_every_tensor(checkpoints):
    out, weight_map = checkpoints["clean"]
    checkpoint, expected = open_with_index(out, weight_map)
    assert expected == [] and checkpoint.issues == []
    assert checkpoint.tensor_file == weight_map and set(checkpoint.tensors) == set(weight_map)


def test_a_tensor_stored_twice_is_reported_once_with_the_index_comparison(checkpoints):
    out, weight_map = checkpoints["duplicate"]
    checkpoint, expected = open_with_index(out, weight_map)
    duplicated = sorted(read_tensors(out / SHARDS[0])[0])[0]
    assert checkpoint.issues[0] == IntegrityIssue(
        SHARDS[2], f"tensor {duplicated!r} is also stored in {SHARDS[0]}", True
    )
    assert checkpoint.issues[1:] == expected == []
    assert checkpoint.tensor_file[duplicated] == SHARDS[0]


def test_without_an_index_a_tensor_stored_twice_is_reported_and_kept_once(checkpoints, tmp_path):
    """No index: no shard claims its tensors, so each is tested against the names read before."""
    duplicate, _ = checkpoints["duplicate"]
    out = copy_checkpoint(duplicate, tmp_path / "out")
    (out / INDEX_FILE).unlink()
    checkpoint = Checkpoint.open(LocalSource(out))
    duplicated = sorted(read_tensors(out / SHARDS[0])[0])[0]
    assert [issue.message for issue in checkpoint.issues] == [
        "3 safetensors files but no index; loaders will not know which to read",
        f"tensor {duplicated!r} is also stored in {SHARDS[0]}",
    ]
    stored = [len(read_tensors(out / name)[0]) for name in SHARDS]
    assert checkpoint.spans == list(zip(SHARDS, [stored[0], stored[1], stored[2] - 1], strict=True))
    assert len(checkpoint.names) == len(set(checkpoint.names)) == len(checkpoint.infos) == sum(stored) - 1
    assert checkpoint.tensor_file[duplicated] == SHARDS[0]
    assert checkpoint.tensors[duplicated] is checkpoint.infos[checkpoint.names.index(duplicated)]
