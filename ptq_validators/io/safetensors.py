"""A strict safetensors header reader that never reads tensor data.

``parse_header(prefix, file_size, display_name)`` validates the 8-byte length and the JSON header
against the rules of the reference reader (huggingface/safetensors ``tensor.rs``) plus stricter
ones it skips (duplicate keys, NaN literals), and returns a ``SafetensorsHeader``. Every failure
raises ``InputError`` whose message names the file, the tensor where there is one, and the
reason in the reference reader's vocabulary (``InvalidOffset``, ``TensorInvalidInfo``, ...).
"""

from __future__ import annotations

import json
import math
import operator
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ptq_validators.errors import InputError
from ptq_validators.io.source import ByteSource

MAX_HEADER_SIZE = 100_000_000  # the reference reader's MAX_HEADER_SIZE

# Bits per element of every dtype code the reference reader knows (safetensors 0.8).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
FLOAT_DTYPES = frozenset({"BF16", "F16", "F32", "F64"})
_TENSOR_FIELDS = frozenset({"dtype", "shape", "data_offsets"})
_CORRUPT_HINT = "the file is corrupt, truncated or not safetensors; re-export or re-copy it"


class TensorInfo(NamedTuple):
    """One tensor's header entry. ``begin``/``end`` are relative to the data buffer.

    A NamedTuple rather than a dataclass: a 671B-parameter export has ~200k of these, and tuple
    construction is several times cheaper."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def bits(self) -> int:
        """Bits this tensor occupies on disk (numel x dtype bits, which the reader has checked
        equal to its byte span)."""
        return (self.end - self.begin) * 8


@dataclass
class SafetensorsHeader:
    """A validated header: tensors by name, the string metadata, and what was tolerated."""

    file: str
    file_size: int
    header_size: int
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] | None
    warnings: list[str] = field(default_factory=list)

    @property
    def data_offset(self) -> int:
        """Absolute file offset of the data buffer (8 + header length)."""
        return 8 + self.header_size


def _fail(display: str, reason: str, detail: str) -> InputError:
    return InputError(f"{display}: invalid safetensors header ({reason}): {detail}", hint=_CORRUPT_HINT)


def read_header(source: ByteSource, name: str) -> SafetensorsHeader:
    """Read and validate the header of safetensors file ``name`` from ``source``."""
    display = source.display(name)
    file_size = source.size(name)
    if file_size < 8:
        raise _fail(display, "HeaderTooSmall", f"file has {file_size} bytes, fewer than 8")
    (length,) = struct.unpack("<Q", source.read_range(name, 0, 8))
    if length > MAX_HEADER_SIZE:
        raise _fail(display, "HeaderTooLarge", f"header length {length} exceeds {MAX_HEADER_SIZE}")
    if 8 + length > file_size:
        raise _fail(
            display,
            "InvalidHeaderLength",
            f"header length {length} runs past the end of the {file_size}-byte file",
        )
    return parse_header(source.read_range(name, 8, length), file_size, display)


def parse_header(header_bytes: bytes, file_size: int, display: str) -> SafetensorsHeader:
    """Validate ``header_bytes`` (the JSON after the 8-byte length) of a ``file_size`` file."""
    warnings: list[str] = []
    try:
        text = header_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(display, "InvalidHeaderUtf8", f"byte {exc.start} is not UTF-8") from None
    stripped = text.lstrip(" \t\r\n")
    if not stripped.startswith("{"):
        raise _fail(display, "InvalidHeaderStart", "the header does not begin with '{'")
    if len(stripped) != len(text):
        warnings.append("header has leading whitespace before '{' (tolerated by the reference reader)")
    try:
        # object_pairs_hook=list keeps duplicate keys visible at C speed; objects arrive as
        # lists of (key, value) tuples and are turned into dicts below.
        pairs = json.loads(stripped, object_pairs_hook=list, parse_constant=_reject_constant)
    except _BadConstant as exc:
        raise _fail(display, "InvalidHeaderJson", f"non-standard literal {exc.literal}") from None
    except (ValueError, RecursionError) as exc:
        raise _fail(display, "InvalidHeaderJson", str(exc)) from None
    raw = _as_object(pairs, display)

    metadata = raw.pop("__metadata__", None)
    if metadata is not None:
        metadata = _as_object(metadata, display) if _is_object(metadata) else None
        if metadata is None or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise _fail(display, "InvalidMetadata", "__metadata__ must map strings to strings")

    tensors = {name: _tensor_info(name, entry, display, warnings) for name, entry in raw.items()}
    _check_layout(tensors, file_size - 8 - len(header_bytes), display)
    return SafetensorsHeader(display, file_size, len(header_bytes), tensors, metadata, warnings)


def _tensor_info(name: str, entry: Any, display: str, warnings: list[str]) -> TensorInfo:
    # The common case (exactly the three fields, well typed) is checked with plain type tests:
    # this runs once per tensor, ~200k times for a 671B export.
    if type(entry) is not list or (entry and type(entry[0]) is not tuple):
        raise _fail(display, "InvalidTensorInfo", f"tensor {name!r}: entry is not an object")
    if (
        len(entry) == 3
        and entry[0][0] == "dtype"
        and entry[1][0] == "shape"
        and entry[2][0] == "data_offsets"
    ):
        # The order every writer uses: unpack without building a dict.
        dtype, shape, offsets = entry[0][1], entry[1][1], entry[2][1]
    else:
        dtype, shape, offsets = _unusual_entry(name, entry, display, warnings)
    dtype_bits = DTYPE_BITS.get(dtype) if type(dtype) is str else None
    if dtype_bits is None:
        raise _fail(display, "UnknownDtype", f"tensor {name!r}: dtype {dtype!r} is not a safetensors dtype")
    numel = 1
    if type(shape) is not list:
        raise _fail(
            display, "InvalidShape", f"tensor {name!r}: shape must be a list of non-negative integers"
        )
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise _fail(
                display, "InvalidShape", f"tensor {name!r}: shape must be a list of non-negative integers"
            )
        numel *= dim
    if not (
        type(offsets) is list
        and len(offsets) == 2
        and type(offsets[0]) is int
        and type(offsets[1]) is int
        and offsets[0] >= 0
        and offsets[1] >= 0
    ):
        raise _fail(
            display, "InvalidOffset", f"tensor {name!r}: data_offsets must be two non-negative integers"
        )
    begin, end = offsets
    if end < begin:
        raise _fail(display, "InvalidOffset", f"tensor {name!r}: data_offsets end {end} < begin {begin}")
    bits = numel * dtype_bits
    if bits.bit_length() > 126:
        raise _fail(display, "ValidationOverflow", f"tensor {name!r}: shape {shape} overflows")
    if bits % 8:
        raise _fail(
            display,
            "MisalignedSlice",
            f"tensor {name!r}: {numel} elements of {dtype} do not end on a byte boundary",
        )
    if end - begin != bits // 8:
        raise _fail(
            display,
            "TensorInvalidInfo",
            f"tensor {name!r}: spans {end - begin} bytes but {dtype} {list(shape)} needs {bits // 8}",
        )
    return TensorInfo(name, dtype, tuple(shape), begin, end)


def _unusual_entry(
    name: str, pairs: list[tuple[str, Any]], display: str, warnings: list[str]
) -> tuple[Any, Any, Any]:
    """Fields of an entry written in another order, with extra fields, or with some missing."""
    entry = _as_object(pairs, display)
    missing = _TENSOR_FIELDS - entry.keys()
    if missing:
        raise _fail(display, "InvalidTensorInfo", f"tensor {name!r}: missing {', '.join(sorted(missing))}")
    extra = entry.keys() - _TENSOR_FIELDS
    if extra:
        warnings.append(f"tensor {name!r}: unknown fields {', '.join(sorted(extra))} ignored")
    return entry["dtype"], entry["shape"], entry["data_offsets"]


def _check_layout(tensors: dict[str, TensorInfo], buffer_size: int, display: str) -> None:
    """Offsets start at 0, are contiguous (no holes, no overlap) and cover the buffer exactly."""
    expected = 0
    for info in sorted(tensors.values(), key=_BY_OFFSETS):
        if info.begin != expected:
            what = "overlaps the previous tensor" if info.begin < expected else "leaves a hole"
            raise _fail(
                display,
                "InvalidOffset",
                f"tensor {info.name!r} begins at {info.begin}, expected {expected} ({what})",
            )
        expected = info.end
    if expected != buffer_size:
        raise _fail(
            display,
            "MetadataIncompleteBuffer",
            f"tensors cover {expected} bytes of a {buffer_size}-byte data buffer",
        )


def _is_object(value: Any) -> bool:
    """A JSON object parsed with ``object_pairs_hook=list``: a list of (key, value) tuples.
    (An empty object and an empty array both arrive as ``[]``.)"""
    return type(value) is list and (not value or type(value[0]) is tuple)


def _as_object(pairs: Any, display: str) -> dict[str, Any]:
    if not _is_object(pairs):
        raise _fail(display, "InvalidHeaderJson", "the header is not a JSON object")
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _fail(display, "DuplicateKey", f"key {key!r} appears more than once")
            seen.add(key)
    return result


_BY_OFFSETS = operator.itemgetter(3, 4)  # TensorInfo (begin, end)


class _BadConstant(Exception):
    def __init__(self, literal: str) -> None:
        self.literal = literal


def _reject_constant(literal: str) -> Any:
    raise _BadConstant(literal)
