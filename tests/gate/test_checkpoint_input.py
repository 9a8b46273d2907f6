"""Sharded checkpoints, index cross-checks, and unreadable input (exit 3, one line, file named)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.ckpt_edit import copy_checkpoint, shard
from tests.conftest import FIXTURES

SRC = FIXTURES / "src-llama"


def sharded(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    out = copy_checkpoint(FIXTURES / "modelopt-nvfp4-llama", tmp_path / "out")
    return out, shard(out, 2)


def rewrite_index(out: Path, edit) -> None:
    path = out / "model.safetensors.index.json"
    index = json.loads(path.read_text())
    edit(index["weight_map"])
    path.write_text(json.dumps(index))


def assert_input_error(result, *fragments: str) -> None:
    assert result.code == 3, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("ptqv: error: ") and lines[1].startswith("ptqv: fix: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_sharded_export_passes(ptqv, tmp_path):
    out, _ = sharded(tmp_path)
    result = ptqv("gate", out, "--source", SRC, "--json")
    assert result.code == 0
    integrity = next(c for c in result.json()["checks"] if c["id"] == "integrity")
    assert integrity["detail"] == "2 shards, index consistent"


def test_index_naming_a_missing_shard(ptqv, tmp_path):
    out, _ = sharded(tmp_path)
    (out / "model-00002-of-00002.safetensors").unlink()
    result = ptqv("gate", out, "--source", SRC)
    assert_input_error(
        result,
        "model.safetensors.index.json: names shard 'model-00002-of-00002.safetensors', which is missing",
    )


def test_shard_names_that_leave_the_directory_are_refused(ptqv, tmp_path):
    for bad in ("../escape.safetensors", "/etc/passwd", "sub/model.safetensors", ".."):
        out = tmp_path / f"case{abs(hash(bad))}"
        copy_checkpoint(FIXTURES / "modelopt-nvfp4-llama", out)
        shard(out, 2)
        rewrite_index(out, lambda wm, bad=bad: wm.__setitem__(next(iter(wm)), bad))
        result = ptqv("scan", out)
        assert_input_error(result, f"shard name {bad!r} is not a plain file name", "refused")


def test_symlinked_shard_leaving_the_directory_is_refused(ptqv, tmp_path):
    out, _ = sharded(tmp_path)
    outside = tmp_path / "elsewhere.safetensors"
    (out / "model-00002-of-00002.safetensors").rename(outside)
    os.symlink(outside, out / "model-00002-of-00002.safetensors")
    result = ptqv("scan", out)
    assert_input_error(result, "model-00002-of-00002.safetensors: is a symlink that leaves the checkpoint")


def test_index_inconsistencies_fail_the_integrity_check(ptqv, tmp_path):
    out, weight_map = sharded(tmp_path)
    names = sorted(weight_map)
    moved, dropped = names[0], names[1]

    def corrupt(wm):
        wm[moved] = (
            "model-00002-of-00002.safetensors"
            if wm[moved].startswith("model-00001")
            else "model-00001-of-00002.safetensors"
        )
        del wm[dropped]
        wm["model.layers.9.ghost.weight"] = "model-00001-of-00002.safetensors"

    rewrite_index(out, corrupt)
    (out / "model-stale.safetensors").write_bytes((SRC / "model.safetensors").read_bytes())
    result = ptqv("gate", out, "--source", SRC, "--json")
    integrity = next(c for c in result.json()["checks"] if c["id"] == "integrity")
    assert result.code == 1 and integrity["status"] == "fail"
    details = "\n".join(integrity["details"])
    assert f"index puts tensor {moved!r} in" in details
    assert f"tensor {dropped!r} is missing from the index" in details
    assert "index names tensor 'model.layers.9.ghost.weight'" in details
    assert "model-stale.safetensors: safetensors file on disk is not named by the index" in details


def test_truncated_shard_names_the_file(ptqv, tmp_path):
    out = copy_checkpoint(FIXTURES / "modelopt-fp8-llama", tmp_path / "out")
    path = out / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    result = ptqv("gate", out, "--source", SRC)
    assert_input_error(
        result, f"{out}/model.safetensors: invalid safetensors header (MetadataIncompleteBuffer)"
    )


def test_invalid_config_json_names_the_file(ptqv, tmp_path):
    out = copy_checkpoint(FIXTURES / "modelopt-fp8-llama", tmp_path / "out")
    (out / "config.json").write_text("{not json")
    result = ptqv("gate", out, "--source", SRC)
    assert_input_error(result, f"{out}/config.json: invalid JSON")


def test_pickle_only_directory_is_refused_without_loading(ptqv, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04garbage")
    result = ptqv("scan", tmp_path)
    assert_input_error(
        result, "no *.safetensors weights (pickle files present: pytorch_model.bin; never loaded)"
    )


def test_missing_directory_and_usage_errors(ptqv, tmp_path):
    assert_input_error(ptqv("scan", tmp_path / "nope"), "no such directory")
    both = ptqv(
        "gate", FIXTURES / "modelopt-fp8-llama", "--source", SRC, "--qformat", "fp8", "--scheme", "FP8"
    )
    assert both.code == 2 and "--qformat and --scheme are exclusive" in both.stderr
    unknown = ptqv("gate", FIXTURES / "modelopt-fp8-llama", "--source", SRC, "--qformat", "fp9")
    assert unknown.code == 2 and "unknown ModelOpt qformat 'fp9'" in unknown.stderr
    assert "nvfp4_mlp_only" in unknown.stderr


def test_truncated_source_shard_names_the_source_file(ptqv, tmp_path):
    source = copy_checkpoint(SRC, tmp_path / "src")
    path = source / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    result = ptqv("gate", FIXTURES / "modelopt-fp8-llama", "--source", source)
    assert_input_error(result, f"{path}: invalid safetensors header (MetadataIncompleteBuffer)")


@pytest.mark.parametrize(
    ("fixture", "document", "path", "value", "said"),
    [
        ("modelopt-nvfp4-moe", "hf_quant_config.json", ("quantization",), "NVFP4", "an object, not str"),
        ("modelopt-nvfp4-moe", "hf_quant_config.json", ("quantization", "exclude_modules"), -1, "an array"),
        (
            "modelopt-mixed-llama",
            "hf_quant_config.json",
            ("quantization", "quantized_layers"),
            [],
            "an object",
        ),
        ("modelopt-nvfp4-moe", "config.json", ("quantization_config", "config_groups"), "x", "an object"),
        (
            "modelopt-nvfp4-moe",
            "config.json",
            ("quantization_config", "ignore"),
            -1,
            "an array of strings, not int",
        ),
        ("modelopt-nvfp4-moe", "tokenizer.json", ("model",), "BPE", "an object, not str"),
        ("awq-gemm-llama", "config.json", ("quantization_config", "modules_to_not_convert"), -1, "an array"),
        ("hf-fp8-llama", "config.json", ("quantization_config", "modules_to_convert"), 0, "an array"),
        ("modelopt-nvfp4-moe", "config.json", ("quantization_config", "ignore"), [1, "x"], "an array of "),
    ],
)
def test_documents_of_the_wrong_shape_name_the_file_and_key(
    ptqv, tmp_path, fixture, document, path, value, said
):
    # These reached the format readers and checks and ended as internal errors (exit 70).
    out = copy_checkpoint(FIXTURES / fixture, tmp_path / "out")
    doc = json.loads((out / document).read_text())
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    (out / document).write_text(json.dumps(doc))
    source = FIXTURES / ("src-moe" if "moe" in fixture else "src-llama")
    result = ptqv("gate", out, "--source", source)
    assert_input_error(result, f"{out}/{document}: {'.'.join(path)!r} must be {said}")


@pytest.mark.parametrize("where", ["ignore", "targets"])
def test_a_bad_regex_in_the_checkpoints_own_config_is_input(ptqv, tmp_path, where):
    # The same text given as --ignore is a usage error (2); inside config.json it is input (3).
    out = copy_checkpoint(FIXTURES / "llmc-nvfp4-llama", tmp_path / "out")
    doc = json.loads((out / "config.json").read_text())
    block = doc["quantization_config"]
    if where == "ignore":
        block["ignore"] = [*block.get("ignore", []), "re:(lm_head"]
    else:
        next(iter(block["config_groups"].values()))["targets"] = ["re:(lm_head"]
    (out / "config.json").write_text(json.dumps(doc))
    for result in (ptqv("scan", out), ptqv("gate", out, "--source", SRC)):
        assert_input_error(
            result, f"{out}/config.json: quantization_config: invalid regular expression in 're:(lm_head'"
        )
