"""Issue-3 checks: each passes on real-tool exports and fails, naming the layer or tensor at
fault, on a variant derived by editing one."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.checks.moe import check_moe_completeness
from ptq_validators.io.source import LocalSource
from ptq_validators.layers import build_layer_table
from tests.ckpt_edit import RawTensor, dequantize_layer, edit_json, edit_tensors
from tests.conftest import FIXTURES, variant
from tests.conftest import gate as gate_report
from tests.gate.test_layout_sharing import reference_moe

F32_ONE = struct.pack("<f", 1.0)


def gate(ptqv, output: Path, source: str, *args: str):
    return gate_report(ptqv, output, source, *args)[:2]  # these tests need no whole report


def set_scalar(tensors, name: str, value: float) -> None:
    tensor = tensors[name]
    assert tensor.dtype == "F32"
    tensors[name] = RawTensor("F32", tensor.shape, struct.pack("<f", value) * max(1, len(tensor.data) // 4))


@pytest.mark.parametrize(
    ("fixture", "source", "check", "status"),
    [
        ("modelopt-nvfp4-moe", "src-moe", "moe", "pass"),
        ("llmc-nvfp4-moe", "src-moe", "moe", "pass"),
        ("modelopt-nvfp4-llama4", "src-llama4", "moe", "pass"),
        ("modelopt-nvfp4-llama", "src-llama", "fused", "pass"),
        ("llmc-nvfp4-llama", "src-llama", "fused", "pass"),
        ("modelopt-fp8kv-llama", "src-llama", "kv_cache", "pass"),
        ("llmc-fp8kv-llama", "src-llama", "kv_cache", "pass"),
        ("modelopt-fp8-llama", "src-llama", "kv_cache", "skip"),
        ("modelopt-nvfp4-llama", "src-llama", "quant_config", "pass"),
        ("modelopt-nvfp4mlp-moe", "src-moe", "excludes", "pass"),
        ("llmc-nvfp4-moe", "src-moe", "excludes", "pass"),
        ("modelopt-nvfp4-moe", "src-moe", "special", "pass"),
        ("modelopt-fp8-vlm", "src-vlm", "names", "pass"),
        ("llmc-w4a16-llama", "src-llama", "names", "pass"),
        ("modelopt-nvfp4-llama", "src-llama", "alignment", "pass"),
        ("llmc-fp8block-llama", "src-llama", "alignment", "warn"),
        ("modelopt-nvfp4-moe", "src-moe", "scales", "pass"),
        ("modelopt-fp8-llama", "src-llama", "safety", "pass"),
    ],
)
def test_real_exports_pass(ptqv, fixture, source, check, status):
    code, checks = gate(ptqv, FIXTURES / fixture, source)
    assert checks[check]["status"] == status, checks[check]
    assert code == 0


def test_expert_without_its_input_scale(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-moe")
    edit_tensors(out, lambda t: t.pop("model.layers.1.mlp.experts.2.down_proj.input_scale"))
    code, checks = gate(ptqv, out, "src-moe")
    assert code == 1
    assert checks["moe"]["details"] == [
        "model.layers.1.mlp.experts.*.down_proj: expert ids [2] lack input_scale"
    ]
    assert checks["moe"]["detail"] == "1 problem in 1 of 2 MoE layers"
    # Reported once, by the MoE check: coverage counts the expert and refers there.
    assert checks["coverage"]["status"] == "pass" and checks["coverage"]["details"] == []
    assert checks["coverage"]["detail"].endswith(
        "1 expert layer without the declared static input scale (see MoE expert completeness)"
    )


def test_expert_excluded_among_quantized_siblings(ptqv, tmp_path):
    """One expert kept BF16 by an exclude entry, its siblings NVFP4: said so, once per projection
    (not as lacking three scales each), and still blocking."""
    out = variant(tmp_path, "modelopt-nvfp4-moe")
    expert = "model.layers.1.mlp.experts.2"
    for projection in ("gate_proj", "up_proj", "down_proj"):
        dequantize_layer(out, FIXTURES / "src-moe", f"{expert}.{projection}")
    entry = f"{expert}.*"
    edit_json(out, "hf_quant_config.json", lambda d: d["quantization"]["exclude_modules"].append(entry))
    edit_json(out, "config.json", lambda d: d["quantization_config"]["ignore"].append(entry))
    code, checks = gate(ptqv, out, "src-moe")
    assert code == 1
    assert checks["moe"]["details"] == [
        f"model.layers.1.mlp.experts.*.{projection}: expert ids [2] are declared unquantized "
        f"(exclude_modules {entry!r}) and stored BF16 among quantized siblings: engines load a MoE "
        "layer's experts as one fused module of one format"
        for projection in ("down_proj", "gate_proj", "up_proj")
    ]
    assert checks["moe"]["detail"] == "3 problems in 1 of 2 MoE layers"
    # As declared: no other check objects.
    assert [c for c, result in checks.items() if result["status"] == "fail"] == ["moe"]
    # Told expert by expert alike.
    checkpoint = Checkpoint.open(LocalSource(out))
    table = build_layer_table(checkpoint)
    assert check_moe_completeness(table, checkpoint.config).to_json() == reference_moe(
        table, checkpoint.config
    )


def test_missing_expert(ptqv, tmp_path):
    out = variant(tmp_path, "llmc-nvfp4-moe")
    prefix = "model.layers.0.mlp.experts.3.up_proj."
    edit_tensors(out, lambda t: [t.pop(n) for n in list(t) if n.startswith(prefix)])
    code, checks = gate(ptqv, out, "src-moe")
    assert code == 1
    assert "model.layers.0.mlp.experts.*.up_proj: expert ids [3] are missing" in checks["moe"]["details"]
    assert checks["names"]["status"] == "fail"


def test_nvfp4_global_scales_that_disagree_within_qkv(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    edit_tensors(out, lambda t: set_scalar(t, "model.layers.0.self_attn.k_proj.weight_scale_2", 0.5))
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    (detail,) = checks["fused"]["details"]
    assert detail.startswith(
        "model.layers.0.self_attn.{q_proj,k_proj,v_proj}: weight_scale_2 differs across members: q_proj="
    )
    assert "k_proj=0.5" in detail


def test_a_group_with_two_disagreeing_scales_counts_once(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    k_proj = "model.layers.0.self_attn.k_proj."
    edit_tensors(
        out, lambda t: [set_scalar(t, k_proj + role, 0.5) for role in ("weight_scale_2", "input_scale")]
    )
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert len(checks["fused"]["details"]) == 2
    assert checks["fused"]["detail"] == "1 of 4 groups inconsistent"


def test_non_finite_scales_are_left_to_the_scale_check(ptqv, tmp_path):
    """NaN never equals NaN: a group whose members store NaN is no disagreement of values but
    broken values, which the scale check names; the fused check does not repeat it as "differs"."""
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    members = [f"model.layers.0.self_attn.{m}_proj.weight_scale_2" for m in "qkv"]
    edit_tensors(out, lambda t: [set_scalar(t, name, math.nan) for name in members])
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert checks["fused"]["status"] == "pass", checks["fused"]
    assert checks["scales"]["status"] == "fail"


def test_compressed_tensors_gate_up_global_scales_that_disagree(ptqv, tmp_path):
    out = variant(tmp_path, "llmc-nvfp4-llama")
    edit_tensors(out, lambda t: set_scalar(t, "model.layers.1.mlp.up_proj.weight_global_scale", 3.0))
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert checks["fused"]["details"][0].startswith(
        "model.layers.1.mlp.{gate_proj,up_proj}: weight_global_scale differs"
    )


def test_fp8_weight_scales_may_differ_within_qkv(ptqv):
    _code, checks = gate(ptqv, FIXTURES / "modelopt-fp8-llama", "src-llama")
    assert checks["fused"]["status"] == "pass"
    assert all("normal: engines requantize to the max" in d for d in checks["fused"]["details"])


def test_fused_members_in_different_formats(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    layer = "model.layers.0.self_attn.v_proj"
    dequantize_layer(out, FIXTURES / "src-llama", layer)
    edit_json(out, "hf_quant_config.json", lambda d: d["quantization"]["exclude_modules"].append(layer))
    edit_json(out, "config.json", lambda d: d["quantization_config"]["ignore"].append(layer))
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert checks["fused"]["details"][0] == (
        "model.layers.0.self_attn.{q_proj,k_proj,v_proj}: members stored in different formats: "
        "q_proj NVFP4, k_proj NVFP4, v_proj BF16 — vLLM and SGLang load them as one fused matrix "
        "of one format and refuse the checkpoint at load; quantize the group alike"
    )


def test_kv_scale_pair_broken(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8kv-llama")
    edit_tensors(out, lambda t: t.pop("model.layers.1.self_attn.v_proj.v_scale"))
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert checks["kv_cache"]["details"] == ["model.layers.1.self_attn: only k_scale is stored"]


def test_kv_cache_declared_but_absent(ptqv, tmp_path):
    out = variant(tmp_path, "llmc-fp8kv-llama")
    edit_tensors(out, lambda t: [t.pop(n) for n in list(t) if n.endswith(("k_scale", "v_scale"))])
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert checks["kv_cache"]["detail"] == "FP8 KV cache declared but no k/v scales stored"


def test_kv_scales_present_but_undeclared_warn(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8kv-llama")
    edit_json(out, "hf_quant_config.json", lambda d: d["quantization"].update(kv_cache_quant_algo=None))
    edit_json(out, "config.json", lambda d: d["quantization_config"].pop("kv_cache_scheme"))
    _code, checks = gate(ptqv, out, "src-llama")
    assert checks["kv_cache"]["status"] == "warn"
    assert checks["kv_cache"]["measured"]["convention"] == ["<attn>.k_proj.k_scale", "<attn>.v_proj.v_scale"]


def test_the_two_modelopt_configs_disagree(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    edit_json(out, "config.json", lambda d: d["quantization_config"].update(quant_algo="FP8"))
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert checks["quant_config"]["details"] == [
        "quant_algo: hf_quant_config.json 'NVFP4' vs config.json 'FP8'"
    ]


def test_exclude_entry_that_matches_nothing_warns(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    for name, key, block in (
        ("hf_quant_config.json", "exclude_modules", "quantization"),
        ("config.json", "ignore", "quantization_config"),
    ):
        edit_json(out, name, lambda d, key=key, block=block: d[block][key].append("model.layerz.*"))
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 0 and checks["excludes"]["status"] == "warn"
    assert checks["excludes"]["details"] == [
        "'model.layerz.*' matches nothing in this checkpoint (typo, stale name, or another naming scheme)"
    ]


def test_exclude_entry_that_swallows_the_model(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    for name, key, block in (
        ("hf_quant_config.json", "exclude_modules", "quantization"),
        ("config.json", "ignore", "quantization_config"),
    ):
        edit_json(out, name, lambda d, key=key, block=block: d[block][key].append("model*"))
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert checks["excludes"]["details"][0].startswith("'model*' matches 14 quantized modules: ")


def test_quantized_router(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-moe")
    router = "model.layers.0.mlp.gate"

    def quantize_router(tensors):
        weight = tensors[f"{router}.weight"]
        tensors[f"{router}.weight"] = RawTensor("F8_E4M3", weight.shape, weight.data[1::2])
        tensors[f"{router}.weight_scale"] = RawTensor("F32", (), F32_ONE)

    edit_tensors(out, quantize_router)
    code, checks = gate(ptqv, out, "src-moe")
    assert code == 1
    assert checks["special"]["details"] == [
        f"{router}: MoE router stored FP8; routers must stay in high precision"
    ]


def test_separate_lm_head_beside_tied_embeddings(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-moe")
    edit_tensors(out, lambda t: t.__setitem__("lm_head.weight", t["model.embed_tokens.weight"]))
    code, checks = gate(ptqv, out, "src-moe")
    assert code == 1
    assert "tie_word_embeddings is true but lm_head is stored separately" in checks["special"]["details"]


def test_mtp_layer_in_bf16_not_excluded(ptqv, tmp_path):
    # Declaring one decoder layer makes layer 1 an MTP layer (DeepSeek numbering); leave one of
    # its linears in BF16 without excluding it.
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    layer = "model.layers.1.mlp.down_proj"
    dequantize_layer(out, FIXTURES / "src-llama", layer)
    edit_json(out, "config.json", lambda d: d.update(num_hidden_layers=1))
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert checks["special"]["details"] == [
        f"{layer}: MTP layer stored BF16 but not declared excluded (quant_algo NVFP4); engines "
        "will load it as quantized"
    ]


def test_renamed_prefix(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")
    old, new = "model.layers.", "model.language_model.layers."
    moved: list[str] = []

    def rename(tensors):
        for name in [n for n in tensors if n.startswith(old)]:
            tensors[new + name[len(old) :]] = tensors.pop(name)
            moved.append(name)

    edit_tensors(out, rename)
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    # Only the source-comparable names count (weights, norms), not the FP8 scales beside them.
    renamed = sum(1 for name in moved if not name.endswith(("_scale", "scale_2")))
    assert checks["names"]["details"] == [
        f"model.* → model.language_model.* ({renamed} tensors renamed: engines map weights by name)"
    ]


def test_quantizer_leftovers(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")
    name = "model.layers.0.mlp.down_proj.weight_quantizer._amax"
    edit_tensors(out, lambda t: t.__setitem__(name, RawTensor("F32", (), F32_ONE)))
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert checks["names"]["details"] == [
        f"{name}: suffix outside the format's vocabulary (quantizer leftover?)"
    ]


def test_nvfp4_contraction_dim_not_a_multiple_of_16(ptqv, tmp_path):
    out = variant(tmp_path, "llmc-nvfp4-llama")
    layer = "model.layers.0.self_attn.o_proj"

    def misalign(tensors):
        packed = tensors[f"{layer}.weight_packed"]  # [128, 64] → in 120 (8 groups, last partial)
        rows = packed.shape[0]
        tensors[f"{layer}.weight_packed"] = RawTensor("U8", (rows, 60), packed.data[: rows * 60])

    edit_tensors(out, misalign)
    code, checks = gate(ptqv, out, "src-llama")
    assert code == 1
    assert checks["alignment"]["details"] == [
        f"{layer}: contraction dim 120 is not a multiple of the NVFP4 group 16"
    ]


@pytest.mark.parametrize("value", [0.0, math.nan, -1.0])
def test_zero_or_nan_expert_scale(ptqv, tmp_path, value):
    out = variant(tmp_path, "modelopt-nvfp4-moe")
    name = "model.layers.0.mlp.experts.1.gate_proj.input_scale"
    edit_tensors(out, lambda t: set_scalar(t, name, value))
    code, checks = gate(ptqv, out, "src-moe")
    assert code == 1
    (detail,) = checks["scales"]["details"]
    assert detail.startswith(f"{name}: {value:g} (must be finite and > 0)")
    # A zero input scale on an expert is read as what it almost always is, with the fix.
    routed = "this expert was probably never routed during calibration"
    assert (routed in detail) == (value == 0.0)
    assert ("calibrate with more" in detail) == (value == 0.0)


def test_deep_passes_on_a_real_export(ptqv):
    code, checks = gate(ptqv, FIXTURES / "modelopt-nvfp4-llama", "src-llama", "--deep")
    assert code == 0 and checks["deep"]["status"] == "pass"
    assert checks["deep"]["detail"].endswith("tensors scanned, all finite")


def test_deep_finds_nan_block_scales_and_weights(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    scale = "model.layers.0.mlp.up_proj.weight_scale"

    def poison(tensors):
        data = bytearray(tensors[scale].data)
        data[5] = 0x7F  # E4M3 NaN: what an unsaturated cast of a huge scale produces
        tensors[scale] = RawTensor("F8_E4M3", tensors[scale].shape, bytes(data))
        head = bytearray(tensors["lm_head.weight"].data)
        head[0:2] = b"\xc0\x7f"  # BF16 NaN
        tensors["lm_head.weight"] = RawTensor("BF16", tensors["lm_head.weight"].shape, bytes(head))

    edit_tensors(out, poison)
    assert gate(ptqv, out, "src-llama")[1]["deep"]["status"] == "skip"  # header-only default
    code, checks = gate(ptqv, out, "src-llama", "--deep")
    assert code == 1
    assert sorted(checks["deep"]["details"]) == [
        "lm_head.weight: 1 NaN/Inf values (BF16)",
        f"{scale}: 1 NaN/Inf values (F8_E4M3)",
    ]


def test_remote_code_and_internal_keys_warn(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")
    (out / "modeling_custom.py").write_text("import os\n")
    edit_json(out, "config.json", lambda d: d.update(_attn_implementation_internal="kernels-community/x"))
    _code, checks = gate(ptqv, out, "src-llama")
    assert checks["safety"]["status"] == "warn"
    assert checks["safety"]["details"] == [
        "remote code: modeling_custom.py — serving needs an explicit trust_remote_code decision",
        "config.json has internal keys _attn_implementation_internal: check where they came from",
    ]
