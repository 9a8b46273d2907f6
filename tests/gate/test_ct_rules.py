"""compressed-tensors' rules are read once (formats/ct_rules.py): the checkpoint adapter and an
llm-compressor recipe file with the same config groups declare the same precision for every
module, including the cases the two copies used to disagree on (NVFP4 by strategy, not group
size; MXFP8 not read as FP8; a channel group size of -1 is no group)."""

from __future__ import annotations

import pytest
import yaml

from ptq_validators.formats.compressed_tensors import CompressedTensorsDeclaration
from ptq_validators.recipes.recipe_files import load_recipe_file

NAME = "model.layers.0.mlp.down_proj"

# weight args, the precision and group size compressed-tensors means by them
CASES = [
    ({"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16}, "NVFP4", 16),
    ({"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 32}, "NVFP4", 32),
    ({"num_bits": 4, "type": "float", "strategy": "group", "group_size": 32}, "MXFP4", 32),
    ({"num_bits": 4, "type": "float", "strategy": "group", "group_size": 16}, "MXFP4", 16),
    ({"num_bits": 8, "type": "float", "strategy": "group", "group_size": 32}, "MXFP8", 32),
    ({"num_bits": 8, "type": "float", "strategy": "tensor"}, "FP8", None),
    ({"num_bits": 8, "type": "float", "strategy": "channel"}, "FP8_PER_CHANNEL", None),
    ({"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [128, 64]}, "FP8_BLOCK", 64),
    ({"num_bits": 4, "type": "int", "group_size": 128}, "INT4", 128),  # strategy inferred: group
    ({"num_bits": 8, "type": "int", "strategy": "channel", "group_size": -1}, "INT8", None),
]


def _declaration(groups: dict, ignore: list[str] | None = None) -> CompressedTensorsDeclaration:
    return CompressedTensorsDeclaration(
        {
            "quant_method": "compressed-tensors",
            "format": "pack-quantized",
            "quantization_status": "compressed",
            "config_groups": groups,
            "ignore": ignore or [],
        }
    )


def _recipe(tmp_path, groups: dict, ignore: list[str] | None = None):
    path = tmp_path / "recipe.yaml"
    modifier = {"config_groups": groups, "ignore": ignore or []}
    path.write_text(yaml.safe_dump({"quant_stage": {"quant_modifiers": {"QuantizationModifier": modifier}}}))
    return load_recipe_file(path)


@pytest.mark.parametrize(("weights", "precision", "group"), CASES)
def test_adapter_and_recipe_read_args_alike(tmp_path, weights, precision, group):
    groups = {"group_0": {"targets": ["Linear"], "weights": weights}}
    declared = _declaration(groups).declared(NAME, module_class="Linear")
    intended = _recipe(tmp_path, groups).intent(NAME, module_class="Linear")
    assert (declared.precision.value, declared.group_size) == (precision, group)
    assert (intended.precision.value, intended.group_size) == (precision, group)


def test_target_priority_is_compressed_tensors_own(tmp_path):
    fp8 = {"num_bits": 8, "type": "float", "strategy": "tensor"}
    int4 = {"num_bits": 4, "type": "int", "group_size": 128}
    nvfp4 = CASES[0][0]
    groups = {
        "a_class": {"targets": ["Linear"], "weights": fp8},
        # Two regex targets: the one that sorts first wins, whatever the group order.
        "b_regex": {"targets": ["re:.*mlp.*"], "weights": int4},
        "c_regex": {"targets": ["re:.*down_proj$"], "weights": nvfp4},
        "d_exact": {"targets": ["model.layers.1.mlp.down_proj"], "weights": fp8},
    }
    declaration, recipe = _declaration(groups, ["lm_head"]), _recipe(tmp_path, groups, ["lm_head"])
    expected = {
        NAME: "NVFP4",  # 're:.*down_proj$' < 're:.*mlp.*'
        "model.layers.0.mlp.up_proj": "INT4",
        "model.layers.0.self_attn.q_proj": "FP8",  # only the class target matches
        "model.layers.1.mlp.down_proj": "FP8",  # an exact name beats every regex
        "lm_head": None,
    }
    for name, precision in expected.items():
        declared = declaration.declared(name, module_class="Linear").precision
        intended = recipe.intent(name, module_class="Linear").precision
        assert (declared and declared.value, intended and intended.value) == (precision, precision), name
