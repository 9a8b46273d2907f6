"""`ptqv plan` on real-architecture configs built on the meta device and the gate's fixtures."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.cli import main
from ptq_validators.io.source import LocalSource
from ptq_validators.layers import LayerRow
from ptq_validators.preflight.plan import plan_model
from ptq_validators.recipes import llmc_scheme, modelopt_qformat
from ptq_validators.recipes.recipe_files import load_recipe_file
from tests.preflight.conftest import CONFIGS, FAMILIES, FIXTURES


def _ids(plan):
    return {w["id"]: w for w in plan["findings"]}


def _qformat(model, name, **kw):
    return plan_model(LocalSource(model), modelopt_qformat(name), {"qformat": name, "ignore": []}, **kw)


def _scheme(model, name, ignore=()):
    return plan_model(
        LocalSource(model), llmc_scheme(name, ignore=list(ignore)), {"scheme": name, "ignore": list(ignore)}
    )


def _recipe(model, path):
    return plan_model(LocalSource(model), load_recipe_file(path), {"recipe": str(path), "ignore": []})


@pytest.mark.parametrize("family", FAMILIES)
def test_every_real_architecture_plans_on_the_meta_device(family):
    plan = _qformat(CONFIGS / family, "fp8")
    assert plan["inventory"]["source"] == "meta-device"
    assert plan["inventory"]["params"] > 10**9
    groups = {g["group"]: g for g in plan["groups"]}
    assert groups["attention"]["matched"] > 0
    if "lm_head" in groups:  # absent when tied to the embeddings (Gemma 3)
        assert groups["lm_head"] == {"group": "lm_head", "total": 1, "matched": 0, "precision": "BF16"}
    # Plan rows are layer-table rows: the same keys as the gate's, and they load back unchanged.
    assert all(LayerRow.from_json(row).to_json() == row for row in plan["layers"])
    assert set(plan["layers"][0]) == {f.name for f in fields(LayerRow)} | {"scheme"}
    # The rows carry the activation side: FP8 (quant_algo FP8) calibrates a static input scale.
    quantized = [row for row in plan["layers"] if row["declared"]]
    assert {(row["activation"], row["scheme"]) for row in quantized} == {("FP8 static", "FP8 static")}
    assert {row["activation"] for row in plan["layers"] if not row["declared"]} == {"none"}
    assert not any(w["id"] == "vision-tower-quantized" for w in plan["findings"])
    json.dumps(plan)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "gemma3", "llama4"])
def test_generic_scheme_on_a_vlm_warns_about_the_vision_tower(family):
    plan = _scheme(CONFIGS / family, "FP8_DYNAMIC", ignore=["lm_head"])
    warning = _ids(plan)["vision-tower-quantized"]
    assert warning["status"] == "warn"
    assert "re:.*visual.*" in warning["detail"]


def test_vision_ignore_written_for_the_real_names_silences_it():
    model = CONFIGS / "qwen2_5_vl"
    # Qwen2.5-VL's runtime names are model.visual.* : a start-anchored 're:visual.*' misses.
    wrong = _scheme(model, "FP8_DYNAMIC", ignore=["lm_head", "re:visual.*"])
    assert "vision-tower-quantized" in _ids(wrong)
    assert _ids(wrong)["zero-match-pattern"]["detail"].startswith("'re:visual.*' matches none")
    right = _scheme(model, "FP8_DYNAMIC", ignore=["lm_head", "re:.*visual.*"])
    assert {"vision-tower-quantized", "projector-quantized"}.isdisjoint(_ids(right))
    assert {g["group"]: g["matched"] for g in right["groups"]}["vision"] == 0


def test_gate_wildcard_on_a_dense_model_hits_gate_proj(tmp_path):
    recipe = tmp_path / "fp8_no_gate.yaml"
    recipe.write_text(
        "metadata: {recipe_type: ptq, description: FP8 without routers}\n"
        "quantize:\n  algorithm: max\n  quant_cfg:\n"
        "    - {quantizer_name: '*', enable: false}\n"
        "    - {quantizer_name: '*weight_quantizer', cfg: {num_bits: [4, 3], axis: null}}\n"
        "    - {quantizer_name: '*input_quantizer', cfg: {num_bits: [4, 3], axis: null}}\n"
        "    - {quantizer_name: '*gate*', enable: false}\n",
        encoding="utf-8",
    )
    plan = _recipe(CONFIGS / "llama3", recipe)
    warning = _ids(plan)["over-broad-pattern"]
    assert warning["detail"].startswith("'*gate*' also hits gate_proj / gate_up_proj (32 MLP")
    rows = {r["name"]: r for r in plan["layers"]}
    assert rows["model.layers.0.mlp.gate_proj"]["precision"] == "BF16"
    assert rows["model.layers.0.mlp.up_proj"]["precision"] == "FP8"
    same = _scheme(CONFIGS / "llama3", "FP8_DYNAMIC", ignore=["re:.*gate"])
    assert "over-broad-pattern" in _ids(same)


def test_router_pattern_done_right_does_not_warn():
    plan = _scheme(CONFIGS / "qwen3_moe", "FP8_DYNAMIC", ignore=["lm_head", "re:.*mlp.gate$"])
    assert "over-broad-pattern" not in _ids(plan)
    assert {g["group"]: g["matched"] for g in plan["groups"]}["router"] == 0


def test_fused_experts_are_reached_by_modelopt_but_not_by_a_linear_target():
    moe = CONFIGS / "qwen3_moe"
    plan = _qformat(moe, "nvfp4_experts_only")
    groups = {g["group"]: g for g in plan["groups"]}
    assert groups["experts"] == {
        "group": "experts",
        "total": 48 * 128 * 3,
        "matched": 48 * 128 * 3,
        "precision": "NVFP4",
    }
    assert plan["verdict"] == "pass"
    rows = {r["name"]: r for r in plan["layers"]}
    row = rows["model.layers.0.mlp.experts.7.down_proj"]
    assert (row["group"], row["precision"], row["group_size"], row["fused"]) == ("experts", "NVFP4", 16, True)
    assert (row["declared"], row["declared_by"]) == ("NVFP4", "enabled by '*.experts.*weight_quantizer'")
    # llm-compressor 0.14 linearises fused experts before it quantizes: a Linear target reaches them.
    linear_only = _scheme(moe, "NVFP4", ignore=["lm_head", "re:.*mlp.gate$"])
    assert "fused-experts-unreached" not in _ids(linear_only)
    experts = {g["group"]: g for g in linear_only["groups"]}["experts"]
    assert experts["matched"] == experts["total"] and experts["precision"] == "NVFP4"


def test_preset_for_experts_on_a_dense_model_quantizes_nothing(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plan", str(CONFIGS / "qwen3"), "--qformat", "nvfp4_experts_only"])
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert "[fail] nothing-quantized" in out and out.rstrip().endswith("verdict: fail")


def test_dimensions_not_divisible_by_the_group_size_block():
    plan = _scheme(CONFIGS / "qwen2_5_vl", "NVFP4", ignore=["lm_head"])
    finding = _ids(plan)["not-divisible"]
    assert finding["status"] == "fail" and "[1280, 3420]" in finding["detail"]
    llama4 = _scheme(CONFIGS / "llama4", "NVFP4A16", ignore=["lm_head"])
    assert "588" in _ids(llama4)["not-divisible"]["detail"]


def test_mtp_layers_and_fp8_source():
    plan = _qformat(CONFIGS / "deepseek_v3", "nvfp4_experts_only")
    assert "fp8-source-layers-become-bf16" in _ids(plan)


def test_deploy_gpu_blocks_a_format_it_cannot_serve():
    plan = plan_model(
        LocalSource(CONFIGS / "llama3"),
        modelopt_qformat("nvfp4_mlp_only"),
        {"qformat": "nvfp4_mlp_only", "ignore": []},
        deploy_gpu=__import__("ptq_validators.preflight.gpus", fromlist=["match_gpu"]).match_gpu("H100"),
    )
    assert _ids(plan)["format-needs-newer-gpu"]["status"] == "fail"


LLMC_MIXED = """\
quant_stage:
  quant_modifiers:
    QuantizationModifier:
      ignore: [lm_head]
      config_groups:
        group_0:
          targets: ['re:.*\\.down_proj$']
          weights: {num_bits: 8, type: float, strategy: channel, symmetric: true}
        group_1:
          targets: ['re:.*self_attn\\.(k|o|q|v)_proj$', 're:.*\\.(gate|up)_proj$']
          weights: {num_bits: 4, type: float, strategy: tensor_group, group_size: 16}
"""


def test_llm_compressor_recipe_file_with_mixed_groups(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(LLMC_MIXED, encoding="utf-8")
    plan = _recipe(FIXTURES / "src-llama", recipe)
    rows = {r["name"]: (r["precision"], r["group_size"]) for r in plan["layers"]}
    assert rows["model.layers.0.mlp.down_proj"] == ("FP8_PER_CHANNEL", None)
    assert rows["model.layers.0.mlp.gate_proj"] == ("NVFP4", 16)
    assert rows["model.layers.1.self_attn.o_proj"] == ("NVFP4", 16)
    assert rows["lm_head"] == ("BF16", None)
    assert plan["verdict"] == "pass" and plan["inventory"]["source"] == "meta-device"


def test_plan_saved_before_agrees_with_the_real_modelopt_export(tmp_path, capsys):
    """src-moe quantized by ModelOpt 0.47 with --qformat nvfp4 is the export the plan predicts."""
    out = tmp_path / "plan.json"
    with pytest.raises(SystemExit) as exc:
        main(["plan", str(FIXTURES / "src-moe"), "--qformat", "nvfp4", "--out", str(out), "--json"])
    assert exc.value.code == 0
    plan = json.loads(out.read_text(encoding="utf-8"))
    assert plan == json.loads(capsys.readouterr().out)
    assert plan["kind"] == "ptqv-plan" and plan["schema_version"] == 1
    assert plan["recipe"] == {"qformat": "nvfp4", "ignore": []}
    export = Checkpoint.open(LocalSource(FIXTURES / "modelopt-nvfp4-moe"))
    exported_linear = {
        n[: -len(".weight")]
        for n, t in export.tensors.items()
        if n.endswith(".weight") and "norm" not in n and "embed" not in n
    }
    assert {row["name"] for row in plan["layers"]} == exported_linear
    for row in plan["layers"]:
        scaled = f"{row['name']}.weight_scale" in export.tensors
        assert scaled == (row["precision"] == "NVFP4"), row["name"]
    excluded = json.loads((FIXTURES / "modelopt-nvfp4-moe" / "hf_quant_config.json").read_text("utf-8"))[
        "quantization"
    ]["exclude_modules"]
    names = {row["name"] for row in plan["layers"]}
    # src-moe ties lm_head to the embeddings, so neither is a separate linear weight.
    assert set(excluded) - names == {"model.embed_tokens", "lm_head"}
    assert sorted(r["name"] for r in plan["layers"] if r["precision"] == "BF16") == sorted(
        e for e in excluded if e in names
    )


def test_usage_and_input_errors(tmp_path, capsys):
    model = str(FIXTURES / "src-llama")
    for argv, code in [
        (["plan", model], 2),
        (["plan", model, "--qformat", "fp8", "--scheme", "FP8"], 2),
        (["plan", model, "--qformat", "fp8", "--ignore", "lm_head"], 2),
        (["plan", model, "--qformat", "fp9"], 2),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == code, argv
    bad = tmp_path / "bad.yaml"
    bad.write_text("quant_stage: [unclosed\n", encoding="utf-8")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["plan", model, "--recipe", str(bad)])
    assert exc.value.code == 3
    assert capsys.readouterr().err.startswith(f"ptqv: error: {bad}: invalid YAML")
    auto = tmp_path / "auto.yaml"
    auto.write_text("metadata: {recipe_type: auto_quantize}\nquantize: {}\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        main(["plan", model, "--recipe", str(auto)])
    assert exc.value.code == 3
