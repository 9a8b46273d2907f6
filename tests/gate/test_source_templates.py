"""The source summary read one module per name shape is the one read module by module.

``summarize`` proves by counting tensors that the modules of a name shape store the same roles,
dtypes and shapes, recognises one of them, and reads the shapes it cannot prove alike module by
module. On generated tensor tables that hold what breaks the proof (a module missing a role, a
role in two layouts, a buffer outside the role vocabulary, a fused expert parameter, an empty
module name), its answer must be ``original_layers``' one, and the template path must be the one
taken where it can be.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptq_validators import source_summary
from ptq_validators.checkpoint import Checkpoint
from ptq_validators.io.safetensors import TensorInfo, tensor_info
from ptq_validators.io.source import LocalSource
from ptq_validators.layers import essential_names, original_layers
from ptq_validators.source_summary import summarize

HIDDEN = 64
FP8_BLOCK = {"quant_method": "fp8", "weight_block_size": [128, 128], "modules_to_not_convert": ["lm_head"]}
# (role, dtype, shape of a [rows, HIDDEN] weight) as float and FP8 checkpoints store them.
ROLES = {
    "bf16": lambda rows: [("weight", "BF16", (rows, HIDDEN))],
    "bias": lambda rows: [("weight", "BF16", (rows, HIDDEN)), ("bias", "BF16", (rows,))],
    "fp8": lambda rows: [
        ("weight", "F8_E4M3", (rows, HIDDEN)),
        ("weight_scale_inv", "F32", (math.ceil(rows / 128), math.ceil(HIDDEN / 128))),
    ],
}
MODULE = st.tuples(
    st.sampled_from(["model.layers.{}.mlp.experts.{}.up_proj", "model.layers.{}.self_attn.q_proj", "{}.{}"]),
    st.integers(0, 11),
    st.integers(0, 11),
    st.sampled_from(sorted(ROLES)),
    st.sampled_from([32, 48]),
)
ODD_TENSORS = st.sampled_from(
    [
        [],
        [("model.layers.0.mlp.gate.e_score_correction_bias", "F32", (8,))],  # a buffer: its own role
        [("model.layers.0.mlp.experts.gate_up_proj", "BF16", (4, 64, 64))],  # a fused expert parameter
        [("weight", "BF16", (4, HIDDEN))],  # module ""
        [("model.norm.weight", "BF16", (HIDDEN,))],
    ]
)


def checkpoint_of(directory, tensors: dict[str, TensorInfo], declared: dict | None) -> Checkpoint:
    """A checkpoint of ``tensors`` (headers only: the summary reads no shard) with a config."""
    config = {"model_type": "llama", "num_hidden_layers": 10}
    if declared is not None:
        config["quantization_config"] = declared
    (directory / "config.json").write_text(json.dumps(config))
    return Checkpoint.of_table(LocalSource(directory), tensors)


def table(modules, odd) -> dict[str, TensorInfo]:
    tensors = {}
    for template, layer, expert, roles, rows in modules:
        name = template.format(layer, expert)
        for role, dtype, shape in ROLES[roles](rows):
            tensors.setdefault(f"{name}.{role}", tensor_info(f"{name}.{role}", dtype, shape, 0, 0))
    for name, dtype, shape in odd:
        tensors[name] = tensor_info(name, dtype, shape, 0, 0)
    return tensors


def module_by_module(checkpoint: Checkpoint):
    found = original_layers(checkpoint)
    names = frozenset(found.grouping.names)
    return found.parameters, found.shapes, names, *essential_names(found.grouping)


@settings(max_examples=200, deadline=None)
@given(st.lists(MODULE, max_size=30), ODD_TENSORS, st.sampled_from([None, FP8_BLOCK]))
def test_the_summary_by_template_is_the_summary_module_by_module(tmp_path_factory, modules, odd, declared):
    checkpoint = checkpoint_of(tmp_path_factory.mktemp("source"), table(modules, odd), declared)
    summary = summarize(checkpoint)
    found = (
        summary.parameters,
        summary.shapes,
        summary.tensor_names,
        summary.essential_names,
        summary.other_names,
    )
    assert found == module_by_module(checkpoint)


def expert_table(layers: int, deviant: str | None = None) -> dict[str, TensorInfo]:
    """FP8 experts of ``layers`` layers, one of them (``deviant``) stored otherwise."""
    modules = [
        ("model.layers.{}.mlp.experts.{}.up_proj", layer, expert, "fp8", 32)
        for layer in range(layers)
        for expert in range(8)
    ]
    if deviant == "bf16":
        modules[-1] = (*modules[-1][:3], "bf16", 32)
    elif deviant == "wider":
        modules[-1] = (*modules[-1][:4], 48)
    return table(modules, [])


@pytest.mark.parametrize(
    ("deviant", "by_module"),
    [(None, False), ("bf16", True), ("wider", True)],
)
def test_only_the_shapes_the_counts_cannot_prove_are_read_module_by_module(
    tmp_path, monkeypatch, deviant, by_module
):
    """Ten layers of FP8 experts (1-digit layer indices, one name shape) beside two more
    (2-digit, another): a deviant expert in layer 11 sends that shape alone module by module."""
    tensors = {
        **expert_table(10),
        **{k: v for k, v in expert_table(12, deviant).items() if ".layers.1" in k and ".layers.1." not in k},
    }
    checkpoint = checkpoint_of(tmp_path, tensors, FP8_BLOCK)
    apart: list[int] = []
    real = source_summary.original_layers
    monkeypatch.setattr(
        source_summary,
        "original_layers",
        lambda c, part=None: apart.append(len(part[0]) if part else 0) or real(c, part),
    )
    summary = summarize(checkpoint)
    assert apart == ([2 * 8 * 2 - (deviant == "bf16")] if by_module else [])
    monkeypatch.undo()
    assert (
        summary.parameters,
        summary.shapes,
        summary.tensor_names,
        summary.essential_names,
        summary.other_names,
    ) == module_by_module(checkpoint)
