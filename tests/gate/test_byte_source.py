"""The byte-source seam: the contract every ``ByteSource`` keeps (pinned on ``LocalSource``), and
the gate, scan and checkpoint reading only through the sources they are given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ptq_validators.checkpoint import Checkpoint, Documents
from ptq_validators.errors import InputError
from ptq_validators.gate import GateOptions, run_gate
from ptq_validators.io.source import ByteSource, FileStat, LocalSource, open_source
from ptq_validators.scan import run_scan
from tests.ckpt_edit import copy_checkpoint
from tests.conftest import FIXTURES


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "a.bin").write_bytes(bytes(range(10)))
    (root / "sub").mkdir()
    (root / "sub" / "deep.json").write_text("{}")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    os.symlink(outside, root / "leaves.json")
    os.symlink(root / "a.bin", root / "stays.bin")
    os.symlink(tmp_path / "gone", root / "dangling")
    return root


def test_list_files_names_regular_files_and_links_to_them_sorted(directory):
    assert LocalSource(directory).list_files() == ["a.bin", "leaves.json", "stays.bin"]


def test_stat_gives_size_and_mtime_through_links(directory):
    source = LocalSource(directory)
    os.utime(directory / "a.bin", (1_700_000_000, 1_700_000_000))
    assert source.stat("a.bin") == FileStat(10, 1_700_000_000.0)
    assert source.stat("stays.bin") == FileStat(10, 1_700_000_000.0)
    assert source.size("a.bin") == 10


def test_reads_are_exact_short_only_past_the_end(directory):
    source = LocalSource(directory)
    assert source.read_range("a.bin", 2, 3) == b"\x02\x03\x04"
    assert source.read_range("a.bin", 8, 5) == b"\x08\x09"
    assert source.read_range("a.bin", 10, 4) == b""
    assert source.read_range("a.bin", 50, 4) == b""
    assert source.read_ranges("a.bin", [(9, 1), (0, 2)]) == [b"\x09", b"\x00\x01"]
    assert source.read_bytes("stays.bin") == bytes(range(10))


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.stat("missing"),
        lambda s: s.read_range("missing", 0, 1),
        lambda s: s.read_ranges("missing", [(0, 1)]),
        lambda s: s.read_bytes("missing"),
        lambda s: s.read_bytes("dangling"),
        lambda s: s.read_bytes("sub"),
    ],
)
def test_unreadable_files_are_input_errors_naming_the_file(directory, call):
    source = LocalSource(directory)
    with pytest.raises(InputError) as raised:
        call(source)
    assert raised.value.message.startswith(f"{directory}/")


def test_is_inside_follows_links_and_never_raises(directory):
    source = LocalSource(directory)
    assert source.is_inside("a.bin") and source.is_inside("stays.bin")
    assert not source.is_inside("leaves.json")
    assert not source.is_inside("dangling")
    # The directory itself and its parent are no file inside it, though neither is a link.
    assert not source.is_inside(".") and not source.is_inside("..")
    assert source.display("a.bin") == f"{directory}/a.bin"


def test_open_source_takes_a_local_directory(directory):
    with open_source(str(directory)) as source:
        assert isinstance(source, LocalSource) and source.root == str(directory)
    with pytest.raises(InputError, match="not a directory"):
        open_source(directory / "a.bin")
    with pytest.raises(InputError, match="no such directory"):
        open_source(directory / "nope")


class ElsewhereSource(ByteSource):
    """A source whose ``root`` names no local path (as an SFTP source's ``cluster:/path`` does):
    its bytes come from a real fixture through ``LocalSource``, so any reader that re-opened the
    checkpoint by its root path would fail with "no such directory"."""

    def __init__(self, root: str, local: Path) -> None:
        self.root = root
        self._local = LocalSource(local)
        self.closed = False

    def list_files(self) -> list[str]:
        return self._local.list_files()

    def stat(self, name: str) -> FileStat:
        return self._local.stat(name)

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        return self._local.read_range(name, offset, length)

    def read_bytes(self, name: str) -> bytes:
        return self._local.read_bytes(name)

    def is_inside(self, name: str) -> bool:
        return self._local.is_inside(name)

    def close(self) -> None:
        self.closed = True


def test_gate_reads_both_checkpoints_only_through_their_sources():
    output = ElsewhereSource("cluster-a:/exports/moe-nvfp4", FIXTURES / "modelopt-nvfp4-moe")
    source = ElsewhereSource("cluster-a:/models/moe", FIXTURES / "src-moe")
    report = run_gate(output, source, GateOptions(qformat="nvfp4"))
    local = run_gate(
        LocalSource(FIXTURES / "modelopt-nvfp4-moe"),
        LocalSource(FIXTURES / "src-moe"),
        GateOptions(qformat="nvfp4"),
    )
    assert report.verdict == "pass"
    assert (report.source, report.output) == ("cluster-a:/models/moe", "cluster-a:/exports/moe-nvfp4")
    remote_json, local_json = report.to_json(), local.to_json()
    for key in ("source", "output"):
        remote_json.pop(key), local_json.pop(key)
    assert remote_json == local_json


def test_scan_and_documents_read_through_the_source():
    source = ElsewhereSource("cluster-a:/exports/llama-nvfp4", FIXTURES / "llmc-nvfp4-llama")
    report = run_scan(source)
    assert report.path == "cluster-a:/exports/llama-nvfp4"
    assert report.to_json()["files"]["shards"] == ["model.safetensors"]
    assert Documents.open(source).config["model_type"] == "llama"


def test_errors_name_the_file_by_the_sources_root(tmp_path):
    out = copy_checkpoint(FIXTURES / "modelopt-fp8-llama", tmp_path / "out")
    shard = out / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(InputError) as raised:
        Checkpoint.open(ElsewhereSource("cluster-a:/exports/fp8", out))
    assert raised.value.message.startswith("cluster-a:/exports/fp8/model.safetensors: invalid safetensors")
