"""An exclusion entry is asked once per name template only where, under its family's own pattern
semantics (ModelOpt fnmatch globs, compressed-tensors exact names and ``re:`` regexes, the
regexes of ``modules_to_not_convert`` and GPTQ ``dynamic`` keys, AutoAWQ's substrings), it cannot
tell one index component from another.

On generated names of a dozen layers (1- and 2-digit indices) and generated entries (``\\d``,
``.``, ``+``, ``{1}``, classes, alternations, the ``#`` mask, letter-flanked digits), each
answer shared per template is the one asked name by name, and the exclude-list check on a
checkpoint of such layers is the check run name by name.
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.checks.excludes import check_exclude_hygiene
from ptq_validators.formats.awq import AwqDeclaration
from ptq_validators.formats.compressed_tensors import CompressedTensorsDeclaration
from ptq_validators.formats.gpt_oss import Mxfp4Declaration
from ptq_validators.formats.gptq import GptqDeclaration
from ptq_validators.formats.hf_fp8 import HfFp8Declaration
from ptq_validators.formats.modelopt import ModelOptDeclaration
from ptq_validators.globs import index_free, index_key
from ptq_validators.io.safetensors import tensor_info
from ptq_validators.io.source import LocalSource
from ptq_validators.layers import build_layer_table
from tests.gate.test_layout_sharing import reference_excludes

LAYERS = 12  # layer indices of one and of two digits
LEAVES = ["mlp.down_proj", "self_attn.q_proj", "mlp.experts.{}.w1", "conv1d"]
NAMES = [f"model.layers.{layer}.{leaf.format(layer % 11)}" for layer in range(LAYERS) for leaf in LEAVES] + [
    "lm_head",
    "model.embed_tokens",
]

# Pieces of entries: plain text, what each syntax reads as "any text", and what can count or pick
# digits (or the ``#`` a template holds where a name holds an index).
GLOB_PIECES = [
    *["*", "?", "[0-9]", "[!x]", ".", "*layers.", ".mlp*", "layers", "mlp", "experts", "w1", "conv1d"],
    *["1", "10", "#"],
]
REGEX_PIECES = [
    *[".*", ".", r"\.", r".*layers\.", r"\.mlp", "model", "layers", "mlp", "experts", "w1", "conv1d"],
    *["1", "10", "#", "_proj", "$", "^", r"\d", r"\d+", r"\w", "+", "{1}", "{1,2}", "?", "[0-9]"],
    *["(1|10)", "(?:mlp)", r"\b", r"\-", "|"],
]


def _regex(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


# And entries shaped like real ones: a layer prefix, what stands for the index, a suffix.
GLOB_INDICES = ["?", "??", "1?", "?1", "[0-9]", "1", "#", "*", ""]
REGEX_INDICES = [r"\d", ".", "..", r"\w", r"\d{1}", r"\d+", "[0-9]", "(1|2)", "1+", "1", "#", ".*", r"\D*"]
SHAPED_GLOBS = st.tuples(
    st.sampled_from(["*layers.", "model.layers.", "*"]),
    st.sampled_from(GLOB_INDICES),
    st.sampled_from([".mlp*", ".*", "", "*w1", ".self_attn.q_proj"]),
).map("".join)
SHAPED_REGEXES = st.tuples(
    st.sampled_from([r".*layers\.", r"model\.layers\.", "model.layers.", "^.*", ".*"]),
    st.sampled_from(REGEX_INDICES),
    st.sampled_from([r"\.mlp", r"\.", "", ".*", "$", r"\.mlp.*w1", ".mlp"]),
).map("".join)
GLOBS = st.one_of(st.lists(st.sampled_from(GLOB_PIECES), min_size=1, max_size=6).map("".join), SHAPED_GLOBS)
REGEXES = st.one_of(
    st.lists(st.sampled_from(REGEX_PIECES), min_size=1, max_size=6).map("".join), SHAPED_REGEXES
).filter(_regex)
# compressed-tensors ignore entries: ``re:`` regexes, exact names, class names.
CT_ENTRIES = st.one_of(REGEXES.map("re:".__add__), st.sampled_from([*NAMES[:6], "lm_head", "Linear"]))


def declaration_of(family: str, entries: list[str]):
    """A declaration of ``family`` whose exclusion list is ``entries``."""
    if family == "modelopt":
        return ModelOptDeclaration({"quant_algo": "FP8", "exclude_modules": entries}, "hf_quant_config.json")
    if family == "compressed-tensors":
        return CompressedTensorsDeclaration(ct_block(entries))
    if family == "awq":
        return AwqDeclaration({"modules_to_not_convert": entries})
    if family == "gptq":
        return GptqDeclaration({"bits": 4, "dynamic": {f"-:{entry}": {} for entry in entries}}, "config.json")
    if family == "mxfp4":
        return Mxfp4Declaration({"modules_to_not_convert": entries})
    return HfFp8Declaration({"quant_method": "fp8", "modules_to_not_convert": entries})


def ct_block(ignore: list[str]) -> dict:
    weights = {"num_bits": 8, "type": "float", "strategy": "tensor", "symmetric": True}
    return {
        "quant_method": "compressed-tensors",
        "format": "float-quantized",
        "quantization_status": "compressed",
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights}},
        "ignore": ignore,
    }


# AutoAWQ's substrings.
LITERALS = st.lists(
    st.sampled_from(["layers.1", "mlp", "conv1d", "w1", ".1", "1.", "#", "_proj", "."]),
    min_size=1,
    max_size=4,
).map("".join)
ENTRIES = {"modelopt": GLOBS, "compressed-tensors": CT_ENTRIES, "hf-fp8": REGEXES}
OTHER_ENTRIES = {"awq": LITERALS, "gptq": REGEXES, "mxfp4": REGEXES}


def family_entries(entries: dict) -> st.SearchStrategy[tuple[str, list[str]]]:
    return st.sampled_from(sorted(entries)).flatmap(
        lambda family: st.tuples(st.just(family), st.lists(entries[family], min_size=1, max_size=3))
    )


FAMILY_ENTRIES = family_entries(ENTRIES)


@settings(max_examples=500, deadline=None)
@given(family_entries({**ENTRIES, **OTHER_ENTRIES}))
@example(("compressed-tensors", [r"re:.*layers\.\d\.mlp"]))
@example(("compressed-tensors", [r"re:.*layers\..\.mlp"]))
@example(("hf-fp8", [r"model.layers.\d{1}"]))
@example(("hf-fp8", [r"model\.layers\.(1|2)\.mlp"]))
@example(("modelopt", ["*.#.*"]))  # the mask a template holds where its names hold an index
@example(("gptq", [r".*\.\d\.mlp"]))
@example(("awq", ["layers.1"]))
def test_an_answer_shared_per_template_is_every_name_s_answer(family_entries):
    family, entries = family_entries
    declaration = declaration_of(family, entries)
    by_template: dict[str, list[str]] = {}
    for name in NAMES:
        by_template.setdefault(index_key(name), []).append(name)
    for pattern in entries:
        if declaration.pattern_index_free(pattern):
            for template, names in by_template.items():  # the template itself too (ModelOpt asks it)
                answers = {
                    declaration.pattern_matches(pattern, name, "Linear") for name in [template, *names]
                }
                assert len(answers) == 1, (pattern, template)
    # The declaration is asked once per template, class and instance key.
    first: dict[tuple, str] = {}
    for name, key in zip(NAMES, declaration.instance_keys(NAMES), strict=True):
        shared = first.setdefault((index_key(name), key), name)
        assert declaration.declared(name, module_class="Linear") == declaration.declared(
            shared, module_class="Linear"
        ), (name, shared)


@settings(max_examples=300, deadline=None)
@given(st.lists(GLOBS, min_size=1, max_size=3))
@example(["*.#.*"])
@example(["*layers.1?.*"])
def test_modelopt_exclusions_are_fnmatch_name_by_name(entries):
    declaration = declaration_of("modelopt", entries)
    for name in NAMES:
        found = next((p for p in entries if fnmatchcase(name, p)), None)
        expected = "quant_algo FP8" if found is None else f"exclude_modules {found!r}"
        assert declaration.declared(name).rule == expected


def checkpoint_of(directory, declared: dict, bf16: set[str]) -> Checkpoint:
    """FP8 per-tensor linears named ``NAMES`` (headers only: no shard is read), the ``bf16``
    ones stored unquantized, with a config declaring ``declared``."""
    tensors = {}
    for name in NAMES:
        weight = "BF16" if name in bf16 else "F8_E4M3"
        tensors[f"{name}.weight"] = tensor_info(f"{name}.weight", weight, (64, 64), 0, 0)
        if name not in bf16:
            tensors[f"{name}.weight_scale"] = tensor_info(f"{name}.weight_scale", "F32", (), 0, 0)
    config = {"model_type": "llama", "num_hidden_layers": LAYERS, "quantization_config": declared}
    (directory / "config.json").write_text(json.dumps(config))
    return Checkpoint.of_table(LocalSource(directory), tensors)


def test_a_regex_ignore_entry_for_one_digit_layers_passes_on_a_dozen_layers(tmp_path):
    """``re:.*layers\\.\\d\\.mlp`` keeps the MLPs of layers 0-9 in BF16; layers 10 and 11 are
    FP8 as declared. Asked once for the template (with layer 0) the entry would swallow the
    quantized MLPs of layers 10 and 11 too."""
    entry = r"re:.*layers\.\d\.mlp"
    bf16 = {name for name in NAMES if re.match(entry[3:], name)}
    assert {name.split(".")[2] for name in bf16} == {str(layer) for layer in range(10)}
    table = build_layer_table(checkpoint_of(tmp_path, ct_block([entry, "lm_head"]), bf16 | {"lm_head"}))
    result = check_exclude_hygiene(table, {})
    assert (result.status, result.details) == ("pass", [])
    assert result.to_json() == reference_excludes(table, {})


@settings(max_examples=60, deadline=None)
@given(FAMILY_ENTRIES)
@example(("compressed-tensors", [r"re:.*layers\.\d\.mlp"]))
@example(("hf-fp8", [r"model.layers.\d\.mlp"]))
def test_the_exclude_check_is_the_check_name_by_name(tmp_path_factory, family_entries):
    family, entries = family_entries
    block = {
        "modelopt": {"quant_method": "modelopt", "quant_algo": "FP8", "exclude_modules": entries},
        "compressed-tensors": ct_block(entries),
        "hf-fp8": {"quant_method": "fp8", "modules_to_not_convert": entries},
    }[family]
    declaration = declaration_of(family, entries)
    # Stored as declared: what the entries exclude in BF16, the rest FP8.
    bf16 = {name for name in NAMES if declaration.declared(name, module_class="Linear").precision is None}
    table = build_layer_table(checkpoint_of(tmp_path_factory.mktemp("ckpt"), block, bf16))
    assert check_exclude_hygiene(table, {}).to_json() == reference_excludes(table, {})


@pytest.mark.parametrize(
    ("pattern", "syntax", "free"),
    [
        ("model.layers.*.self_attn*", "glob", True),
        ("*mlp?gate*", "glob", True),  # one character between letters: never an index
        ("*layers.1?.*", "glob", False),
        ("*[0-9]*", "glob", False),
        ("*.#.*", "glob", False),  # a template's mask
        (r".*mlp.gate$", "regex", True),  # llm-compressor's MoE router entry
        (r"^model\.layers\..*\.self_attn", "regex", True),
        (r".*conv1d", "regex", True),
        (r".*layers\.\d\.mlp", "regex", False),
        (r".*layers\..\.mlp", "regex", False),
        (r".*layers\.\w+\.mlp", "regex", False),
        (r"model.layers.*.self_attn", "regex", False),  # ".*." : could be proved, is not
        (r".*(q|k)_proj", "regex", False),
        (r"lm_head\Z", "regex", False),
        ("model.layers.1", "literal", False),
        ("model.layers.*.mlp", "literal", True),  # a literal "*" matches only itself
        ("conv1d", "literal", True),
    ],
)
def test_what_index_free_proves_in_each_syntax(pattern, syntax, free):
    assert index_free([pattern], syntax) is free
