"""`ptqv inspect` on the configs of real architectures, the gate's tiny fixtures, and remote code."""

from __future__ import annotations

import json

import pytest

from ptq_validators.cli import main
from ptq_validators.errors import InputError
from ptq_validators.preflight.gpus import match_gpu
from ptq_validators.preflight.inspection import inspect_model
from ptq_validators.preflight.sizing import calibration_sizing
from tests.preflight.conftest import CONFIGS, FAMILIES, FIXTURES, copy_config

EXPECTED = {
    # family: (kind, experts, top_k, ModelOpt path)
    "llama3": (["dense"], None, None, "hf_ptq"),
    "qwen3": (["dense"], None, None, "hf_ptq"),
    "qwen3_moe": (["moe"], 128, 8, "hf_ptq"),
    "mixtral": (["moe"], 8, 2, "hf_ptq"),
    "deepseek_v3": (["moe", "mtp"], 256, 8, "examples/deepseek"),
    "gpt_oss": (["moe"], 32, 4, "hf_ptq"),
    "gemma3": (["dense", "vlm"], None, None, "hf_ptq"),
    "qwen2_5_vl": (["dense", "vlm"], None, None, "hf_ptq"),
    "llama4": (["moe", "vlm"], 16, 1, "hf_ptq"),
    "nemotron_h": (["dense", "hybrid"], None, None, "hf_ptq"),
}


def test_every_family_has_a_config():
    assert sorted(EXPECTED) == FAMILIES


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_real_architectures(family):
    report = inspect_model(CONFIGS / family, deploy_gpu=match_gpu("B200"))
    kind, experts, top_k, path = EXPECTED[family]
    cfg = report["config"]
    assert cfg["kind"] == kind
    assert (cfg["moe"] or {}).get("experts") == experts
    assert (cfg["moe"] or {}).get("top_k") == top_k
    assert report["transformers"]["knows_model_type"] is True
    assert report["verified"] is not None
    assert report["next_step"]["path"] == path
    assert report["weights"] is None and report["sizing"] is None
    assert "architecture-unknown" not in {f["id"] for f in report["findings"]}
    expected_qformat = "nvfp4_experts_only" if "moe" in kind else "nvfp4_mlp_only"
    assert report["recommendation"]["modelopt_qformat"] == expected_qformat
    json.dumps(report)


def test_fp8_source_warns_that_excluded_layers_become_bf16():
    findings = {f["id"]: f for f in inspect_model(CONFIGS / "deepseek_v3")["findings"]}
    assert findings["source-fp8"]["status"] == "warn"
    assert "BF16, not FP8" in findings["source-fp8"]["detail"]
    assert findings["remote-code-vs-builtin"]["status"] == "warn"
    assert "mtp" in findings


def test_remote_code_of_a_built_in_architecture_prefers_the_built_in_class():
    # Nemotron-H ships auto_map code, and transformers 5 has nemotron_h built in (case 66).
    ids = {f["id"] for f in inspect_model(CONFIGS / "nemotron_h")["findings"]}
    assert "remote-code-vs-builtin" in ids and "hybrid" in ids


MODELING = """\
raise SystemExit("this file must never be executed")
import math
import torch
from torch import nn
from transformers.utils.import_utils import is_causal_conv1d_available
from .configuration_nemotron_h import NemotronHConfig
from configuration_nemotron_h import NemotronHConfig as Again
try:
    from mamba_ssm.ops.triton.layernorm_gated import rmsnorm_fn
except ImportError:
    raise ImportError("mamba-ssm is required by the Mamba model but cannot be imported")
if is_causal_conv1d_available():
    from causal_conv1d import causal_conv1d_fn
try:
    import flash_attn
except ImportError:
    flash_attn = None
def later():
    import transformer_engine.pytorch as te
"""


def test_remote_code_imports_are_read_not_run(tmp_path):
    model = copy_config("nemotron_h", tmp_path / "nemotron")
    (model / "modeling_nemotron_h.py").write_text(MODELING, encoding="utf-8")
    (model / "configuration_nemotron_h.py").write_text("import json\n", encoding="utf-8")
    report = inspect_model(model)
    rows = {row["module"]: row for row in report["remote_code"]["imports"]}
    assert sorted(rows) == [
        "causal_conv1d",
        "flash_attn",
        "mamba_ssm",
        "torch",
        "transformer_engine",
        "transformers",
    ]
    assert rows["mamba_ssm"]["optional"] is False
    assert rows["mamba_ssm"]["package"] == "mamba-ssm"
    assert "--no-build-isolation" in rows["mamba_ssm"]["install"]
    assert rows["causal_conv1d"]["optional"] is True
    assert rows["flash_attn"]["optional"] is True
    assert rows["transformer_engine"]["optional"] is False
    assert rows["torch"]["installed"] is True
    missing = {
        f["detail"].split(" imports ")[1].split(",")[0]: f["status"]
        for f in report["findings"]
        if f["id"] == "remote-code-missing-package"
    }
    assert missing == {
        "mamba_ssm": "fail",
        "causal_conv1d": "warn",
        "flash_attn": "warn",
        "transformer_engine": "fail",
    }
    assert report["verdict"] == "fail"


def test_unparsable_model_code_is_reported(tmp_path):
    model = copy_config("llama3", tmp_path / "m")
    (model / "modeling_x.py").write_text("def broken(:\n", encoding="utf-8")
    findings = {f["id"]: f for f in inspect_model(model)["findings"]}
    assert findings["remote-code-unparsable"]["detail"] == "modeling_x.py: cannot parse (SyntaxError)"


def test_unknown_architecture_blocks_and_cli_exits_1(tmp_path, capsys):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps(
            {
                "model_type": "made_up_arch",
                "architectures": ["MadeUpForCausalLM"],
                "transformers_version": "99.1.0",
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(model), "--json"])
    assert exc.value.code == 1
    report = json.loads(capsys.readouterr().out)
    ids = {f["id"]: f["status"] for f in report["findings"]}
    assert ids["architecture-unknown"] == "fail"
    assert ids["transformers-older-than-model"] == "warn"
    assert ids["unlisted-model"] == "info"
    assert report["next_step"]["path"] == "unlisted"


def test_unknown_architecture_with_auto_map_needs_a_trust_decision(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"model_type": "made_up_arch", "auto_map": {"AutoModelForCausalLM": "modeling_x.MadeUp"}}),
        encoding="utf-8",
    )
    report = inspect_model(model)
    assert {f["id"]: f["status"] for f in report["findings"]}["trust-remote-code"] == "warn"
    assert report["verdict"] == "pass"


def test_tiny_fixture_weights_and_sizing(capsys):
    report = inspect_model(FIXTURES / "src-moe", gpu=match_gpu("L40S"))
    weights = report["weights"]
    assert weights["files"] == ["model.safetensors"]
    assert weights["bytes_by_dtype"] == {"BF16": weights["bytes"]}
    assert weights["params"] * 2 == weights["bytes"]
    assert report["sizing"]["gpus"] == 1 and report["sizing"]["gpu"] == "L40S"
    assert report["next_step"] == {
        "path": "hf_ptq",
        "detail": "examples/hf_ptq/hf_ptq.py on 1 x L40S (locally, or through the launcher on a cluster)",
    }
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(FIXTURES / "src-vlm")])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "kind: dense, vlm" in out and "[info] vlm:" in out and "verdict: pass" in out


@pytest.mark.parametrize(
    ("params_b", "bytes_per_param", "gpu", "gpus", "nodes", "multi"),
    [
        (8, 2, "H100", 1, 1, False),
        (70, 2, "H100", 4, 1, False),
        (70, 2, "H200", 2, 1, False),
        (120, 2, "H100", 8, 1, False),
        (235, 2, "H200", 16, 2, True),  # 200B+ parameters: multi-node FSDP2
        (671, 1, "H100", 16, 2, True),  # FP8 source: ~1 byte per parameter
        (1000, 2, "B200", 24, 3, True),
    ],
)
def test_calibration_sizing(params_b, bytes_per_param, gpu, gpus, nodes, multi):
    spec = match_gpu(gpu)
    params = params_b * 10**9
    sizing = calibration_sizing(params * bytes_per_param, params, spec.memory_gib, spec.name)
    assert (sizing["gpus"], sizing["nodes"], sizing["multi_node_fsdp2"]) == (gpus, nodes, multi)


def test_pickle_only_weights_are_reported_never_loaded(tmp_path):
    model = copy_config("llama3", tmp_path / "m")
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    findings = {f["id"]: f for f in inspect_model(model)["findings"]}
    assert findings["no-weights"]["status"] == "warn"
    assert "pytorch_model.bin" in findings["no-weights"]["detail"]


def test_bad_input_is_one_line_with_the_fix(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(tmp_path)])
    assert exc.value.code == 3
    assert capsys.readouterr().err == (
        f"ptqv: error: {tmp_path}/config.json: missing\n"
        "ptqv: fix: a Hugging Face model directory has a config.json; download it with the "
        "weights\n"
    )
    (tmp_path / "config.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(InputError, match=r"config\.json: not valid JSON"):
        inspect_model(tmp_path)
