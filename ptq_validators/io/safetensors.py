"""A strict safetensors header reader that never reads tensor data.

``parse_header(prefix, file_size, display_name)`` validates the 8-byte length and the JSON header
against the rules of the reference reader (huggingface/safetensors ``tensor.rs``) plus stricter
ones it skips (duplicate keys, NaN literals), and returns a ``SafetensorsHeader``. Every failure
raises ``InputError`` whose message names the file, the tensor where there is one, and the
reason in the reference reader's vocabulary (``InvalidOffset``, ``TensorInvalidInfo``, ...).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from ptq_validators.errors import InputError
from ptq_validators.io.source import ByteSource

MAX_HEADER_SIZE = 100_000_000  # the reference reader's MAX_HEADER_SIZE

# Bits per element of every dtype code the reference reader knows (safetensors 0.8).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
FLOAT_DTYPES = frozenset({"BF16", "F16", "F32", "F64"})
_TENSOR_FIELDS = frozenset({"dtype", "shape", "data_offsets"})
_CORRUPT_HINT = "the file is corrupt, truncated or not safetensors; re-export or re-copy it"


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor's header entry. ``begin``/``end`` are relative to the data buffer."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def bits(self) -> int:
        """Bits this tensor occupies on disk (numel x dtype bits)."""
        return self.numel * DTYPE_BITS[self.dtype]


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
    return InputError(f"{display}: invalid safetensors header ({reason}): {detail}",
                      hint=_CORRUPT_HINT)


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
        raise _fail(display, "InvalidHeaderLength",
                    f"header length {length} runs past the end of the {file_size}-byte file")
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
        raw = json.loads(stripped, object_pairs_hook=_reject_duplicates,
                         parse_constant=_reject_constant)
    except _DuplicateKey as exc:
        raise _fail(display, "DuplicateKey", f"key {exc.key!r} appears more than once") from None
    except _BadConstant as exc:
        raise _fail(display, "InvalidHeaderJson", f"non-standard literal {exc.literal}") from None
    except (ValueError, RecursionError) as exc:
        raise _fail(display, "InvalidHeaderJson", str(exc)) from None
    if not isinstance(raw, dict):
        raise _fail(display, "InvalidHeaderJson", "the header is not a JSON object")

    metadata = raw.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise _fail(display, "InvalidMetadata", "__metadata__ must map strings to strings")

    tensors = {name: _tensor_info(name, entry, display, warnings) for name, entry in raw.items()}
    _check_layout(tensors, file_size - 8 - len(header_bytes), display)
    return SafetensorsHeader(display, file_size, len(header_bytes), tensors, metadata, warnings)


def _tensor_info(name: str, entry: Any, display: str, warnings: list[str]) -> TensorInfo:
    where = f"tensor {name!r}"
    if not isinstance(entry, dict):
        raise _fail(display, "InvalidTensorInfo", f"{where}: entry is not an object")
    missing = _TENSOR_FIELDS - entry.keys()
    if missing:
        raise _fail(display, "InvalidTensorInfo", f"{where}: missing {', '.join(sorted(missing))}")
    extra = entry.keys() - _TENSOR_FIELDS
    if extra:
        warnings.append(f"{where}: unknown fields {', '.join(sorted(extra))} ignored")
    dtype = entry["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise _fail(display, "UnknownDtype", f"{where}: dtype {dtype!r} is not a safetensors dtype")
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _fail(display, "InvalidShape", f"{where}: shape must be a list of non-negative integers")
    offsets = entry["data_offsets"]
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise _fail(display, "InvalidOffset", f"{where}: data_offsets must be two non-negative integers")
    begin, end = offsets
    if end < begin:
        raise _fail(display, "InvalidOffset", f"{where}: data_offsets end {end} < begin {begin}")
    info = TensorInfo(name, dtype, tuple(shape), begin, end)
    bits = info.numel * DTYPE_BITS[dtype]
    if bits.bit_length() > 126:
        raise _fail(display, "ValidationOverflow", f"{where}: shape {shape} overflows")
    if bits % 8:
        raise _fail(display, "MisalignedSlice",
                    f"{where}: {info.numel} elements of {dtype} do not end on a byte boundary")
    if info.nbytes != bits // 8:
        raise _fail(display, "TensorInvalidInfo",
                    f"{where}: spans {info.nbytes} bytes but {dtype} {list(shape)} needs {bits // 8}")
    return info


def _check_layout(tensors: dict[str, TensorInfo], buffer_size: int, display: str) -> None:
    """Offsets start at 0, are contiguous (no holes, no overlap) and cover the buffer exactly."""
    expected = 0
    for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if info.begin != expected:
            what = "overlaps the previous tensor" if info.begin < expected else "leaves a hole"
            raise _fail(display, "InvalidOffset",
                        f"tensor {info.name!r} begins at {info.begin}, expected {expected} ({what})")
        expected = info.end
    if expected != buffer_size:
        raise _fail(display, "MetadataIncompleteBuffer",
                    f"tensors cover {expected} bytes of a {buffer_size}-byte data buffer")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _BadConstant(Exception):
    def __init__(self, literal: str) -> None:
        self.literal = literal


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _reject_constant(literal: str) -> Any:
    raise _BadConstant(literal)
