"""The work shared per layout changes no result: the layer table, the reader's tensor entries,
the source summary, every check that judges a layer kind once, and the JSON text are those of a
per-tensor reference path, on every fixture and on small synthetic DeepSeek-V3-shaped
checkpoints (the benchmark's generator, at a few layers and experts, with exclusions that tell
layers apart by their index)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import struct
import sys
from collections import Counter
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.checks import alignment, coverage, excludes, fused, kv_cache, moe, size, special
from ptq_validators.checks import names as names_check
from ptq_validators.checks import recipe as recipe_check
from ptq_validators.envelope import render_json
from ptq_validators.formats import read_declaration, recognize
from ptq_validators.formats.base import Hints, Module
from ptq_validators.formats.roles import (
    KNOWN_ROLES,
    PACKED_ANCHORS,
    QUANTIZATION_ROLES,
    SCALAR_SCALE_ROLES,
    WEIGHT_SIDE_ROLES,
)
from ptq_validators.gate import GateOptions, run_gate
from ptq_validators.gate_documents import MAX_SCALAR_BYTES, read_scalar_scales
from ptq_validators.globs import index_key
from ptq_validators.io.safetensors import DTYPE_BITS, HeaderError, layout_number, read_header
from ptq_validators.io.source import LocalSource
from ptq_validators.layers import (
    Grouping,
    Layer,
    LayerTable,
    _natural_key,
    build_layer_table,
    is_layer,
    layer_kind,
    module_class,
    read_documents,
    split_role,
)
from ptq_validators.model_config import num_hidden_layers
from ptq_validators.recipes import modelopt_qformat
from ptq_validators.scan import _inventory_coverage, run_scan
from ptq_validators.source_summary import summarize
from ptq_validators.taxonomy import LayerGroup, classify
from ptq_validators.values import DECODABLE, decode
from ptq_validators.verdict import summary as gate_summary
from tests.ckpt_edit import RawTensor, copy_checkpoint, read_tensors, write_tensors
from tests.conftest import FIXTURES, ROOT, manifest, quantized_fixtures, recipe_args

sys.path.insert(0, str(ROOT / "benchmarks"))
import synthetic as syn

TINY_DEEPSEEK = {
    **syn.DEEPSEEK_V3,
    "hidden_size": 256,
    "intermediate_size": 512,
    "moe_intermediate_size": 128,
    "num_hidden_layers": 4,
    "n_routed_experts": 6,
    "first_k_dense_replace": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "q_lora_rank": 64,
    "kv_lora_rank": 32,
    "vocab_size": 512,
}
# ModelOpt's exclusions, the MTP layer by its index as DeepSeek exports write it, and one entry
# whose digits pick single experts (digit-sensitive entries are matched per name).
NVFP4_EXCLUDES = [
    "lm_head",
    "model.embed_tokens",
    "model.layers.*.self_attn*",
    "model.layers.*.mlp.gate",
    "model.layers.4*",
    "model.layers.2.mlp.experts.1*",
]


def reference_table(checkpoint: Checkpoint, shapes: dict[str, tuple[int, ...]] | None = None) -> LayerTable:
    """The layer table the slow way: every tensor split on its own, every module recognised and
    judged on its own, each layer a kind of its own: nothing shared."""
    documents = read_documents(checkpoint)
    declaration = read_declaration(documents)
    depth = num_hidden_layers(documents.get("config.json") or {})
    modules: dict[str, Module] = {}
    placed = []
    for name, info in checkpoint.tensors.items():
        module_name, role, fused = split_role(name, info)
        module = modules.setdefault(module_name, Module(module_name, {}))
        module.tensors[role] = info
        if fused and not module.fused:
            module = modules[module_name] = module._replace(fused=True)
        placed.append((module_name, role, info))
    shadowed = [modules[module].tensors[role] is not info for module, role, info in placed]
    grouping = Grouping(
        modules,
        list(checkpoint.tensors),
        list(checkpoint.tensors.values()),
        [role for _, role, _ in placed],
        shadowed if any(shadowed) else None,
    )
    layers = []
    for module in modules.values():
        if not is_layer(module):
            continue
        group = classify(module.name, num_hidden_layers=depth)
        declared = declaration.declared(module.name, module_class=module_class(module.name, group))
        hints = Hints(
            declaration.declared_bits(module.name),
            declared.group_size,
            (shapes or {}).get(module.name),
            declared.block,
        )
        stored = recognize(module, hints)
        bits = sum(info.bits for role, info in module.tensors.items() if role in WEIGHT_SIDE_ROLES)
        # A kind of its own per layer: nothing shared.
        kind = layer_kind(index_key(module.name), group, module.fused, stored, declared, module.tensors, bits)
        layers.append(Layer(module.name, kind, dict(module.tensors)))
    layers.sort(key=lambda layer: _natural_key(layer.name))
    return LayerTable(layers, declaration, grouping, depth)


def reference_rows(checkpoint: Checkpoint, shapes: dict[str, tuple[int, ...]] | None = None) -> list[Any]:
    return [layer.to_json() for layer in reference_table(checkpoint, shapes).layers]


def reference_summary(checkpoint: Checkpoint) -> tuple[Any, ...]:
    """Parameters, original shapes and essential names one tensor and one layer at a time."""
    table = reference_table(checkpoint)
    names = {layer.name for layer in table.layers}
    parameters = sum(
        layer.elements + sum(info.numel for role, info in layer.tensors.items() if role == "bias")
        for layer in table.layers
    ) + sum(
        info.numel
        for name, module in table.modules.items()
        if name not in names
        for info in module.tensors.values()
    )
    essential = {
        info.name
        for module in table.modules.values()
        for role, info in module.tensors.items()
        if role not in QUANTIZATION_ROLES
    }
    return parameters, {layer.name: layer.stored.shape for layer in table.layers}, essential


def table_checks(table: LayerTable, checkpoint: Checkpoint, recipe: Any, values: Any) -> list[Any]:
    """Every check and figure that reads the layer table, as JSON."""
    config = checkpoint.config
    results = [
        coverage.check_precision(table),
        coverage.check_coverage(table),
        coverage.check_vision(table, allow=False),
        coverage.check_head_and_embeddings(table),
        recipe_check.check_recipe(table, recipe),
        moe.check_moe_completeness(table, config),
        fused.check_fused_groups(table, values),
        kv_cache.check_kv_cache(table),
        excludes.check_exclude_hygiene(table, config),
        special.check_special_modules(table, config),
        alignment.check_alignment(table),
        _inventory_coverage(table),
    ]
    figures = [
        size.quantized_bits(table, 10**9),
        table.parameters,
        gate_summary(table, {"source_bytes": 1, "output_bytes": 1}, None, []),
        [layer.bits_per_weight for layer in table.layers],
    ]
    return [result.to_json() for result in results] + figures


def reference_counts(table: Any) -> tuple[dict[str, int], dict[str, int], dict[str, dict[str, int]]]:
    """Precision, scheme and group counts one layer at a time."""
    precisions = Counter(layer.precision.value for layer in table.layers)
    schemes = Counter(layer.scheme for layer in table.layers)
    groups: dict[str, Counter[str]] = {}
    for layer in table.layers:
        groups.setdefault(layer.group.value, Counter())[layer.scheme] += 1
    return (
        dict(sorted(precisions.items())),
        dict(sorted(schemes.items())),
        {group: dict(sorted(c.items())) for group, c in sorted(groups.items())},
    )


def reference_tensors(checkpoint: Checkpoint) -> dict[str, tuple[Any, ...]]:
    """Every tensor entry straight from ``json.loads`` of each header, with the number of its
    (dtype, shape)."""
    entries = {}
    for shard in checkpoint.headers:
        path = Path(checkpoint.source.root) / shard
        blob = path.read_bytes()
        length = int.from_bytes(blob[:8], "little")
        for name, entry in json.loads(blob[8 : 8 + length]).items():
            if name != "__metadata__":
                begin, end = entry["data_offsets"]
                dtype, shape = entry["dtype"], tuple(entry["shape"])
                entries[name] = (name, dtype, shape, begin, end, layout_number(dtype, shape))
    return entries


def reference_scale_names(checkpoint: Checkpoint) -> list[str]:
    """The scalar scales the gate decodes, one tensor at a time, in the order it reads them
    (shard by shard, by offset)."""
    picked = []
    for name, info in checkpoint.tensors.items():
        role = split_role(name, info)[1]
        small = info.dtype in DECODABLE and info.numel * DTYPE_BITS[info.dtype] <= 8 * MAX_SCALAR_BYTES
        if small and role in SCALAR_SCALE_ROLES and (role != "weight_scale" or info.numel == 1):
            picked.append(name)
    return sorted(
        picked,
        key=lambda n: (
            list(checkpoint.headers).index(checkpoint.tensor_file[n]),
            checkpoint.tensors[n].begin,
        ),
    )


def reference_scale_values(checkpoint: Checkpoint, names: list[str]) -> dict[str, tuple[str, ...]]:
    """Each of ``names`` read and decoded on its own (values as their repr: NaN equals NaN)."""
    values = {}
    for name in names:
        info, shard = checkpoint.tensors[name], checkpoint.tensor_file[name]
        start = checkpoint.headers[shard].data_offset + info.begin
        data = checkpoint.source.read_range(shard, start, info.end - info.begin)
        values[name] = tuple(map(repr, decode(info.dtype, data)))
    return values


def reference_base_names(table: LayerTable, source_names: frozenset[str]) -> tuple[set[str], list[str]]:
    """The names check's source-comparable names and foreign tensors, module by module."""
    bases: set[str] = set()
    foreign: list[str] = []
    for module_name, module in table.modules.items():
        for role, info in module.tensors.items():
            if info.name in source_names:
                bases.add(info.name)
            elif role in PACKED_ANCHORS:
                bases.add(module_name + PACKED_ANCHORS[role])
            elif role in QUANTIZATION_ROLES:
                continue
            elif role not in KNOWN_ROLES or "quantizer" in info.name or role.endswith("_amax"):
                foreign.append(info.name)
            else:
                bases.add(info.name)
    return bases, sorted(foreign)


def assert_same_as_reference(directory: Path, source: Path | None = None, recipe: Any = None) -> None:
    checkpoint = Checkpoint.open(LocalSource(directory))
    assert {name: tuple(info) for name, info in checkpoint.tensors.items()} == reference_tensors(checkpoint)
    # Every checkpoint as a source, quantized ones included (their declarations are not uniform).
    summary = summarize(checkpoint)
    assert (summary.parameters, summary.shapes, set(summary.essential_names)) == reference_summary(checkpoint)
    # The essential and the other names split the source's names, each in table order.
    every, essential, others = (
        list(checkpoint.tensors),
        set(summary.essential_names),
        set(summary.other_names),
    )
    assert essential | others == set(every) and not essential & others
    assert list(summary.essential_names) == [name for name in every if name in essential]
    assert list(summary.other_names) == [name for name in every if name in others]
    shapes = None
    if source is not None:
        shapes = summarize(Checkpoint.open(LocalSource(source))).shapes
        source_table = build_layer_table(Checkpoint.open(LocalSource(source)))
        assert shapes == {layer.name: layer.stored.shape for layer in source_table.layers}
    table = build_layer_table(checkpoint, source_shapes=shapes)
    assert all(layer.kind.template == index_key(layer.name) for layer in table.layers)
    reference = reference_table(checkpoint, shapes)
    assert [layer.to_json() for layer in table.layers] == [layer.to_json() for layer in reference.layers]
    counts = (table.precision_counts(), table.scheme_counts(), table.group_counts())
    assert counts == reference_counts(table) == reference_counts(reference)
    values = read_scalar_scales(checkpoint, table.grouping, SCALAR_SCALE_ROLES)
    assert list(values) == reference_scale_names(checkpoint)
    # The (role, layout) pairs the table found on one module per layout pick what pairing
    # every tensor picks.
    assert table.grouping.role_layouts is not None
    unpaired = dataclasses.replace(table.grouping, role_layouts=None)
    assert read_scalar_scales(checkpoint, unpaired, SCALAR_SCALE_ROLES) == values
    decoded = {name: tuple(map(repr, value)) for name, value in values.items()}
    assert decoded == reference_scale_values(checkpoint, list(values))
    source_summary = summarize(Checkpoint.open(LocalSource(source or directory)))
    known, essential = source_summary.tensor_names, source_summary.essential_names
    bases, foreign = reference_base_names(reference, known)
    expected = (len(bases), sorted(bases - known), sorted(set(essential) - bases), foreign)
    assert names_check.compare_names(table, source_summary) == expected
    assert table_checks(table, checkpoint, recipe, values) == table_checks(
        reference, checkpoint, recipe, values
    )


@pytest.mark.parametrize("entry", manifest(), ids=lambda e: e["name"])
def test_layer_table_and_scan_json_match_the_per_tensor_path(entry):
    directory = FIXTURES / entry["name"]
    recipe = GateOptions(**fixture_recipe(entry)).recipe() if entry.get("source") else None
    assert_same_as_reference(directory, FIXTURES / entry["source"] if entry.get("source") else None, recipe)
    report = run_scan(LocalSource(directory))
    assert render_json(report.to_json(encoded_layers=True)) == render_json(report.to_json())


def fixture_recipe(entry: dict[str, Any]) -> dict[str, Any]:
    """The GateOptions fields that state the recipe a fixture was made with."""
    args = recipe_args(entry)
    return {
        "qformat": args[1] if args[:1] == ["--qformat"] else None,
        "scheme": args[1] if args[:1] == ["--scheme"] else None,
        "ignore": [args[i + 1] for i, a in enumerate(args) if a == "--ignore"],
    }


@pytest.mark.parametrize("entry", quantized_fixtures(), ids=lambda e: e["name"])
def test_gate_json_written_from_templates_is_byte_identical(entry):
    options = GateOptions(**fixture_recipe(entry))
    report = run_gate(LocalSource(FIXTURES / entry["name"]), LocalSource(FIXTURES / entry["source"]), options)
    encoded = render_json(report.to_json(encoded_layers=True))
    assert encoded == render_json(report.to_json())
    assert json.loads(encoded)["layers"] == [layer.to_json() for layer in report.table.layers]


@pytest.fixture(scope="module")
def tiny_deepseek(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A BF16 source, its NVFP4 export (MLP only, ModelOpt's exclusions) and an FP8 export."""
    root = tmp_path_factory.mktemp("tiny-deepseek")
    cfg = TINY_DEEPSEEK
    source = root / "source"
    syn.write_checkpoint(source, cfg, syn.model_tensors(cfg, "bf16", lambda m: True), shard_bytes=1 << 20)
    modules = [t[0].rpartition(".")[0] for t in syn.model_tensors(cfg, "bf16", lambda m: True)]
    exports = []
    for fmt, algo in (("modelopt_nvfp4", "NVFP4"), ("modelopt_fp8", "FP8")):
        kept = [p for p in NVFP4_EXCLUDES if any(fnmatchcase(m, p) for m in modules)]
        tensors = syn.model_tensors(cfg, fmt, lambda m, kept=kept: any(fnmatchcase(m, p) for p in kept))
        quant: dict[str, Any] = {"quant_algo": algo, "kv_cache_quant_algo": None, "exclude_modules": kept}
        if algo == "NVFP4":
            quant["group_size"] = 16
        export = root / algo.lower()
        syn.write_checkpoint(export, cfg, tensors, quant, shard_bytes=1 << 20)
        exports.append(export)
    return source, exports[0], exports[1]


def test_a_fine_grained_fp8_source_matches_the_per_tensor_path(tmp_path, tiny_deepseek):
    """DeepSeek-V3's own FP8 release declares its quantization in config.json: the source's
    layers are judged per kind, not all alike."""
    cfg = {**TINY_DEEPSEEK, "quantization_config": syn.FINE_GRAINED_FP8}
    keep = lambda m: m.endswith("mlp.gate") or "shared_head" in m  # noqa: E731 -- as DeepSeek ships it
    syn.write_checkpoint(tmp_path, cfg, syn.model_tensors(cfg, "hf_fp8", keep), shard_bytes=1 << 20)
    assert_same_as_reference(tmp_path)
    assert_same_as_reference(tiny_deepseek[1], tmp_path, modelopt_qformat("nvfp4_mlp_only"))


def test_synthetic_moe_tables_match_the_per_tensor_path(tiny_deepseek):
    source, nvfp4, fp8 = tiny_deepseek
    assert_same_as_reference(source)
    for export, qformat in ((nvfp4, "nvfp4_mlp_only"), (fp8, "fp8")):
        assert_same_as_reference(export, source, modelopt_qformat(qformat))
        report = run_gate(LocalSource(export), LocalSource(source), GateOptions(qformat=qformat))
        assert render_json(report.to_json(encoded_layers=True)) == render_json(report.to_json())
        assert len(report.table.layers) > 100


@pytest.mark.parametrize("w3_excluded", [False, True])
def test_experts_named_by_number_keep_their_own_templates(tmp_path, w3_excluded):
    """Mixtral names its expert projections ``w1``/``w2``/``w3``, and an exclusion may pick one by
    its digit: names alike but for a digit inside a word are different layers."""
    cfg = TINY_DEEPSEEK
    renamed = {".gate_proj": ".w1", ".down_proj": ".w2", ".up_proj": ".w3"}

    def rename(name: str) -> str:
        for old, new in renamed.items():
            name = name.replace(old, new) if ".experts." in name else name
        return name

    def tensors(fmt: str, excluded: Any) -> list[Any]:
        chosen = syn.model_tensors(cfg, fmt, lambda module: excluded(rename(module)))
        return [(rename(name), *rest) for name, *rest in chosen]

    source, export = tmp_path / "source", tmp_path / "nvfp4"
    syn.write_checkpoint(source, cfg, tensors("bf16", lambda m: True), shard_bytes=1 << 20)
    excludes = ["lm_head", "model.layers.*.self_attn*", "model.layers.*.mlp.gate"] + ["*.w3"] * w3_excluded
    quant = {
        "quant_algo": "NVFP4",
        "group_size": 16,
        "kv_cache_quant_algo": None,
        "exclude_modules": excludes,
    }
    picked = tensors("modelopt_nvfp4", lambda m: any(fnmatchcase(m, p) for p in excludes))
    syn.write_checkpoint(export, cfg, picked, quant, shard_bytes=1 << 20)
    assert_same_as_reference(export, source, modelopt_qformat("nvfp4_mlp_only"))
    table = build_layer_table(Checkpoint.open(LocalSource(export)))
    experts = [layer for layer in table.layers if ".experts." in layer.name]
    assert {layer.name.rpartition(".")[2]: layer.precision.value for layer in experts} == {
        "w1": "NVFP4",
        "w2": "NVFP4",
        "w3": "BF16" if w3_excluded else "NVFP4",
    }


def test_a_tensor_its_module_does_not_hold_is_left_out_alike(tmp_path):
    """A fused expert parameter and a tensor named as its weight land on one module and role:
    the module keeps the later one, and the names check and the source summary see what the
    module holds, as the per-tensor path does."""
    fused = {"dtype": "BF16", "shape": [2, 4, 4], "data_offsets": [0, 64]}
    plain = {"dtype": "BF16", "shape": [4, 4], "data_offsets": [64, 96]}
    scale = {"dtype": "F32", "shape": [], "data_offsets": [96, 100]}
    header = {
        "model.layers.0.mlp.experts.gate_up_proj": fused,
        "model.layers.0.mlp.experts.gate_up_proj.weight": plain,
        "model.layers.0.mlp.experts.gate_up_proj.input_scale": scale,
    }
    header_file(tmp_path, "model.safetensors", header, 100)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 1}))
    grouping = build_layer_table(Checkpoint.open(LocalSource(tmp_path))).grouping
    assert grouping.shadowed == [True, False, False]
    assert_same_as_reference(tmp_path, tmp_path)


def test_scales_of_several_values_each_get_their_own_share(tmp_path):
    """Scalar-role scales of one dtype in one shard, of 2, 0 and 1 values (as many values as
    tensors, but not one each): each tensor gets its own values, as read one by one."""
    copy_checkpoint(FIXTURES / "modelopt-fp8-llama", tmp_path / "out")
    out = tmp_path / "out"
    tensors, _ = read_tensors(out / "model.safetensors")
    scales = sorted(name for name in tensors if name.endswith(".input_scale"))[:3]
    for name, count in zip(scales, (2, 0, 1), strict=True):
        tensors[name] = RawTensor(
            "F32", (count,), struct.pack(f"<{count}f", *[0.5 + i for i in range(count)])
        )
    write_tensors(out / "model.safetensors", tensors)
    assert_same_as_reference(out, FIXTURES / "src-llama")


def header_file(tmp_path: Path, name: str, header: dict[str, Any], data: int) -> None:
    raw = json.dumps(header).encode()
    (tmp_path / name).write_bytes(len(raw).to_bytes(8, "little") + raw + b"\0" * data)


@pytest.mark.parametrize("dimension", ["true", "1.0", "1e0", "-0"])
def test_a_validated_layout_does_not_admit_an_equal_shape_of_another_type(tmp_path, dimension):
    """[1, 4] validated first: [true, 4], [1.0, 4] ... compare equal to it but are no shape."""
    valid = {"dtype": "U8", "shape": [1, 4], "data_offsets": [0, 4]}
    text = json.dumps({"a": valid, "b": {"dtype": "U8", "shape": ["X", 4], "data_offsets": [4, 8]}})
    raw = text.replace('"X"', dimension).encode()
    (tmp_path / "m.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw + b"\0" * 8)
    layouts: dict[Any, Any] = {}
    with pytest.raises(HeaderError) as info:
        read_header(LocalSource(tmp_path), "m.safetensors", layouts)
    assert info.value.reason == "InvalidShape"
    # Across the shards of one checkpoint too: the layout validated in one file is not reused
    # for an equal-looking shape in the next.
    header_file(tmp_path, "a.safetensors", {"a": valid}, 4)
    read_header(LocalSource(tmp_path), "a.safetensors", layouts)
    second = json.dumps({"b": {"dtype": "U8", "shape": ["X", 4], "data_offsets": [0, 4]}})
    blob = second.replace('"X"', dimension).encode()
    (tmp_path / "b.safetensors").write_bytes(len(blob).to_bytes(8, "little") + blob + b"\0" * 4)
    with pytest.raises(HeaderError) as info:
        read_header(LocalSource(tmp_path), "b.safetensors", layouts)
    assert info.value.reason == "InvalidShape"


def test_a_validated_layout_still_checks_each_tensors_offsets(tmp_path):
    entry = {"dtype": "BF16", "shape": [2, 2]}
    header = {"a": {**entry, "data_offsets": [0, 8]}, "b": {**entry, "data_offsets": [8, 12]}}
    header_file(tmp_path, "m.safetensors", header, 12)
    with pytest.raises(HeaderError) as info:
        read_header(LocalSource(tmp_path), "m.safetensors")
    assert info.value.reason == "TensorInvalidInfo"


# The checks that judge kinds, columns or counts at C speed against the per-group and per-name
# loops they replaced (kept here as the reference): on every fixture, on the synthetic MoE
# exports, and on variants of their tables and scale values that make each check speak.


def reference_fused(table: LayerTable, values: dict[str, list[float]]) -> dict[str, Any]:
    """The fused check one group, one member and one scale lookup at a time."""
    by_set: dict[tuple[str, int], dict[str, Layer]] = {}
    for layer in table.layers:
        parent, _, leaf = layer.name.rpartition(".")
        for index, names in enumerate(fused.FUSED_SETS):
            if leaf in names:
                by_set.setdefault((parent, index), {})[leaf] = layer
    groups = [
        [members[n] for n in fused.FUSED_SETS[index] if n in members]
        for (_, index), members in sorted(by_set.items())
        if len(members) > 1
    ]
    if not groups:
        return fused.CheckResult("fused", fused.TITLE, fused.SKIP, "no fused groups").to_json()
    problems, info, broken = [], [], 0
    for group in groups:
        before = len(problems)
        label = f"{group[0].name.rpartition('.')[0]}.{{{','.join(m.name.rpartition('.')[2] for m in group)}}}"
        formats_differ, exclusion_differs, shared, fp8 = fused._judge(tuple(m.kind for m in group))
        if formats_differ:
            problems.append(
                f"{label}: members stored in different formats: "
                + ", ".join(f"{m.name.rpartition('.')[2]} {m.scheme}" for m in group)
                + " — vLLM and SGLang load them as one fused matrix of one format and refuse"
                " the checkpoint at load; quantize the group alike"
            )
            broken += 1
            continue
        if exclusion_differs:
            problems.append(
                f"{label}: some members are declared excluded, others not — the serving engine "
                "fuses them into one layer that is either quantized or not, so it refuses or "
                "misreads the group; exclude all members or none"
            )
        for role in shared:
            found = [values.get(f"{m.name}.{role}") for m in group]
            if any(v is None or len(v) != 1 for v in found):
                continue
            scales = [v[0] for v in found]
            if not all(map(math.isfinite, scales)):
                continue
            if all(v == scales[0] or math.isclose(v, scales[0], rel_tol=1e-6) for v in scales[1:]):
                continue
            if fp8:
                info.append(
                    f"{label}: FP8 weight_scale differs across members (normal: engines requantize to the max)"
                )
            else:
                problems.append(
                    f"{label}: {role} differs across members: "
                    + ", ".join(
                        f"{m.name.rpartition('.')[2]}={v:.6g}" for m, v in zip(group, scales, strict=True)
                    )
                    + " — the fused GEMM takes one value: vLLM silently uses the largest"
                    " (the others' layers lose precision), TensorRT-LLM refuses to build"
                )
        broken += len(problems) > before
    summary = (
        f"{broken} of {len(groups)} groups inconsistent" if problems else f"{len(groups)} groups consistent"
    )
    if info and not problems:
        summary += f" ({len(info)} with differing FP8 weight scales, informational)"
    status = fused.FAIL if problems else fused.PASS
    return fused.CheckResult(
        "fused", fused.TITLE, status, summary, measured=broken, expected=0, details=problems + info
    ).to_json()


def reference_moe(table: LayerTable, config: dict[str, Any]) -> dict[str, Any]:
    """The MoE check one expert at a time."""
    declared = moe.expert_count(config)
    per_moe: dict[tuple[str, str], dict[int, Layer]] = {}
    fused_experts = []
    for layer in table.layers:
        if not moe._EXPERT_TEMPLATE.match(layer.kind.template):
            if layer.fused and layer.group is LayerGroup.EXPERTS:
                fused_experts.append(layer)
            continue
        head, _, tail = layer.name.rpartition(".experts.")
        digits, _, proj = tail.partition(".")
        if digits.isdecimal():
            per_moe.setdefault((head, proj), {})[int(digits)] = layer
    if not per_moe and not fused_experts:
        return moe.CheckResult("moe", moe.TITLE, moe.SKIP, "no MoE experts").to_json()
    details = []
    for (head, proj), experts in sorted(per_moe.items()):
        ids = range(declared) if declared else range(max(experts) + 1)
        absent = [i for i in ids if i not in experts]
        if absent:
            details.append(f"{head}.experts.*.{proj}: expert ids {moe._ids(absent)} are missing")
        required: set[str] = set()
        for expert in experts.values():
            required |= set(expert.kind.roles)
            if expert.precision.is_quantized:
                required |= expert.kind.declared.required_roles
        required.discard("bias")
        lacking: dict[str, list[int]] = {}
        kept: dict[tuple[str, str], list[int]] = {}  # declared unquantized, stored so, among quantized
        some_quantized = any(expert.precision.is_quantized for expert in experts.values())
        for expert_id, expert in sorted(experts.items()):
            roles = sorted(required.difference(expert.kind.roles))
            if (
                roles
                and some_quantized
                and expert.kind.declared.precision is None
                and not expert.precision.is_quantized
            ):
                kept.setdefault((expert.kind.declared.rule, expert.precision.value), []).append(expert_id)
                roles = [role for role in roles if role not in QUANTIZATION_ROLES]
            for role in roles:
                lacking.setdefault(role, []).append(expert_id)
        details += [
            f"{head}.experts.*.{proj}: expert ids {moe._ids(i)} are declared unquantized ({rule}) and stored "
            f"{precision} among quantized siblings: engines load a MoE layer's experts as one fused module "
            "of one format"
            for (rule, precision), i in kept.items()
        ]
        details += [f"{head}.experts.*.{proj}: expert ids {moe._ids(i)} lack {r}" for r, i in lacking.items()]
    for layer in fused_experts:
        stored = layer.stored.shape[0] if len(layer.stored.shape) == 3 else None
        if declared and stored != declared:
            details.append(f"{layer.name}: stores {stored} experts, the config declares {declared}")
    layers = len({head for head, _ in per_moe}) + len({f.name.rpartition(".")[0] for f in fused_experts})
    affected = len({detail.partition(".experts")[0] for detail in details})
    summary = (
        f"{moe.plural(len(details), 'problem')} in {affected} of {moe.plural(layers, 'MoE layer')}"
        if details
        else f"{moe.plural(layers, 'MoE layer')} x {declared or 'all'} experts complete"
    )
    status = moe.FAIL if details else moe.PASS
    return moe.CheckResult(
        "moe", moe.TITLE, status, summary, measured=len(details), expected=0, details=details
    ).to_json()


def reference_excludes(table: LayerTable, config: dict[str, Any]) -> dict[str, Any]:
    """The exclude-list check name by name."""
    declaration = table.declaration
    patterns = declaration.exclusion_patterns()
    if not patterns:
        return excludes.CheckResult(
            "excludes", excludes.TITLE, excludes.SKIP, "the metadata has no exclude list"
        ).to_json()
    shapes: dict[tuple[str, str], list[Layer]] = {}
    for layer in table.layers:
        shapes.setdefault((layer.kind.template, layer.module_class), []).append(layer)
    failures, warnings = [], []
    total = len(table.layers)
    for pattern in patterns:
        hits = [
            layer
            for (_, cls), layers in shapes.items()
            for layer in layers
            if declaration.pattern_matches(pattern, layer.name, cls)
        ]
        quantized = [h.name for h in hits if h.precision.is_quantized]
        if quantized:
            failures.append(
                f"{pattern!r} matches {len(quantized)} quantized modules: " + ", ".join(quantized[:5])
            )
        elif total and len(hits) >= excludes.OVER_BROAD_FRACTION * total:
            failures.append(
                f"{pattern!r} matches {len(hits)} of {total} modules: it covers most of the model"
            )
        elif not hits and not any(declaration.pattern_matches(pattern, p) for p in table.modules if p):
            if excludes.tied_embeddings(config) and declaration.pattern_matches(pattern, "lm_head"):
                continue
            warnings.append(
                f"{pattern!r} matches nothing in this checkpoint (typo, stale name, or another naming scheme)"
            )
    status = excludes.FAIL if failures else excludes.WARN if warnings else excludes.PASS
    summary = (
        f"{len(failures)} blocking, {len(warnings)} unmatched of {len(patterns)} entries"
        if failures or warnings
        else f"{len(patterns)} entries, each matches unquantized modules"
    )
    return excludes.CheckResult(
        "excludes",
        excludes.TITLE,
        status,
        summary,
        measured=len(failures),
        expected=0,
        details=failures + warnings,
    ).to_json()


def assert_checks_match_their_loops(
    table: LayerTable, values: dict[str, list[float]], config: Any, recipe: Any = None
) -> None:
    assert fused.check_fused_groups(table, values).to_json() == reference_fused(table, values)
    assert moe.check_moe_completeness(table, config).to_json() == reference_moe(table, config)
    assert excludes.check_exclude_hygiene(table, config).to_json() == reference_excludes(table, config)
    if recipe is not None:  # judged per kind against the same recipe asked name by name
        intents = {
            layer.name: recipe.intent(layer.name, fused_param=layer.fused, module_class=layer.module_class)
            for layer in table.layers
        }
        by_name = coverage.check_expectation(
            table,
            intents,
            check_id="recipe",
            title=f"{recipe_check.TITLE} ({recipe.name})",
            conflicts=recipe_check.declaration_conflicts(recipe, table.declaration),
        )
        assert recipe_check.check_recipe(table, recipe).to_json() == by_name.to_json()
    # Heads and embeddings are named from their templates, attention projections by a pass.
    for kinds in (
        {k for k in table.kind_counts() if k.group in (LayerGroup.LM_HEAD, LayerGroup.EMBED)},
        {k for k in table.kind_counts() if k.group is LayerGroup.ATTENTION},
    ):
        assert coverage.named_layers(table, kinds) == [(x.name, x.kind) for x in table.layers_of(kinds)]


@pytest.mark.parametrize("entry", manifest(), ids=lambda e: e["name"])
def test_checks_match_their_loops_on_every_fixture(entry):
    checkpoint = Checkpoint.open(LocalSource(FIXTURES / entry["name"]))
    shapes = (
        summarize(Checkpoint.open(LocalSource(FIXTURES / entry["source"]))).shapes
        if entry.get("source")
        else None
    )
    recipe = GateOptions(**fixture_recipe(entry)).recipe() if entry.get("source") else None
    values = read_scalar_scales(checkpoint, build_layer_table(checkpoint).grouping, SCALAR_SCALE_ROLES)
    for table in (build_layer_table(checkpoint, source_shapes=shapes), reference_table(checkpoint, shapes)):
        assert_checks_match_their_loops(table, values, checkpoint.config, recipe)


def with_layers(table: LayerTable, layers: list[Layer], declaration: Any = None) -> LayerTable:
    return LayerTable(layers, declaration or table.declaration, table.grouping, table.num_hidden_layers)


def with_excludes(table: LayerTable, patterns: list[str]) -> LayerTable:
    """``table`` whose declaration lists more exclude entries (its layers' declarations kept)."""
    declaration = copy.copy(table.declaration)
    declaration.exclude_modules = [*declaration.exclude_modules, *patterns]  # type: ignore[attr-defined]
    return with_layers(table, table.layers, declaration)


@pytest.fixture(scope="module")
def tiny_deepseek_whole(tiny_deepseek) -> Path:
    """The NVFP4 export with every routed expert quantized (only the MTP layer's excluded)."""
    source = tiny_deepseek[0]
    cfg = TINY_DEEPSEEK
    modules = [t[0].rpartition(".")[0] for t in syn.model_tensors(cfg, "bf16", lambda m: True)]
    kept = [p for p in NVFP4_EXCLUDES[:-1] if any(fnmatchcase(m, p) for m in modules)]
    tensors = syn.model_tensors(cfg, "modelopt_nvfp4", lambda m: any(fnmatchcase(m, p) for p in kept))
    quant = {"quant_algo": "NVFP4", "kv_cache_quant_algo": None, "exclude_modules": kept, "group_size": 16}
    export = source.parent / "nvfp4-whole"
    syn.write_checkpoint(export, cfg, tensors, quant, shard_bytes=1 << 20)
    return export


def test_checks_match_their_loops_on_broken_moe_exports(tiny_deepseek, tiny_deepseek_whole):
    """Experts and fused members missing, an expert left in BF16 among quantized ones, and
    scale values that differ, are NaN (one object in both members) or absent."""
    source, nvfp4, fp8 = tiny_deepseek
    shapes = summarize(Checkpoint.open(LocalSource(source))).shapes
    cases = ((nvfp4, "nvfp4_mlp_only"), (fp8, "fp8"), (tiny_deepseek_whole, "nvfp4_mlp_only"))
    for export, qformat in cases:
        checkpoint = Checkpoint.open(LocalSource(export))
        grouping = build_layer_table(checkpoint).grouping
        config, values = checkpoint.config, read_scalar_scales(checkpoint, grouping, SCALAR_SCALE_ROLES)
        for table in (
            build_layer_table(checkpoint, source_shapes=shapes),
            reference_table(checkpoint, shapes),
        ):
            layers = table.layers
            by_name = {layer.name: layer for layer in layers}
            expert = "model.layers.2.mlp.experts.3"
            # The MTP layer's experts are excluded: their kinds, per projection, are BF16 experts'.
            bf16 = {
                x.name.rpartition(".")[2]: x.kind
                for x in layers
                if x.name.startswith("model.layers.4.mlp.experts.")
            }
            tables = [
                table,
                with_layers(table, [x for x in layers if x.name != f"{expert}.up_proj"]),
                with_layers(table, [x for x in layers if x.name != "model.layers.3.mlp.experts.3.up_proj"]),
                with_layers(table, [x for x in layers if not x.name.endswith("1.self_attn.q_a_proj")]),
                with_layers(
                    table, [x for x in layers if not x.name.startswith("model.layers.3.mlp.experts.5.")]
                ),
                with_layers(
                    table,
                    [
                        Layer(x.name, bf16[x.name.rpartition(".")[2]], x.tensors)
                        if x.name.startswith(expert)
                        else x
                        for x in layers
                    ],
                ),
                with_layers(
                    table,
                    [
                        Layer(x.name, bf16[x.name.rpartition(".")[2]], x.tensors)
                        if x.name == f"{expert}.up_proj"
                        else x
                        for x in layers
                    ],
                ),
                # Entries over quantized modules of several shapes, index-free or not, and stale ones.
                with_excludes(
                    table, ["*proj", "model.layers.[23]*", "model.layers.2*", "*.experts.*", "gone*"]
                ),
            ]
            nan = float("nan")
            variants = [values]
            for role in ("weight_scale_2", "input_scale", "weight_scale"):
                name = f"{expert}.up_proj.{role}"
                if name in values:
                    variants += [
                        {**values, name: [values[name][0] * 2]},
                        {**values, name: [values[name][0] * (1 + 1e-9)]},
                        {**values, name: [nan], f"{expert}.gate_proj.{role}": [nan]},
                        {**values, name: values[f"{expert}.gate_proj.{role}"][:1] * 2},
                        {k: v for k, v in values.items() if k != name},
                    ]
                    shared = [nan]
                    variants.append({**values, name: shared, f"{expert}.gate_proj.{role}": shared})
            assert by_name[f"{expert}.up_proj"].kind is not bf16["up_proj"]
            recipe = modelopt_qformat(qformat)
            for variant in tables:
                for scales in variants:
                    assert_checks_match_their_loops(variant, scales, config, recipe)
            assert "differs across members" in " ".join(
                fused.check_fused_groups(table, variants[1]).details
            ) or (qformat == "fp8")
