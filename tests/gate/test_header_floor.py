"""The benchmark's floor (``benchmarks/header_floor.py``) parses what the speed issue's floor
parsed: every shard header of the directory, and no index unless asked (a floor that also
decodes the index is a third larger on a 671B export, and every ratio to it smaller)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from ptq_validators.checkpoint import Checkpoint
from ptq_validators.io.source import LocalSource
from tests.conftest import FIXTURES, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import header_floor

SHARDED = FIXTURES / "llmc-fp8block-llama"  # a shard named by an index


def test_the_floor_counts_every_tensor_of_every_shard():
    assert len(json.loads((SHARDED / "model.safetensors.index.json").read_text())["weight_map"]) > 0
    expected = len(Checkpoint.open(LocalSource(SHARDED)).names)
    assert header_floor.parse_headers(str(SHARDED)) == expected
    assert header_floor.parse_headers(str(SHARDED), with_index=True) == expected


def test_the_floor_does_not_parse_the_index_unless_asked(tmp_path: Path):
    copy = tmp_path / "checkpoint"
    shutil.copytree(SHARDED, copy)
    (copy / "model.safetensors.index.json").write_text("{not json")
    assert header_floor.parse_headers(str(copy)) == header_floor.parse_headers(str(SHARDED))
    with pytest.raises(json.JSONDecodeError):
        header_floor.parse_headers(str(copy), with_index=True)


def test_the_floor_script_answers_help_and_a_wrong_path_in_one_line(tmp_path: Path, capsys):
    assert header_floor.main(["--help"]) == 0
    assert "EXPORT_DIR" in capsys.readouterr().err
    assert header_floor.main([]) == 2
    capsys.readouterr()
    assert header_floor.main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"header_floor.py: {tmp_path / 'missing'}: not a checkpoint directory\n"
    assert header_floor.main([str(SHARDED)]) == 0
    assert capsys.readouterr().out.strip() == str(header_floor.parse_headers(str(SHARDED)))
