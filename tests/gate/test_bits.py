"""Exact on-disk bits per weight against the docs/formats.md §9.2 formulas, on real-tool outputs."""

from __future__ import annotations

from fractions import Fraction as F
from math import ceil

import pytest

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.io.source import LocalSource
from ptq_validators.layers import build_layer_table, original_layers
from tests.conftest import FIXTURES

OUT, IN = 128, 256  # model.layers.0.mlp.down_proj of the tiny llama
N = OUT * IN

CASES = [
    # fixture, layer, precision, group size, exact bits per weight
    ("modelopt-fp8-llama", "model.layers.0.mlp.down_proj", "FP8", None, 8 + F(32, N)),
    ("modelopt-nvfp4-llama", "model.layers.0.mlp.down_proj", "NVFP4", 16, 4 + F(8, 16) + F(32, N)),
    ("modelopt-int4awq-llama", "model.layers.0.mlp.down_proj", "INT4", 128, 4 + F(32, 128)),
    ("modelopt-w4a8awq-llama", "model.layers.0.mlp.down_proj", "INT4", 128, 4 + F(32, 128) + F(32, N)),
    ("modelopt-int8sq-llama", "model.layers.0.mlp.down_proj", "INT8", None, 8 + F(32, IN)),
    ("modelopt-fp8-llama", "model.layers.0.self_attn.k_proj", "FP8", None, 8 + F(32, 64 * 128)),
    ("llmc-fp8-llama", "model.layers.0.mlp.down_proj", "FP8", None, 8 + F(16, N)),
    ("llmc-fp8dynamic-llama", "model.layers.0.mlp.down_proj", "FP8_PER_CHANNEL", None, 8 + F(16, IN)),
    (
        "llmc-fp8block-llama",
        "model.layers.0.mlp.down_proj",
        "FP8_BLOCK",
        128,
        8 + F(16 * ceil(OUT / 128) * ceil(IN / 128), N),
    ),
    (
        "llmc-nvfp4-llama",
        "model.layers.0.mlp.down_proj",
        "NVFP4",
        16,
        4 + F(8 * ceil(IN / 16), IN) + F(32, N),
    ),
    (
        "llmc-nvfp4a16-llama",
        "model.layers.0.mlp.down_proj",
        "NVFP4",
        16,
        4 + F(8 * ceil(IN / 16), IN) + F(32, N),
    ),
    (
        "llmc-w4a16-llama",
        "model.layers.0.mlp.down_proj",
        "INT4",
        128,
        F(32 * OUT * ceil(IN * 4 / 32) + 16 * OUT * ceil(IN / 128) + 128, N),
    ),
    (
        "llmc-gptq-w4a16-llama",
        "model.layers.0.mlp.down_proj",
        "INT4",
        128,
        F(32 * OUT * ceil(IN * 4 / 32) + 16 * OUT * ceil(IN / 128) + 128, N),
    ),
    # MoE experts (hidden 128, moe_intermediate 64): ModelOpt splits the fused experts.
    (
        "modelopt-nvfp4-moe",
        "model.layers.0.mlp.experts.0.down_proj",
        "NVFP4",
        16,
        4 + F(8, 16) + F(32, 128 * 64),
    ),
    (
        "llmc-nvfp4-moe",
        "model.layers.0.mlp.experts.0.down_proj",
        "NVFP4",
        16,
        4 + F(8 * ceil(64 / 16), 64) + F(32, 128 * 64),
    ),
    ("src-llama", "model.layers.0.mlp.down_proj", "BF16", None, F(16)),
]


@pytest.mark.parametrize(
    ("fixture", "layer", "precision", "group", "bits"),
    CASES,
    ids=[f"{c[0]}:{c[1].split('.')[-1]}" for c in CASES],
)
def test_bits_per_weight_match_the_formula(fixture, layer, precision, group, bits):
    source = original_layers(
        Checkpoint.open(LocalSource(FIXTURES / "src-moe" if "moe" in fixture else FIXTURES / "src-llama"))
    )
    table = build_layer_table(Checkpoint.open(LocalSource(FIXTURES / fixture)), source_shapes=source.shapes)
    row = table.by_name()[layer]
    assert row.precision.value == precision
    assert row.stored.group_size == group
    assert row.bits_per_weight == bits
    assert row.to_json()["bits_per_weight"] == round(float(bits), 6)


def test_packed_int_width_comes_from_the_declaration_without_a_source():
    table = build_layer_table(Checkpoint.open(LocalSource(FIXTURES / "llmc-w4a16-llama")))
    row = table.by_name()["model.layers.0.mlp.down_proj"]
    assert (row.precision.value, row.stored.shape) == ("INT4", (OUT, IN))


def test_original_shapes_are_recovered_from_packed_layouts():
    expected = {
        "modelopt-nvfp4-llama": (OUT, IN),
        "modelopt-int4awq-llama": (OUT, IN),
        "llmc-nvfp4-llama": (OUT, IN),
        "modelopt-fp8-llama": (OUT, IN),
    }
    for fixture, shape in expected.items():
        table = build_layer_table(Checkpoint.open(LocalSource(FIXTURES / fixture)))
        assert table.by_name()["model.layers.0.mlp.down_proj"].stored.shape == shape, fixture
