"""The strict header reader: valid files, each named failure, and fuzzed input."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptq_validators.errors import InputError
from ptq_validators.io.safetensors import DTYPE_BITS, parse_header, read_header
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
            "(InvalidMetadata): __metadata__ must map strings to strings",
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
            "(InvalidShape): tensor 'x': shape must be a list of non-negative integers",
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
            "(ValidationOverflow): tensor 'x': shape [4611686018427387904, 4611686018427387904] overflows",
        ),
    ],
)
def test_each_invalid_header_is_named(tmp_path, blob, expected):
    message = error_of(tmp_path, blob)
    assert message == f"{tmp_path}/m.safetensors: invalid safetensors header {expected}"


def test_leading_whitespace_is_tolerated_with_a_warning(tmp_path):
    result = read(tmp_path, build("  {}"))
    assert result.warnings == ["header has leading whitespace before '{' (tolerated by the reference reader)"]


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
def test_random_bytes_never_escape_as_anything_but_input_errors(tmp_path, blob):
    with contextlib.suppress(InputError):
        read(tmp_path, blob)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_valid_headers_never_escape_as_anything_but_input_errors(tmp_path, data):
    blob = bytearray(_VALID)
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    with contextlib.suppress(InputError):
        read(tmp_path, bytes(blob))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**65) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "__metadata__"]), json_values, max_size=3), st.integers(0, 64)
)
def test_arbitrary_json_headers_never_escape_as_anything_but_input_errors(header, buffer):
    text = json.dumps(header).encode()
    with contextlib.suppress(InputError):
        parse_header(text, 8 + len(text) + buffer, "fuzz.safetensors")


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


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index_values | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
def test_random_indexes_never_escape_as_anything_but_input_errors(tmp_path, index):
    from ptq_validators.checkpoint import Checkpoint

    directory = tmp_path / "ckpt"
    directory.mkdir(exist_ok=True)
    (directory / "model.safetensors").write_bytes(_VALID)
    text = index if isinstance(index, str) else json.dumps(index)
    (directory / "model.safetensors.index.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        checkpoint = Checkpoint.open(LocalSource(directory))
    except InputError:
        return
    assert set(checkpoint.headers) <= {"model.safetensors"}
