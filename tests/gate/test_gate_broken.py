"""Broken variants, each derived by editing a good real-tool export: every blocking check fails
with its own id and names the layer, tensor, key or file at fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ckpt_edit import (
    RawTensor,
    dequantize_layer,
    edit_json,
    edit_tensors,
    read_tensors,
)
from tests.conftest import FIXTURES, SRC_LLAMA, gate, variant


def both_quant_configs(directory: Path, edit) -> None:
    """Apply the same edit to hf_quant_config.json and config.json's quantization_config."""
    edit_json(directory, "hf_quant_config.json", lambda doc: edit(doc["quantization"]))
    edit_json(directory, "config.json", lambda doc: edit(doc["quantization_config"]))


def test_fake_quant_export_is_not_smaller_and_not_compressed(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")
    source, _ = read_tensors(SRC_LLAMA / "model.safetensors")

    def dequantize_everything(tensors):
        for name, tensor in list(tensors.items()):
            if tensor.dtype == "F8_E4M3":  # keep the scales, store the weight in BF16 again
                tensors[name] = source[name]

    edit_tensors(out, dequantize_everything)
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["size"]["status"] == "fail" and checks["size"]["measured"] >= 1.0
    assert checks["coverage"]["status"] == "fail"
    assert checks["coverage"]["measured"]["fake_quant"] == 14


def test_layer_left_in_bf16_but_not_excluded(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    layer = "model.layers.1.mlp.down_proj"
    dequantize_layer(out, SRC_LLAMA, layer)
    code, checks, _ = gate(ptqv, out, SRC_LLAMA, "--qformat", "nvfp4")
    assert code == 1
    assert checks["coverage"]["measured"]["unexpected_unquantized"] == 1
    assert checks["coverage"]["details"] == [
        f"{layer}: unexpected unquantized — stored BF16, declared NVFP4 (quant_algo NVFP4)"
    ]


def test_quantized_layers_that_the_metadata_excludes(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    both_quant_configs(
        out,
        lambda q: q.__setitem__(
            (q.get("exclude_modules") is not None and "exclude_modules") or "ignore",
            [*(q.get("exclude_modules") or q.get("ignore") or []), "model.layers.0.mlp*"],
        ),
    )
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["measured"]["quantized_but_excluded"] == 3
    assert (
        "model.layers.0.mlp.down_proj: quantized but excluded — stored NVFP4, declared "
        "unquantized (exclude_modules 'model.layers.0.mlp*')"
    ) in checks["coverage"]["details"]


def test_declared_format_differs_from_the_stored_one(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-nvfp4-llama")
    both_quant_configs(out, lambda q: q.update(quant_algo="FP8"))
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["measured"]["declaration_mismatch"] == 14


def test_static_activation_declared_without_its_input_scale(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")
    layer = "model.layers.0.self_attn.q_proj"
    edit_tensors(out, lambda t: t.pop(f"{layer}.input_scale"))
    code, checks, report = gate(ptqv, out)
    assert code == 1
    assert checks["coverage"]["details"] == [
        f"{layer}: declaration mismatch — stored FP8 dynamic, declared FP8 static (quant_algo FP8): "
        "no static input scale (input_scale) is stored"
    ]
    row = next(row for row in report["layers"] if row["name"] == layer)
    assert (row["activation"], row["declared_activation"]) == ("FP8 dynamic", "FP8 static")
    assert report["summary"]["layers"]["declaration_mismatch"] == 1
    assert report["failure_class"] == "coverage"


def test_vision_tower_carrying_quantization(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-vlm")
    layer = "vision_tower.encoder.layers.0.mlp.fc1"

    def quantize_vision(tensors):
        weight = tensors[f"{layer}.weight"]
        tensors[f"{layer}.weight"] = RawTensor("F8_E4M3", weight.shape, weight.data[1::2])
        tensors[f"{layer}.weight_scale"] = RawTensor("F32", (), b"\0\0\x80\x3f")

    edit_tensors(out, quantize_vision)
    code, checks, _ = gate(ptqv, out, FIXTURES / "src-vlm")
    assert code == 1
    assert checks["vision"]["status"] == "fail"
    assert checks["vision"]["details"] == [f"{layer}: FP8 (bias, weight, weight_scale)"]
    code, checks, _ = gate(ptqv, out, FIXTURES / "src-vlm", "--allow-quantized-vision")
    assert checks["vision"]["status"] == "warn"


def test_quantized_lm_head_is_a_warning_that_names_it(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")

    def quantize_head(tensors):
        weight = tensors["lm_head.weight"]
        tensors["lm_head.weight"] = RawTensor("F8_E4M3", weight.shape, weight.data[1::2])
        tensors["lm_head.weight_scale"] = RawTensor("F32", (), b"\0\0\x80\x3f")
        tensors["lm_head.input_scale"] = RawTensor("F32", (), b"\0\0\x80\x3f")  # FP8 is static

    edit_tensors(out, quantize_head)
    both_quant_configs(
        out,
        lambda q: q.__setitem__(
            "exclude_modules" if "exclude_modules" in q else "ignore",
            [p for p in q.get("exclude_modules", q.get("ignore", [])) if "lm_head" not in p],
        ),
    )
    code, checks, _ = gate(ptqv, out)
    assert code == 0
    assert checks["lm_head_embed"]["status"] == "warn"
    assert checks["lm_head_embed"]["detail"] == "1 quantized: lm_head"


@pytest.mark.parametrize(
    ("file", "key", "value", "check"),
    [
        ("config.json", "max_position_embeddings", 1024, "config"),
        ("config.json", "rope_theta", 1.0, "config"),
        ("config.json", "tie_word_embeddings", True, "config"),
        ("generation_config.json", "temperature", 0.1, "generation_config"),
        ("generation_config.json", "eos_token_id", [0], "generation_config"),
        ("tokenizer_config.json", "eos_token", "<pad>", "tokenizer"),
    ],
)
def test_metadata_drift_is_blocking(ptqv, tmp_path, file, key, value, check):
    out = variant(tmp_path, "modelopt-fp8-llama")
    edit_json(out, file, lambda doc: doc.__setitem__(key, value))
    code, checks, report = gate(ptqv, out)
    assert code == 1
    assert checks[check]["status"] == "fail"
    diff = next(d for d in report["metadata_diffs"] if d["key"] == key)
    assert (diff["file"], diff["output"], diff["classification"]) == (file, value, "blocking")


def test_expected_config_differences_do_not_block(ptqv):
    code, _checks, report = gate(ptqv, FIXTURES / "modelopt-fp8-llama")
    assert code == 0
    keys = {d["key"]: d["classification"] for d in report["metadata_diffs"]}
    assert keys.get("quantization_config") == "expected"
    assert "blocking" not in keys.values()


def test_vocabulary_change_is_blocking(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")

    def rename_a_token(doc):
        vocab = doc["model"]["vocab"]
        token = sorted(vocab)[40]
        vocab[token + "_renamed"] = vocab.pop(token)

    edit_json(out, "tokenizer.json", rename_a_token)
    code, checks, report = gate(ptqv, out)
    assert code == 1 and checks["tokenizer"]["status"] == "fail"
    diff = next(d for d in report["metadata_diffs"] if d["key"] == "model.vocab")
    assert diff["output"].endswith("(1 added, 1 removed, 0 changed)")


def test_lost_chat_template_is_blocking(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")
    (out / "chat_template.jinja").unlink()
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["chat_template"]["status"] == "fail"
    assert checks["files"]["status"] == "fail"
    assert checks["files"]["measured"] == ["chat_template.jinja"]


def test_changed_chat_template_is_blocking(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")
    path = out / "chat_template.jinja"
    path.write_text(path.read_text() + "{{ eos_token }}")
    code, checks, _ = gate(ptqv, out)
    assert code == 1 and checks["chat_template"]["status"] == "fail"


def test_missing_generation_config_is_blocking(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")
    (out / "generation_config.json").unlink()
    code, checks, _ = gate(ptqv, out)
    assert code == 1
    assert checks["files"]["measured"] == ["generation_config.json"]


def test_stray_safetensors_beside_a_single_file_export(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")
    (out / "model-old.safetensors").write_bytes((SRC_LLAMA / "model.safetensors").read_bytes())
    code, checks, _ = gate(ptqv, out)
    assert code == 1 and checks["integrity"]["status"] == "fail"
    assert checks["integrity"]["details"][0].startswith(
        "model.safetensors.index.json: 2 safetensors files but no index"
    )


def test_pickle_beside_the_export_is_blocking_and_never_loaded(ptqv, tmp_path):
    out = variant(tmp_path, "modelopt-fp8-llama")
    (out / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    code, checks, _ = gate(ptqv, out)
    assert code == 1 and checks["safety"]["status"] == "fail"
    assert checks["safety"]["details"] == [
        "pytorch_model.bin: pickle file in the export (never loaded here; remove it)"
    ]


def test_report_keeps_json_clean_of_logs(ptqv):
    result = ptqv("gate", FIXTURES / "modelopt-fp8-llama", "--source", SRC_LLAMA, "--json")
    json.loads(result.stdout)
    assert result.stderr == ""
