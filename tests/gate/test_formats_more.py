"""GPTQ, AWQ, HF fine-grained FP8, GPT-OSS MXFP4 and fused 3-D experts, on real-tool outputs:
each good export passes the gate with the right precision, group and exact bits per weight
(docs/formats.md §9.2), and a byte-level edit of it fails for the reason the edit introduced."""

from __future__ import annotations

import struct
from fractions import Fraction as F
from math import ceil
from pathlib import Path

import pytest

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.formats.hf_fp8 import ModuleMatcher
from ptq_validators.io.source import LocalSource
from ptq_validators.layers import build_layer_table, original_layers
from tests.ckpt_edit import RawTensor, edit_json, edit_tensors
from tests.conftest import FIXTURES, gate, manifest, variant


def table(fixture: str, source: str):
    src = original_layers(Checkpoint.open(LocalSource(FIXTURES / source)))
    return build_layer_table(Checkpoint.open(LocalSource(FIXTURES / fixture)), source_shapes=src.shapes)


def gptq_bits(out: int, in_: int, b: int, g: int) -> F:
    """docs/formats.md §9.2 GPTQ row: qweight + qzeros (I32) + scales (F16) + g_idx (I32)."""
    groups = ceil(in_ / g)
    return F(
        32 * ceil(in_ * b / 32) * out + 32 * groups * ceil(out * b / 32) + 16 * groups * out + 32 * in_,
        out * in_,
    )


# fixture, source, layer, precision, group, original shape, exact bits per weight
CASES = [
    # GPTQModel 7.7, 4-bit g128 (desc_act off and on): down_proj in=256, k_proj in=128 out=64.
    (
        "gptq-w4g128-llama",
        "src-llama",
        "model.layers.0.mlp.down_proj",
        "INT4",
        128,
        (128, 256),
        gptq_bits(128, 256, 4, 128),
    ),
    (
        "gptq-w4g128-llama",
        "src-llama",
        "model.layers.1.self_attn.k_proj",
        "INT4",
        128,
        (64, 128),
        gptq_bits(64, 128, 4, 128),
    ),
    (
        "gptq-w4g128-actorder-llama",
        "src-llama",
        "model.layers.0.mlp.down_proj",
        "INT4",
        128,
        (128, 256),
        gptq_bits(128, 256, 4, 128),
    ),
    # AutoAWQ 0.2.9 GEMM, 4-bit g128: 4 + 4/g + 16/g whatever the shape.
    (
        "awq-gemm-llama",
        "src-llama",
        "model.layers.0.mlp.down_proj",
        "INT4",
        128,
        (128, 256),
        4 + F(4, 128) + F(16, 128),
    ),
    (
        "awq-gemm-llama",
        "src-llama",
        "model.layers.1.self_attn.v_proj",
        "INT4",
        128,
        (64, 128),
        4 + F(4, 128) + F(16, 128),
    ),
    # transformers FineGrainedFP8 [128, 128] (F32 weight_scale_inv): 8 + 32·ceil(out/128)·ceil(in/128)/N.
    (
        "hf-fp8-llama",
        "src-llama",
        "model.layers.0.mlp.down_proj",
        "FP8_BLOCK",
        128,
        (128, 256),
        8 + F(32 * ceil(128 / 128) * ceil(256 / 128), 128 * 256),
    ),
    (
        "hf-fp8-llama",
        "src-llama",
        "model.layers.1.mlp.gate_proj",
        "FP8_BLOCK",
        128,
        (256, 128),
        8 + F(32 * ceil(256 / 128) * ceil(128 / 128), 256 * 128),
    ),
    # GPT-OSS MXFP4 experts (a labelled stand-in: no CPU producer writes this layout): blocks
    # [E, out, G, 16] + scales [E, out, G] → [E, out, 32G], 4 + 8·ceil(in/32)/in.
    (
        "gptoss-mxfp4",
        "src-gptoss",
        "model.layers.0.mlp.experts.gate_up_proj",
        "MXFP4",
        32,
        (4, 128, 64),
        4 + F(8 * ceil(64 / 32), 64),
    ),
    (
        "gptoss-mxfp4",
        "src-gptoss",
        "model.layers.1.mlp.experts.down_proj",
        "MXFP4",
        32,
        (4, 64, 64),
        4 + F(8 * ceil(64 / 32), 64),
    ),
    # Fused 3-D experts (E=4, hidden 64, intermediate 64) in the BMM layout [E, in, out]: BF16
    # as transformers saves them, NVFP4 as ModelOpt keeps them (packed along in, dim -2).
    (
        "src-gptoss",
        "src-gptoss",
        "model.layers.0.mlp.experts.gate_up_proj",
        "BF16",
        None,
        (4, 64, 128),
        F(16),
    ),
    (
        "modelopt-nvfp4-gptoss",
        "src-gptoss",
        "model.layers.0.mlp.experts.gate_up_proj",
        "NVFP4",
        16,
        (4, 64, 128),
        4 + F(8, 16) + F(32, 4 * 64 * 128),
    ),
    (
        "modelopt-nvfp4-gptoss",
        "src-gptoss",
        "model.layers.1.mlp.experts.down_proj",
        "NVFP4",
        16,
        (4, 64, 64),
        4 + F(8, 16) + F(32, 4 * 64 * 64),
    ),
    (
        "modelopt-nvfp4experts-llama4",
        "src-llama4",
        "model.layers.0.feed_forward.experts.gate_up_proj",
        "NVFP4",
        16,
        (4, 64, 128),
        4 + F(8, 16) + F(32, 4 * 64 * 128),
    ),
    (
        "modelopt-nvfp4experts-llama4",
        "src-llama4",
        "model.layers.1.feed_forward.experts.down_proj",
        "NVFP4",
        16,
        (4, 64, 64),
        4 + F(8, 16) + F(32, 4 * 64 * 64),
    ),
]


@pytest.mark.parametrize(
    ("fixture", "source", "layer", "precision", "group", "shape", "bits"),
    CASES,
    ids=[f"{c[0]}:{'.'.join(c[2].split('.')[-2:])}" for c in CASES],
)
def test_precision_group_shape_and_exact_bits(fixture, source, layer, precision, group, shape, bits):
    row = table(fixture, source).by_name()[layer]
    assert (row.precision.value, row.stored.group_size, row.stored.shape) == (precision, group, shape)
    assert row.stored.problems == []
    assert row.bits_per_weight == bits
    assert row.status == "ok"


@pytest.mark.parametrize(
    ("fixture", "source", "family", "counts"),
    [
        ("gptq-w4g128-llama", "src-llama", "gptq", {"BF16": 2, "INT4": 14}),
        ("gptq-w4g128-actorder-llama", "src-llama", "gptq", {"BF16": 2, "INT4": 14}),
        ("awq-gemm-llama", "src-llama", "awq", {"FP16": 2, "INT4": 14}),
        ("hf-fp8-llama", "src-llama", "hf-fp8", {"BF16": 10, "FP8_BLOCK": 6}),
        ("gptoss-mxfp4", "src-gptoss", "mxfp4", {"BF16": 12, "MXFP4": 4}),
        ("modelopt-nvfp4-gptoss", "src-gptoss", "modelopt", {"BF16": 4, "NVFP4": 12}),
        ("modelopt-nvfp4experts-llama4", "src-llama4", "modelopt", {"BF16": 18, "NVFP4": 4}),
    ],
)
def test_real_export_passes_the_gate(ptqv, fixture, source, family, counts):
    code, checks, report = gate(ptqv, FIXTURES / fixture, FIXTURES / source)
    assert code == 0, [c for c in checks.values() if c["status"] == "fail"]
    assert report["declared"]["family"] == family
    assert report["precision_counts"] == counts


def test_gptq_declaration_reads_config_json_and_compares_quantize_config(ptqv, tmp_path):
    declaration = table("gptq-w4g128-actorder-llama", "src-llama").declaration
    assert declaration.summary == {
        "family": "gptq",
        "origin": "config.json quantization_config",
        "bits": 4,
        "group_size": 128,
        "desc_act": True,
        "sym": True,
        "checkpoint_format": "gptq",
        "lm_head": False,
        "dynamic": [],
        "differs_from_quantize_config": [],
    }
    out = variant(tmp_path, "gptq-w4g128-llama")
    edit_json(out, "quantize_config.json", lambda doc: doc.__setitem__("group_size", 64))
    _, _, report = gate(ptqv, out)
    assert report["declared"]["differs_from_quantize_config"] == ["group_size"]
    edit_json(out, "config.json", lambda doc: doc.pop("quantization_config"))
    _, _, report = gate(ptqv, out)
    assert (report["declared"]["origin"], report["declared"]["group_size"]) == ("quantize_config.json", 64)
    rows = table("gptq-w4g128-llama", "src-llama").by_name()
    assert rows["lm_head"].declared.rule == "lm_head: false"
    assert rows["model.embed_tokens"].declared.precision is None


def test_awq_declaration_reads_config_json():
    declaration = table("awq-gemm-llama", "src-llama").declaration
    assert declaration.summary == {
        "family": "awq",
        "origin": "config.json quantization_config",
        "bits": 4,
        "group_size": 128,
        "zero_point": True,
        "version": "gemm",
        "modules_to_not_convert": [],
    }


def test_hf_fp8_declaration_reads_the_block_and_the_exclusions():
    fp8 = table("hf-fp8-llama", "src-llama")
    assert fp8.declaration.summary == {
        "family": "hf-fp8",
        "origin": "config.json quantization_config",
        "weight_block_size": [128, 128],
        "group_size": 128,
        "activation_scheme": "dynamic",
        "scale_fmt": "float",
        "modules_to_not_convert": ["lm_head", "model.layers.*.self_attn"],
        "modules_to_convert": [],
    }
    rows = fp8.by_name()
    # The glob-looking entry is a regex to transformers: ".*" spans the layer index.
    assert rows["model.layers.1.self_attn.k_proj"].declared.rule == (
        "modules_to_not_convert 'model.layers.*.self_attn'"
    )
    assert rows["model.layers.0.mlp.gate_proj"].stored.note == "block 128x128"


def test_mxfp4_declares_only_experts_and_reads_modules_to_not_convert():
    entry = next(e for e in manifest() if e["name"] == "gptoss-mxfp4")
    assert entry["stand_in"] is True  # the only MXFP4 layout on this host; see fixture_hf.py
    rows = table("gptoss-mxfp4", "src-gptoss").by_name()
    assert {name: row.declared.rule for name, row in rows.items() if "layers.1." in name} == {
        "model.layers.1.mlp.experts.down_proj": "quant_method mxfp4",
        "model.layers.1.mlp.experts.gate_up_proj": "quant_method mxfp4",
        "model.layers.1.mlp.router": "modules_to_not_convert 'model.layers.*.mlp.router'",
        **{
            f"model.layers.1.self_attn.{p}": "modules_to_not_convert 'model.layers.*.self_attn'"
            for p in ("q_proj", "k_proj", "v_proj", "o_proj")
        },
    }
    assert sorted(rows["model.layers.0.mlp.experts.down_proj"].tensors) == ["bias", "blocks", "scales"]


def test_an_mxfp4_entry_naming_the_experts_module_is_matched_as_transformers_matches_it(ptqv, tmp_path):
    """transformers tests an expert parameter's ``…experts`` module against
    ``modules_to_not_convert``; an entry that matches that module (here by its ending) but not
    the parameter's own name excludes the experts, and the exclude check must say it matches
    them (stored MXFP4: a contradiction), not that it matches nothing."""
    out = variant(tmp_path, "gptoss-mxfp4")
    edit_json(
        out, "config.json", lambda c: c["quantization_config"]["modules_to_not_convert"].append("mlp.experts")
    )
    code, checks, _ = gate(ptqv, out, "src-gptoss")
    assert code == 1
    assert checks["excludes"]["details"] == [
        "'mlp.experts' matches 4 quantized modules: model.layers.0.mlp.experts.down_proj, "
        "model.layers.1.mlp.experts.down_proj, model.layers.0.mlp.experts.gate_up_proj, "
        "model.layers.1.mlp.experts.gate_up_proj"
    ]


def test_fused_experts_sit_beside_per_expert_linears():
    rows = table("modelopt-nvfp4experts-llama4", "src-llama4").by_name()
    fused = rows["model.layers.0.feed_forward.experts.gate_up_proj"]
    shared = rows["model.layers.0.feed_forward.shared_expert.gate_proj"]
    assert (fused.group.value, fused.fused, sorted(fused.tensors)) == (
        "experts",
        True,
        ["input_scale", "weight", "weight_scale", "weight_scale_2"],
    )
    assert (shared.group.value, shared.fused, shared.precision.value) == ("mlp", False, "BF16")
    assert shared.declared.rule == "exclude_modules 'model.layers.0.feed_forward.shared_expert*'"


# ---- broken variants: one edit of a real export each --------------------------------------


def _truncate_rows(tensors, name: str, rows: int) -> None:
    tensor = tensors[name]
    row_bytes = len(tensor.data) // tensor.shape[0]
    tensors[name] = RawTensor(tensor.dtype, (rows, *tensor.shape[1:]), tensor.data[: rows * row_bytes])


def test_gptq_scales_rows_that_do_not_match_the_group_size(ptqv, tmp_path):
    out = variant(tmp_path, "gptq-w4g128-llama")
    layer = "model.layers.0.mlp.down_proj"  # in=256, group 128: two rows of scales and qzeros

    def one_group(tensors):
        _truncate_rows(tensors, f"{layer}.scales", 1)
        _truncate_rows(tensors, f"{layer}.qzeros", 1)

    edit_tensors(out, one_group)
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["layer_precision"]["status"] == "fail"
    assert checks["layer_precision"]["details"] == [
        f"{layer}: scales has 1 rows; group_size 128 over in=256 needs 2"
    ]


def test_gptq_dynamic_negation_excludes_a_stored_packed_module(ptqv, tmp_path):
    out = variant(tmp_path, "gptq-w4g128-llama")
    dynamic = {r"-:model\.layers\.1\.mlp\..*": {}}
    edit_json(out, "config.json", lambda doc: doc["quantization_config"].__setitem__("dynamic", dynamic))
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["measured"]["quantized_but_excluded"] == 3
    assert (
        "model.layers.1.mlp.up_proj: quantized but excluded — stored INT4, declared unquantized "
        r"(dynamic '-:model\\.layers\\.1\\.mlp\\..*')"
    ) in checks["coverage"]["details"]


def test_gptq_dynamic_override_is_applied_in_order(ptqv, tmp_path):
    out = variant(tmp_path, "gptq-w4g128-llama")
    layer = "model.layers.0.mlp.down_proj"
    # The first matching pattern wins: the negation listed after it never applies to down_proj.
    dynamic = {r"+:model\.layers\.0\.mlp\.down": {"bits": 8}, r"-:model\.layers\.0\.mlp\.d": {}}
    edit_json(out, "config.json", lambda doc: doc["quantization_config"].__setitem__("dynamic", dynamic))
    code, checks, report = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["measured"]["declaration_mismatch"] == 1
    assert checks["layer_precision"]["details"] == [
        f"{layer}: qweight has 32 rows for in=256: 4-bit codes, declared 8-bit"
    ]
    row = next(r for r in report["layers"] if r["name"] == layer)
    assert (row["precision"], row["declared"]) == ("INT4", "INT8")


def test_gptq_lm_head_flag_declares_the_head_quantized(ptqv, tmp_path):
    out = variant(tmp_path, "gptq-w4g128-llama")
    edit_json(out, "config.json", lambda doc: doc["quantization_config"].__setitem__("lm_head", True))
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["details"] == [
        "lm_head: unexpected unquantized — stored BF16, declared W4A16 (bits 4, group_size 128)"
    ]


def test_awq_substring_exclusion_of_stored_packed_modules(ptqv, tmp_path):
    out = variant(tmp_path, "awq-gemm-llama")
    # AutoAWQ matches by substring: "mlp" excludes every MLP projection of both layers.
    edit_json(
        out,
        "config.json",
        lambda doc: doc["quantization_config"].__setitem__("modules_to_not_convert", ["mlp"]),
    )
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["measured"]["quantized_but_excluded"] == 6
    assert (
        "model.layers.0.mlp.gate_proj: quantized but excluded — stored INT4, declared "
        "unquantized (modules_to_not_convert 'mlp')"
    ) in checks["coverage"]["details"]


def test_awq_scales_rows_that_do_not_match_the_group_size(ptqv, tmp_path):
    out = variant(tmp_path, "awq-gemm-llama")
    layer = "model.layers.1.mlp.down_proj"

    def one_group(tensors):
        _truncate_rows(tensors, f"{layer}.scales", 1)
        _truncate_rows(tensors, f"{layer}.qzeros", 1)

    edit_tensors(out, one_group)
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["layer_precision"]["details"] == [
        f"{layer}: scales has 1 rows; group_size 128 over in=256 needs 2"
    ]


def test_fused_expert_block_scale_that_does_not_tile(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-gptoss")
    name = "model.layers.0.mlp.experts.down_proj_weight_scale"  # [E, in/16, out] = [4, 4, 64]

    def drop_a_row(tensors):
        scale = tensors[name]
        row = len(scale.data) // (4 * 4)
        data = b"".join(scale.data[(e * 4) * row : (e * 4 + 3) * row] for e in range(4))
        tensors[name] = RawTensor(scale.dtype, (4, 3, 64), data)

    edit_tensors(out, drop_a_row)
    code, checks, _ = gate(ptqv, out, FIXTURES / "src-gptoss")
    assert code == 1
    assert checks["layer_precision"]["details"] == [
        "model.layers.0.mlp.experts.down_proj: weight_scale [4, 3, 64] does not tile weight [4, 32, 64]"
    ]


def _fp8_config(directory: Path, **changes) -> None:
    edit_json(directory, "config.json", lambda doc: doc["quantization_config"].update(changes))


def test_hf_fp8_layers_left_in_bf16_without_an_exclusion(ptqv, tmp_path):
    out = variant(tmp_path, "hf-fp8-llama")
    _fp8_config(out, modules_to_not_convert=["lm_head"])
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["measured"]["unexpected_unquantized"] == 8
    assert (
        "model.layers.0.self_attn.k_proj: unexpected unquantized — stored BF16, declared FP8_BLOCK dynamic "
        "(weight_block_size [128, 128])"
    ) in checks["coverage"]["details"]


def test_hf_fp8_null_exclusions_keep_only_the_output_embedding(ptqv, tmp_path):
    out = variant(tmp_path, "hf-fp8-llama")
    _fp8_config(out, modules_to_not_convert=None)
    code, checks, report = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["measured"]["unexpected_unquantized"] == 8  # the attention layers
    head = next(r for r in report["layers"] if r["name"] == "lm_head")
    assert (head["status"], head["declared_by"]) == (
        "ok",
        "modules_to_not_convert null: the output embedding is kept",
    )


def test_hf_fp8_module_boundary_exclusion_of_stored_fp8(ptqv, tmp_path):
    out = variant(tmp_path, "hf-fp8-llama")
    _fp8_config(out, modules_to_not_convert=["lm_head", "model.layers.*.self_attn", "model.layers.1"])
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["measured"]["quantized_but_excluded"] == 3  # layer 1's MLP


def test_hf_fp8_declared_block_columns_differ_from_the_stored_grid(ptqv, tmp_path):
    out = variant(tmp_path, "hf-fp8-llama")
    _fp8_config(out, weight_block_size=[128, 64])
    code, checks, report = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["measured"]["declaration_mismatch"] == 6
    row = next(r for r in report["layers"] if r["name"] == "model.layers.0.mlp.down_proj")
    assert (row["group_size"], row["declared_group_size"]) == (128, 64)


def test_hf_fp8_declared_block_rows_differ_from_the_stored_grid(ptqv, tmp_path):
    out = variant(tmp_path, "hf-fp8-llama")
    _fp8_config(out, weight_block_size=[64, 128])  # stored grids are 128x128
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["measured"]["declaration_mismatch"] == 6


def test_mxfp4_experts_excluded_by_metadata_but_stored_packed(ptqv, tmp_path):
    out = variant(tmp_path, "gptoss-mxfp4")
    # transformers tests the experts module: "model.layers.1.mlp" matches it at a module boundary.
    edit_json(
        out,
        "config.json",
        lambda doc: doc["quantization_config"]["modules_to_not_convert"].append("model.layers.1.mlp"),
    )
    code, checks, _ = gate(ptqv, out, FIXTURES / "src-gptoss")
    assert code == 1
    assert checks["coverage"]["details"] == [
        f"model.layers.1.mlp.experts.{p}: quantized but excluded — stored MXFP4, declared unquantized "
        "(modules_to_not_convert 'model.layers.1.mlp')"
        for p in ("down_proj", "gate_up_proj")
    ]


def test_mxfp4_scales_that_are_not_one_per_32_values(ptqv, tmp_path):
    out = variant(tmp_path, "gptoss-mxfp4")
    name = "model.layers.0.mlp.experts.down_proj_scales"  # U8 [4, 64, 2]

    def one_scale_per_row(tensors):
        scale = tensors[name]
        tensors[name] = RawTensor(scale.dtype, (4, 64, 1), scale.data[::2])

    edit_tensors(out, one_scale_per_row)
    code, checks, _ = gate(ptqv, out, FIXTURES / "src-gptoss")
    assert code == 1
    assert checks["layer_precision"]["details"] == [
        "model.layers.0.mlp.experts.down_proj: scales U8 [4, 64, 1] is not one E8M0 exponent per 32 "
        "values: [4, 64, 2]"
    ]


# ---- exclusion dialects, as the loaders apply them -----------------------------------------


@pytest.mark.parametrize(
    ("entry", "name", "excluded"),
    [
        ("lm_head", "lm_head", True),
        ("model.layers.1", "model.layers.1.self_attn.q_proj", True),
        ("model.layers.1", "model.layers.11.self_attn.q_proj", False),  # module boundary
        ("model.layers.*.self_attn", "model.layers.7.self_attn.o_proj", True),  # glob works as regex
        ("mlp.gate", "model.layers.0.mlp.gate", True),  # suffix
        ("mlp.gate", "model.layers.0.mlp.gate_proj", False),
        ("self_attn", "model.layers.0.self_attn.q_proj", False),  # start-anchored, not a substring
    ],
)
def test_transformers_modules_to_not_convert_semantics(entry, name, excluded):
    assert (ModuleMatcher([entry]).first_match(name) == entry) is excluded


def test_hf_fp8_static_activation_scales_pass_names(ptqv, tmp_path):
    """``FineGrainedFP8Config(activation_scheme="static")``: transformers' FP8Linear stores an
    F32 ``activation_scale`` beside every FP8 weight; it is a known role, not a leftover."""
    out = variant(tmp_path, "hf-fp8-llama")
    _fp8_config(out, activation_scheme="static")
    one = struct.pack("<f", 0.5)

    def add_activation_scales(tensors: dict[str, RawTensor]) -> None:
        for name in [n for n in tensors if n.endswith(".weight_scale_inv")]:
            tensors[name.removesuffix("weight_scale_inv") + "activation_scale"] = RawTensor("F32", (), one)

    edit_tensors(out, add_activation_scales)
    code, checks, _ = gate(ptqv, out)
    assert checks["names"]["status"] == "pass", checks["names"]
    assert checks["moe"]["status"] == "skip" and checks["coverage"]["status"] == "pass"
    # The static scales are read like every scalar scale (finite and > 0).
    assert checks["scales"]["status"] == "pass" and "6 scale tensors" in checks["scales"]["detail"]
    assert code == 0, [c for c in checks.values() if c["status"] == "fail"]
