"""The strict header reader: valid files, each named failure, and a differential test against the
safetensors library (``safe_open``) on generated headers."""

from __future__ import annotations

import copy
import json
import os
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import safetensors
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ptq_validators.errors import InputError
from ptq_validators.io.safetensors import (
    DTYPE_BITS,
    MAX_HEADER_SIZE,
    STRICTER_RULES,
    HeaderError,
    Layouts,
    SafetensorsHeader,
    parse_header,
    parse_header_exact,
    parse_header_fast,
    read_header,
)
from ptq_validators.io.source import LocalSource
from tests.conftest import FIXTURES


def build(header: dict | str | bytes, data: bytes = b"", *, pad: bool = True) -> bytes:
    raw = (
        header
        if isinstance(header, bytes)
        else (header if isinstance(header, str) else json.dumps(header)).encode()
    )
    if pad:
        raw += b" " * (-(len(raw) + 8) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def read(tmp_path: Path, blob: bytes):
    (tmp_path / "m.safetensors").write_bytes(blob)
    return read_header(LocalSource(tmp_path), "m.safetensors")


def error_of(tmp_path: Path, blob: bytes) -> str:
    with pytest.raises(InputError) as info:
        read(tmp_path, blob)
    return info.value.message


def test_reads_a_real_tool_file_without_touching_data():
    header = read_header(LocalSource(FIXTURES / "modelopt-nvfp4-llama"), "model.safetensors")
    packed = header.tensors["model.layers.0.mlp.down_proj.weight"]
    assert (packed.dtype, packed.shape) == ("U8", (128, 128))
    assert header.tensors["model.layers.0.mlp.down_proj.weight_scale"].dtype == "F8_E4M3"
    assert header.data_offset % 8 == 0


def test_sub_byte_and_scale_dtypes_are_known(tmp_path):
    header = {
        "a": {"dtype": "F4", "shape": [2, 4], "data_offsets": [0, 4]},
        "b": {"dtype": "F8_E8M0", "shape": [2], "data_offsets": [4, 6]},
        "c": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [6, 9]},
    }
    result = read(tmp_path, build(header, b"\0" * 9))
    assert [result.tensors[n].bits for n in "abc"] == [32, 16, 24]
    assert DTYPE_BITS["F4"] == 4


_F32 = {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}


def _case_id(value: object) -> str:
    """Name a case by its reason, not by its (sometimes 100 kB) bytes."""
    return value.split(")")[0].lstrip("(") if isinstance(value, str) else "case"


def test_scalar_and_empty_tensors_are_legal(tmp_path):
    header = {
        "s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
        "e": {"dtype": "BF16", "shape": [0, 8], "data_offsets": [4, 4]},
    }
    result = read(tmp_path, build(header, b"\0" * 4))
    assert result.tensors["s"].numel == 1 and result.tensors["e"].nbytes == 0


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (b"\x01\x02", "(HeaderTooSmall): file has 2 bytes, fewer than 8"),
        (struct.pack("<Q", 100_000_001), "(HeaderTooLarge): header length 100000001 exceeds 100000000"),
        (
            struct.pack("<Q", 64) + b"{}",
            "(InvalidHeaderLength): header length 64 runs past the end of the 10-byte file",
        ),
        (build(b"\xff{}"), "(InvalidHeaderUtf8): byte 0 is not UTF-8"),
        (build("[1]"), "(InvalidHeaderStart): the header does not begin with '{'"),
        (build('{"a": 1'), "(InvalidHeaderJson): Expecting ',' delimiter: line 1 column 9 (char 8)"),
        (
            build('{"x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}, "x": {}}', b"\0" * 4),
            "(DuplicateKey): key 'x' appears more than once",
        ),
        (build('{"x": NaN}'), "(InvalidHeaderJson): non-standard literal NaN"),
        (
            build({"__metadata__": {"format": 1}}),
            "(InvalidMetadata): __metadata__ must be an object mapping strings to strings",
        ),
        (
            build({"x": {"dtype": "F32", "shape": []}}),
            "(InvalidTensorInfo): tensor 'x': missing data_offsets",
        ),
        (
            build({"x": {"dtype": "Q7", "shape": [], "data_offsets": [0, 4]}}, b"\0" * 4),
            "(UnknownDtype): tensor 'x': dtype 'Q7' is not a safetensors dtype",
        ),
        (
            build({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
            "(InvalidShape): tensor 'x': shape must be an array of integers in [0, 2**64)",
        ),
        (
            build({"x": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0" * 2),
            "(MisalignedSlice): tensor 'x': 3 elements of F4 do not end on a byte boundary",
        ),
        (
            build({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
            "(TensorInvalidInfo): tensor 'x': spans 4 bytes but F32 [2] needs 8",
        ),
        (
            build({"x": {"dtype": "F32", "shape": [], "data_offsets": [4, 8]}}, b"\0" * 8),
            "(InvalidOffset): tensor 'x' begins at 4, expected 0 (leaves a hole)",
        ),
        (
            build(
                {
                    "x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
                    "y": {"dtype": "F32", "shape": [], "data_offsets": [2, 6]},
                },
                b"\0" * 6,
            ),
            "(InvalidOffset): tensor 'y' begins at 2, expected 4 (overlaps the previous tensor)",
        ),
        (
            build({"x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}, b"\0" * 12),
            "(MetadataIncompleteBuffer): tensors cover 4 bytes of a 12-byte data buffer",
        ),
        (
            build({"x": {"dtype": "U8", "shape": [2**62, 2**62], "data_offsets": [0, 0]}}),
            "(ValidationOverflow): tensor 'x': shape [4611686018427387904, 4611686018427387904] overflows 64 bits",
        ),
        # Found by the differential test or by experiment with safetensors 0.8, each rejected there too.
        (
            build({"x": {"dtype": "U8", "shape": [2**63, 2, 0], "data_offsets": [0, 0]}}),
            "(ValidationOverflow): tensor 'x': shape [9223372036854775808, 2, 0] overflows 64 bits",
        ),
        (
            build({"x": {"dtype": "F32", "shape": [2**62], "data_offsets": [0, 0]}}),
            "(ValidationOverflow): tensor 'x': size of F32 [4611686018427387904] overflows 64 bits",
        ),
        (
            build({"x": {"dtype": "U8", "shape": [2**64, 0], "data_offsets": [0, 0]}}),
            "(InvalidShape): tensor 'x': shape must be an array of integers in [0, 2**64)",
        ),
        (
            build('{"x": {"dtype": "F32", "shape": {}, "data_offsets": [0, 4]}}', b"\0" * 4),
            "(InvalidShape): tensor 'x': shape must be an array of integers in [0, 2**64)",
        ),
        (
            build('{"x": {"dtype": "F32", "shape": [true], "data_offsets": [0, 4]}}', b"\0" * 4),
            "(InvalidShape): tensor 'x': shape must be an array of integers in [0, 2**64)",
        ),
        (
            build('{"x": {"dtype": "F32", "shape": [], "data_offsets": [-0, 4]}}', b"\0" * 4),
            "(InvalidOffset): tensor 'x': data_offsets must be two non-negative integers",
        ),
        (
            build('{"x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4e0]}}', b"\0" * 4),
            "(InvalidOffset): tensor 'x': data_offsets must be two non-negative integers",
        ),
        (
            build('{"x": {"dtype": "F32", "shape": [], "data_offsets": {}}}'),
            "(InvalidOffset): tensor 'x': data_offsets must be two non-negative integers",
        ),
        (
            build('{"__metadata__": []}'),
            "(InvalidMetadata): __metadata__ must be an object mapping strings to strings",
        ),
        (build('{"x": null}'), "(InvalidTensorInfo): tensor 'x': entry is not an object"),
        (build('{"\\ud800x": {}}'), "(InvalidHeaderJson): a \\u escape encodes a lone UTF-16 surrogate"),
        (
            build('{"__metadata__": {}, "__metadata__": {}}'),
            "(DuplicateKey): key '__metadata__' appears more than once",
        ),
        (
            build('{"x": {"dtype": "F32", "dtype": "F32"}}'),
            "(DuplicateKey): key 'dtype' appears more than once",
        ),
        (
            build(
                '{"x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4], "k": %s}}'
                % ("[" * 126 + "]" * 126),
                b"\0" * 4,
            ),
            "(NestingTooDeep): tensor 'x': field 'k' nests deeper than 127",
        ),
        (build('{"x": ' + "[" * 100_000), "(NestingTooDeep): more than 127 nested arrays/objects"),
        (
            build('{"x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4], "k": 1e400}}'),
            "(NumberOutOfRange): tensor 'x': field 'k' holds a number beyond +-1e308",
        ),
        (
            build('{"x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}\0', b"\0" * 4, pad=False),
            "(InvalidHeaderJson): Extra data: line 1 column 61 (char 60)",
        ),
    ],
    ids=_case_id,
)
def test_each_invalid_header_is_named(tmp_path, blob, expected):
    message = error_of(tmp_path, blob)
    assert message == f"{tmp_path}/m.safetensors: invalid safetensors header {expected}"
    assert library_error(tmp_path / "m.safetensors") is not None  # the library rejects it too


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (f'{{"x": {json.dumps(_F32)}, "x": {json.dumps(_F32)}}}', "DuplicateKey"),
        (f'{{"__metadata__": {{"k": "1", "k": "2"}}, "x": {json.dumps(_F32)}}}', "DuplicateKey"),
        ('{"x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4], "k": 1, "k": 2}}', "DuplicateKey"),
        ('{"x": ["F32", [], [0, 4]]}', "TensorInfoAsArray"),
        ('{"x": {"dtype": {"F32": null}, "shape": [], "data_offsets": [0, 4]}}', "DtypeAsMap"),
        ('{"x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4], "k": 1.5e308}}', "NumberOutOfRange"),
    ],
)
def test_each_stricter_rule_rejects_what_the_library_accepts(tmp_path, header, reason):
    blob = build(header, b"\0" * 4)
    (tmp_path / "m.safetensors").write_bytes(blob)
    assert library_error(tmp_path / "m.safetensors") is None
    with pytest.raises(HeaderError) as info:
        read_header(LocalSource(tmp_path), "m.safetensors")
    assert info.value.reason == reason and reason in STRICTER_RULES


def test_what_the_library_accepts_and_writers_rarely_write(tmp_path):
    """Space padding, whitespace around the object, unicode and empty names, zero-size tensors
    sharing an offset, unknown fields, __metadata__ null, the largest legal dimension."""
    entries = (
        '"": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}, '
        '"\\ud83d\\ude00é": {"dtype": "BF16", "shape": [0], "data_offsets": [4, 4]}, '
        '"z": {"shape": [0, 18446744073709551615], "data_offsets": [4, 4], "dtype": "F8_E4M3FNUZ", '
        '"note": [-0, 1e308, {"a": 1, "a": 2}]}'
    )
    blob = build(' \n {"__metadata__": null, ' + entries + "} \t\r\n", b"\0" * 4)
    (tmp_path / "m.safetensors").write_bytes(blob)
    assert library_error(tmp_path / "m.safetensors") is None
    result = read(tmp_path, blob)
    assert sorted(result.tensors) == ["", "z", "\U0001f600é"] and result.metadata is None
    assert result.tensors["z"].shape == (0, 2**64 - 1)


def test_leading_whitespace_is_tolerated_with_a_warning(tmp_path):
    result = read(tmp_path, build("  {}"))
    assert result.warnings == ["header has leading whitespace before '{' (tolerated by the reference reader)"]


# --- The fast path: what it takes and what it leaves to the exact path -----------------------


def _entry(begin: int, end: int, shape: str = "[]", dtype: str = "F32") -> str:
    return f'{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{begin},{end}]}}'


_E0, _E1 = _entry(0, 4), _entry(4, 8)


@pytest.mark.parametrize(
    ("text", "buffer", "reason"),
    [
        # Repeated keys, which the decoders would fold: the ':' count exposes them, whitespace or not.
        (f'{{"x":{_E0},"x":{_E0}}}', 4, "DuplicateKey"),
        (f'{{"x" :{_E0}, "y" : {_E1}, "x" :{_E0}}}', 8, "DuplicateKey"),
        ('{"x":{"dtype":"F32","dtype":"F32","shape":[],"data_offsets":[0,4]}}', 4, "DuplicateKey"),
        (f'{{"__metadata__":{{"k":"1","k":"2"}},"x":{_E0}}}', 4, "DuplicateKey"),
        (f'{{"__metadata__":{{}},"__metadata__":{_E0}}}', 4, "DuplicateKey"),
        # A ':' in a name or a value only raises the count: declined, and valid.
        (f'{{"a:b":{_E0}}}', 4, None),
        (f'{{"__metadata__":{{"date":"12:30"}},"x":{_E0}}}', 4, None),
        # No escapes, no -0, UTF-8, '{' first, metadata first and an object of strings.
        (f'{{"a\\u0062":{_E0}}}', 4, None),
        (f'{{"x":{_entry(-0, 4)}}}'.replace("[0,", "[-0,"), 4, "InvalidOffset"),
        (f'  {{"x":{_E0}}}', 4, None),
        (f'{{"x":{_E0},"__metadata__":{{"format":"pt"}}}}', 4, None),
        (f'{{"__metadata__":null,"x":{_E0}}}', 4, None),
        (f'{{"__metadata__":{{"k":"a}}b"}},"x":{_E0}}}', 4, None),
        ('{"__metadata__":{"format":"pt"},}', 0, "InvalidHeaderJson"),
        ('{"__metadata__":{"format":1},"x":{}}', 0, "InvalidMetadata"),
        # Entries exactly as the format defines them.
        ('{"x":{"dtype":"F32","shape":[],"data_offsets":[0,4],"k":1}}', 4, None),
        (f'{{"x":{_entry(0, 4, "[true]")}}}', 4, "InvalidShape"),
        (f'{{"x":{_entry(0, 4, "[1.0]")}}}', 4, "InvalidShape"),
        (f'{{"x":{_entry(0, 4, dtype="F33")}}}', 4, "UnknownDtype"),
        ('{"x":["F32",[],[0,4]]}', 4, "TensorInfoAsArray"),
        # Every rule still holds.
        (f'{{"x":{_entry(0, 4, "[2]")}}}', 4, "TensorInvalidInfo"),
        # Back to back and filling the buffer, the sizes' total right but not each tensor's
        # (x and y swapped spans; a layout is learnt on its last tensor, here a right one).
        (
            f'{{"x":{_entry(0, 4, "[2]")},"y":{_entry(4, 12)},'
            f'"a":{_entry(12, 20, "[2]")},"b":{_entry(20, 24)}}}',
            24,
            "TensorInvalidInfo",
        ),
        (f'{{"x":{_entry(4, 8)}}}', 8, "InvalidOffset"),
        (f'{{"x":{_E0}}}', 12, "MetadataIncompleteBuffer"),
        (f'{{"x":{_entry(0, 2, "[3]", "F4")}}}', 2, "MisalignedSlice"),
    ],
)
def test_the_fast_path_declines_what_it_cannot_prove(text, buffer, reason):
    raw = text.encode()
    size = 8 + len(raw) + buffer
    assert parse_header_fast(raw, size, "m", {}) is None
    try:
        exact = parse_header_exact(raw, size, "m")
    except HeaderError as exc:
        assert exc.reason == reason, exc.message
        with pytest.raises(HeaderError) as info:
            parse_header(raw, size, "m")
        assert info.value.message == exc.message
    else:
        assert reason is None
        assert strict_view(parse_header(raw, size, "m")) == strict_view(exact)


@pytest.mark.parametrize(
    ("text", "buffer"),
    [
        (f'{{"x-0":{_E0},"y":{_E1}}}', 8),  # "-0" inside a name is no number
        (f'{{"b":{_E1},"a":{_E0}}}', 8),  # offsets out of file order
        (f'{{ "__metadata__" : {{ "format" : "pt" }} , "x" : {_E0} }}   ', 4),
        ('{"é":{"shape":[0,18446744073709551615],"data_offsets":[0,0],"dtype":"F8_E4M3FNUZ"}}', 0),
        ("{}", 0),
    ],
)
def test_the_fast_path_takes_what_writers_write(text, buffer):
    raw = text.encode()
    size = 8 + len(raw) + buffer
    fast = parse_header_fast(raw, size, "m", {})
    assert fast is not None and strict_view(fast) == strict_view(parse_header_exact(raw, size, "m"))


def test_every_fixture_header_takes_the_fast_path():
    """The real tools' headers: all on the fast path, with the exact path's result."""
    shards = sorted(FIXTURES.glob("*/*.safetensors"))
    assert len(shards) >= 30
    for shard in shards:
        blob = shard.read_bytes()
        raw = blob[8 : 8 + int.from_bytes(blob[:8], "little")]
        fast = parse_header_fast(raw, len(blob), str(shard), {})
        assert fast is not None, shard
        assert strict_view(fast) == strict_view(parse_header_exact(raw, len(blob), str(shard)))


# --- The differential test: both readers on the same generated files -------------------------


def library_error(path: Path) -> str | None:
    """The safetensors library's verdict on ``path``: None if ``safe_open`` accepts it, else why.
    The pread backend runs the same header validation as mmap without mapping the file."""
    try:
        with safetensors.safe_open(str(path), framework="numpy", backend="pread"):
            return None
    except safetensors.SafetensorError as exc:
        return str(exc)


def library_view(path: Path) -> tuple[dict[str, tuple[str, list[int]]], dict[str, str] | None]:
    with safetensors.safe_open(str(path), framework="numpy", backend="pread") as f:
        tensors = {name: (f.get_slice(name).get_dtype(), f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
        return tensors, f.metadata()


def strict_view(header: SafetensorsHeader) -> str:
    """Everything a parsed header holds, types included (``repr`` tells 1 from True and 1.0)."""
    return repr(
        (
            header.file,
            header.file_size,
            header.header_size,
            list(header.tensors.items()),
            header.metadata,
            header.warnings,
        )
    )


class Judge:
    """Writes each blob to one file (pwrite + ftruncate: truncating to zero first makes ext4
    flush on every rewrite), runs both readers and asserts they agree; counts the outcomes.

    It also runs our two paths on the header bytes: wherever the fast path answers (with a fresh
    layout cache, and with one shared by every blob judged, as shards share it), it gives the
    exact path's result, type for type; ``paths`` counts the blobs each path decided."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "m.safetensors"
        self.source = LocalSource(directory)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self.outcomes: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.layouts: Layouts = {}

    def close(self) -> None:
        os.close(self.fd)

    def __call__(self, blob: bytes) -> str:
        os.pwrite(self.fd, blob, 0)
        os.ftruncate(self.fd, len(blob))
        theirs = library_error(self.path)
        try:
            ours: SafetensorsHeader | HeaderError = read_header(self.source, "m.safetensors")
        except HeaderError as exc:
            ours = exc
        self.compare_paths(blob, ours)
        if isinstance(ours, HeaderError):
            assert ours.message.startswith(f"{self.path}: invalid safetensors header ({ours.reason}): "), (
                ours.message
            )
            if theirs is None:
                assert ours.reason in STRICTER_RULES, f"library accepts, we reject: {ours.message}\n{blob!r}"
                outcome = f"stricter:{ours.reason}"
            else:
                outcome = "both reject"
        else:
            assert theirs is None, f"library rejects ({theirs}), we accept:\n{blob!r}"
            tensors, metadata = library_view(self.path)
            assert {n: (t.dtype, list(t.shape)) for n, t in ours.tensors.items()} == tensors
            assert ours.metadata == metadata
            outcome = "both accept"
        self.outcomes[outcome] += 1
        return outcome

    def compare_paths(self, blob: bytes, ours: SafetensorsHeader | HeaderError) -> None:
        length = int.from_bytes(blob[:8], "little") if len(blob) >= 8 else MAX_HEADER_SIZE + 1
        if length > MAX_HEADER_SIZE or 8 + length > len(blob):
            self.paths["length prefix"] += 1  # refused before any parsing
            return
        raw, display = blob[8 : 8 + length], str(self.path)
        try:
            exact: SafetensorsHeader | HeaderError = parse_header_exact(raw, len(blob), display)
        except HeaderError as exc:
            exact = exc
        if isinstance(exact, HeaderError):
            assert isinstance(ours, HeaderError) and ours.message == exact.message, (ours, exact.message)
        else:
            assert not isinstance(ours, HeaderError) and strict_view(ours) == strict_view(exact)
        fast = parse_header_fast(raw, len(blob), display, {})
        shared = parse_header_fast(raw, len(blob), display, self.layouts)
        for answer in (fast, shared):
            if answer is not None:
                assert not isinstance(exact, HeaderError), (
                    f"fast path accepts, exact rejects: {exact}\n{blob!r}"
                )
                assert strict_view(answer) == strict_view(exact), blob
        assert (fast is None) == (shared is None), blob
        self.paths["fast" if fast is not None else "exact"] += 1


@pytest.fixture
def judge(tmp_path):
    instance = Judge(tmp_path)
    yield instance
    instance.close()


class Obj(list):
    """A JSON object as a list of (key, value) pairs, so duplicate keys can be written."""


class Raw(str):
    """JSON text written as it is: ``-0``, ``1e400``, ``NaN``, a 400-digit number, deep nesting."""


def emit(node: Any, ascii_only: bool, sep: str) -> str:
    """JSON text of ``node``; ``sep`` follows each ',' and ':' (and precedes ':' when it holds a
    newline: whitespace on both sides of a separator)."""
    if isinstance(node, Raw):
        return str(node)
    colon = f"{sep}:{sep}" if "\n" in sep else f":{sep}"
    if isinstance(node, Obj):
        inner = f",{sep}".join(
            f"{emit(k, ascii_only, sep)}{colon}{emit(v, ascii_only, sep)}" for k, v in node
        )
        return "{" + inner + "}"
    if isinstance(node, list):
        return "[" + f",{sep}".join(emit(v, ascii_only, sep) for v in node) + "]"
    if isinstance(node, str) and not ascii_only:
        try:
            return json.dumps(node, ensure_ascii=False).encode("utf-8").decode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate can only be written as a \u escape
            return json.dumps(node)
    return json.dumps(node)


def slots(node: Any) -> list[tuple[list, int]]:
    """Every (container, index) in the tree: what a mutation can replace, delete or wrap."""
    found: list[tuple[list, int]] = []
    stack = [node]
    while stack:
        container = stack.pop()
        if isinstance(container, list) and not isinstance(container, Raw):
            for index, item in enumerate(container):
                found.append((container, index))
                stack.append(item[1] if isinstance(container, Obj) else item)
    return found


# Names: real ones, unicode, empty, the reserved key, look-alikes, a lone surrogate.
names = st.sampled_from(
    ["model.layers.0.mlp.up_proj.weight", "lm_head.weight", "", "__metadata__", "x-0"]
) | st.text(st.characters(codec="utf-8"), max_size=6)
keys = names | st.sampled_from(["dtype", "shape", "data_offsets", "\ud800", "a\udc00"])
dtypes = st.sampled_from(sorted(DTYPE_BITS)) | st.sampled_from(
    ["f32", "F32 ", "FP8", "float32", "F8_E4M3FN", "", "I4", "F6", "c64"]
)
dims = st.integers(0, 5) | st.sampled_from([0, 8, 2**32, 2**63, 2**64 - 1, 2**64])
odd_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 40)
    | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**308, 2**1100])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([Raw(t) for t in ["-0", "0.0", "4e0", "1E2", "1e308", "1.5e308", "1e400", "-1e400"]])
    | st.sampled_from([Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("9" * 400)])
    | st.sampled_from(["F32", "U8", "__metadata__", "\ud800", "\udbff\udfff"])
    | st.text(max_size=4)
)
odd_values = (
    st.recursive(
        odd_scalars,
        lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(keys, inner), max_size=3).map(Obj),
        max_leaves=6,
    )
    | st.builds(Obj)
    | st.builds(list)
    | st.integers(120, 130).map(lambda d: Raw("[" * d + "]" * d))
    | st.integers(120, 130).map(lambda d: Raw('{"k":' * d + "0" + "}" * d))
)


@st.composite
def valid_documents(draw) -> tuple[Obj, int]:
    """A header the library accepts (mostly): tensors with shapes whose byte sizes are whole,
    contiguous offsets in an order unrelated to the key order, optional metadata and extra fields."""
    tensors = draw(st.lists(st.tuples(names, dtypes, st.lists(st.integers(0, 5), max_size=3)), max_size=5))
    layout = draw(st.permutations(range(len(tensors))))
    begin, offsets = 0, {}
    for index in layout:
        _, dtype, shape = tensors[index]
        numel = 1
        for dim in shape:
            numel *= dim
        size = numel * DTYPE_BITS.get(dtype, 8) // 8 if (numel * DTYPE_BITS.get(dtype, 8)) % 8 == 0 else 0
        offsets[index] = [begin, begin + size]
        begin += size
    document = Obj()
    if draw(st.booleans()):
        document.append(
            (
                "__metadata__",
                draw(st.none() | st.lists(st.tuples(names, st.text(max_size=4)), max_size=2).map(Obj)),
            )
        )
    for index, (name, dtype, shape) in enumerate(tensors):
        fields = [("dtype", dtype), ("shape", shape), ("data_offsets", offsets[index])]
        if draw(st.integers(0, 9)) == 0:
            fields.append((draw(keys), draw(odd_values)))
        document.append(
            (name, Obj(draw(st.permutations(fields)) if draw(st.integers(0, 4)) == 0 else fields))
        )
    position = draw(st.integers(0, len(document)))
    if draw(st.integers(0, 9)) == 0:  # __metadata__ anywhere, not only first
        document[position:position] = [("__metadata__", Obj())]
    return document, begin


# A mutation: (kind, which slot/byte, which pooled value and key, a small delta). Structural kinds
# act on the tree; "text", "pad", "prefix" and "data" on the written bytes (header text, length
# prefix, data buffer); "as_array", "dtype_map" and "extra" on a tensor entry, in the encodings
# the library's serde also takes. Values and keys come from small per-example pools: drawing a
# recursive value per mutation would cost more than running both readers.
KINDS = [
    "replace",
    "delete",
    "duplicate",
    "insert",
    "rename",
    "wrap",
    "bump",
    "text",
    "pad",
    "prefix",
    "data",
]
KINDS += ["as_array", "dtype_map", "extra"]
mutations = st.tuples(st.sampled_from(KINDS), st.integers(0, 2**16), st.integers(0, 7), st.integers(-9, 9))
POOL = 4


def mutate(tree: Obj, edit: tuple, pool: tuple[list, list], byte_edits: list) -> None:
    """Apply one mutation to ``tree`` in place; byte-level ones are queued in ``byte_edits``."""
    kind, where, choice, delta = edit
    value, key = pool[0][choice % POOL], pool[1][choice % POOL]
    if kind in ("text", "pad", "prefix", "data"):
        byte_edits.append((kind, where, delta))
        return
    if kind in ("as_array", "dtype_map", "extra"):
        entries = [(i, v) for i, (_, v) in enumerate(tree) if isinstance(v, Obj)]
        if not entries:
            return
        index, entry = entries[where % len(entries)]
        fields = dict(entry)
        if kind == "as_array":
            tree[index] = (tree[index][0], [fields.get(f) for f in ("dtype", "shape", "data_offsets")])
        elif kind == "dtype_map" and isinstance(fields.get("dtype"), str):
            entry[[k for k, _ in entry].index("dtype")] = ("dtype", Obj([(fields["dtype"], None)]))
        elif kind == "extra":
            edge = [Raw("1.5e308"), Raw("-1e308"), Raw("1.8e308"), 10**308, Raw("[" * 124 + "]" * 124)]
            edge += [Raw("-1.5e308"), Raw("1.2e308")]  # beyond +-1e308 and inside the float range
            entry.append((f"extra{delta}", edge[choice % len(edge)] if delta % 2 else copy.deepcopy(value)))
        return
    places = slots(tree)
    if kind == "insert":
        containers = [tree] + [c[i][1] if isinstance(c, Obj) else c[i] for c, i in places]
        target = [c for c in containers if isinstance(c, list) and not isinstance(c, Raw)]
        container = target[where % len(target)]
        value = copy.deepcopy(value)  # the drawn value is shared by the renders of one example
        container.insert(where % (len(container) + 1), (key, value) if isinstance(container, Obj) else value)
        return
    if not places:
        return
    container, index = places[where % len(places)]
    is_obj = isinstance(container, Obj)
    old = container[index][1] if is_obj else container[index]
    new: Any = old
    if kind == "delete":
        del container[index]
        return
    if kind == "duplicate":
        container.insert(index, copy.deepcopy(container[index]))
        return
    if kind == "rename" and is_obj:
        container[index] = (key, old)
        return
    if kind == "replace":
        new = copy.deepcopy(value)
    elif kind == "wrap":
        new = Obj([(key, old)]) if delta % 2 else [old]
    elif kind == "bump" and type(old) is int:
        new = max(old + delta, 0) if delta % 3 else old * 2**delta if delta > 0 else -old
    container[index] = (container[index][0], new) if is_obj else new


def serialize(tree: Obj, data_size: int, byte_edits: list, style: tuple[bool, str, bool]) -> bytes:
    """The file: length prefix, header text (then the byte-level edits), data buffer."""
    ascii_only, sep, align = style
    text = emit(tree, ascii_only, sep).encode("utf-8", "surrogatepass")
    if align:  # what writers do: pad the header with spaces to a multiple of 8 bytes
        text += b" " * (-(len(text) + 8) % 8)
    prefix_delta = 0
    for kind, where, delta in byte_edits:
        if kind == "text" and text:
            position = where % (len(text) + 1)
            text = text[:position] + bytes([where % 256]) * (delta > 0) + text[position + (delta < 0) :]
        elif kind == "pad":
            text = ([b" ", b"\t\r\n", b"\0", b"\x0c", b"\xc2\xa0"][where % 5] * (1 + abs(delta) % 3)).join(
                [b"", text] if delta >= 0 else [text, b""]
            )
        elif kind == "prefix":
            prefix_delta += delta
        else:
            data_size = max(data_size + delta, 0)
    length = len(text) + prefix_delta if prefix_delta > -9 else 100_000_001
    return struct.pack("<Q", max(length, 0)) + text + b"\0" * data_size


def renders(
    document: Obj, data_size: int, edits: list, pool: tuple[list, list], style: tuple[bool, str, bool]
) -> Iterator[bytes]:
    """The base file (also with whitespace on both sides of every ':'), the base with each
    mutation alone, and with the first 1, 2, ... of them."""
    yield serialize(document, data_size, [], style)
    yield serialize(document, data_size, [], (style[0], " \n\t", style[2]))
    for edit in edits:
        tree, byte_edits = copy.deepcopy(document), []
        mutate(tree, edit, pool, byte_edits)
        yield serialize(tree, data_size, byte_edits, style)
    tree, byte_edits = copy.deepcopy(document), []
    for edit in edits:
        mutate(tree, edit, pool, byte_edits)
        yield serialize(tree, data_size, byte_edits, style)


HEADERS_PER_RUN = 20_000
EXAMPLES = 340
MUTATIONS = 30  # headers per example: the base, each mutation alone, and each prefix of them: 61


@pytest.mark.slow
def test_differential_against_the_safetensors_library(judge):
    """Generated headers (valid, mutated one or many times, structurally odd), written to real
    files and opened by both readers: they agree, or ours rejects under a documented stricter rule."""

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        valid_documents(),
        st.lists(mutations, min_size=MUTATIONS, max_size=MUTATIONS),
        st.tuples(
            st.lists(odd_values, min_size=POOL, max_size=POOL), st.lists(keys, min_size=POOL, max_size=POOL)
        ),
        st.booleans(),
        st.sampled_from(["", " "]),
        st.booleans(),
    )
    def run(base, edits, pool, ascii_only, sep, align):
        for blob in renders(*base, edits, pool, (ascii_only, sep, align)):
            judge(blob)

    run()
    outcomes = judge.outcomes
    total = sum(outcomes.values())
    print(f"differential: {total} headers, {dict(sorted(outcomes.items()))}, {dict(judge.paths)}")
    assert total >= HEADERS_PER_RUN, outcomes
    # The generator reaches both verdicts and every stricter rule; without that it proves little.
    assert outcomes["both accept"] >= 1000 and outcomes["both reject"] >= 1000, outcomes
    assert {f"stricter:{rule}" for rule in STRICTER_RULES} <= set(outcomes), outcomes
    # ... and both of our paths decide a good share of them.
    assert judge.paths["fast"] >= 500 and judge.paths["exact"] >= 1000, judge.paths


_VALID = build(
    {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [], "data_offsets": [8, 12]},
    },
    b"\1" * 12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_random_bytes_get_the_library_verdict(judge, blob):
    judge(blob)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_valid_headers_get_the_library_verdict(judge, data):
    blob = bytearray(_VALID)
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    judge(bytes(blob))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**65) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(st.sampled_from(["a", "b", "__metadata__"]), json_values, max_size=3), st.integers(0, 64)
)
def test_arbitrary_json_headers_get_the_library_verdict(judge, header, buffer):
    judge(build(header, b"\0" * buffer))


index_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(
        [
            "model.safetensors",
            "../model.safetensors",
            "/etc/passwd",
            "",
            ".",
            "x.safetensors",
            "model-00001-of-00002.safetensors",
            "a\0b",
            "sub/model.safetensors",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(
            ["weight_map", "metadata", "lm_head.weight", "model.embed_tokens.weight", "total_size", "x"]
        ),
        inner,
        max_size=4,
    ),
    max_leaves=10,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index_values | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
def test_random_indexes_open_only_when_they_name_the_one_shard(tmp_path, index):
    from ptq_validators.checkpoint import Checkpoint

    directory = tmp_path / "ckpt"
    directory.mkdir(exist_ok=True)
    (directory / "model.safetensors").write_bytes(_VALID)
    text = index if isinstance(index, str) else json.dumps(index)
    (directory / "model.safetensors.index.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    names_only_the_shard = isinstance(weight_map, dict) and all(
        v == "model.safetensors" for v in weight_map.values()
    )
    try:
        checkpoint = Checkpoint.open(LocalSource(directory))
    except InputError:
        assert not names_only_the_shard, index
        return
    assert names_only_the_shard, index
    assert set(checkpoint.headers) == set(weight_map.values())
    if weight_map:
        assert checkpoint.tensors == read_header(LocalSource(directory), "model.safetensors").tensors


INDEX_SHARDS = ["model.safetensors", "x.safetensors", "model-00001-of-00002.safetensors", "m", "n", "o"]


@settings(max_examples=200, deadline=None)
@example(
    '{"weight_map": {"a": "m.safetensors", "b": "n", "a": "o"}, "metadata": {"total_size": 1e400}}',
    ["n", "o"],
)
@example('{"metadata": {"n": NaN}, "weight_map": {"a": "m"}, "weight_map": {"b": "n"}}', ["m", "n"])
@example('{"weight_map": {"\\ud800": "m"}}', ["m"])
@example('{"weight_map": {"a": "m", "b": "n", "a": "n"}}', ["n"])
@given(
    index_values
    | st.dictionaries(st.just("weight_map"), st.dictionaries(st.text(max_size=3), index_values, max_size=4))
    | st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.lists(st.sampled_from(INDEX_SHARDS), unique=True),
)
def test_the_fast_index_read_agrees_with_json(index, shards):
    """Whatever index msgspec decodes, ``json`` reads the same weight map, in the same order;
    whatever ``json`` refuses, msgspec refuses too (and ``json``'s message is the one shown).
    msgspec reads an index only when its values are all among ``shards`` (the shards on disk), each
    shard name as one shared string (typing caches the ``Literal``, so it may be an equal string
    of an earlier call's ``shards``); an index naming any other value it declines."""
    from ptq_validators.checkpoint import _decode_weight_map, _read_weight_map_exactly

    text = index if isinstance(index, str) else json.dumps(index)
    raw = text.encode("utf-8", "surrogatepass")
    fast = _decode_weight_map(raw, shards)
    try:
        exact = _read_weight_map_exactly(raw, "index")
    except InputError:
        assert fast is None, index
        return
    if not set(exact.values()) <= set(shards):
        assert fast is None, index
    elif fast is not None:
        assert list(fast.items()) == list(exact.items()), index
        assert set(fast.values()) <= set(shards), index
        assert len(set(map(id, fast.values()))) == len(set(fast.values())), index  # one string each


def test_the_fast_index_read_takes_indexes_as_writers_write_them():
    from ptq_validators.checkpoint import _decode_weight_map

    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    index = {"metadata": {"total_size": 12}, "weight_map": {"a": shards[1], "b": shards[0], "c": shards[1]}}
    for text in (
        json.dumps(index),
        json.dumps(index, indent=2),
        json.dumps({**index, "é": "ü"}, ensure_ascii=False),
    ):
        fast = _decode_weight_map(text.encode(), [*shards, "model.safetensors"])
        assert fast == index["weight_map"] and list(fast) == ["a", "b", "c"]
    assert _decode_weight_map(json.dumps(index).encode(), shards[:1]) is None
