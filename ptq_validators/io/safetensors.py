"""A strict safetensors header reader that never reads tensor data.

``read_header(source, name)`` reads the 8-byte length and the JSON header of one file;
``parse_header(header_bytes, file_size, display)`` validates the header and returns a
``SafetensorsHeader``. Every failure raises ``HeaderError`` (an ``InputError``) whose message names
the file, the tensor where there is one, and the rule broken, in the vocabulary of the reference
reader (huggingface/safetensors ``tensor.rs``); ``HeaderError.reason`` carries the rule's name.

Rules shared with the reference reader (``safetensors.safe_open`` 0.8 rejects the same headers;
``tests/test_safetensors_reader.py`` checks this on generated headers):

* the file has at least 8 bytes (``HeaderTooSmall``); the length is at most 100,000,000
  (``HeaderTooLarge``) and the header fits in the file (``InvalidHeaderLength``);
* the header is UTF-8 (``InvalidHeaderUtf8``) holding one JSON object, with only JSON whitespace
  (space, tab, CR, LF) before or after it, so the space padding writers add for 8-byte alignment
  is fine and NUL padding is not (``InvalidHeaderStart``, ``InvalidHeaderJson``); no ``NaN`` or
  ``Infinity`` literals, no ``\\u`` escape of a lone UTF-16 surrogate (``InvalidHeaderJson``);
  at most 127 nested arrays/objects (``NestingTooDeep``);
* ``__metadata__`` is absent, ``null``, or an object of string values (``InvalidMetadata``);
* every other key is a tensor whose entry has ``dtype``, ``shape`` and ``data_offsets``
  (``InvalidTensorInfo``; any other field is ignored with a warning); ``dtype`` is one of
  ``DTYPE_BITS``, spelled exactly (``UnknownDtype``); ``shape`` is an array of integers in
  [0, 2**64) (``InvalidShape``) and ``data_offsets`` an array of two non-negative integers,
  ``begin <= end`` (``InvalidOffset``); ``true``, ``1.0``, ``1e0`` and ``-0`` are not integers
  (the reference reader's JSON parser reads ``-0`` as a float);
* the element count and its size in bits fit in 64 bits, multiplying dimension by dimension as
  the reference reader does (``ValidationOverflow``); sub-byte tensors end on a byte boundary
  (``MisalignedSlice``); ``end - begin`` equals the size in bytes (``TensorInvalidInfo``);
* sorted by offsets, tensors start at 0 and follow each other without holes or overlap
  (``InvalidOffset``; zero-size tensors may share an offset) and end exactly at the end of the
  file (``MetadataIncompleteBuffer``). Names are any JSON string, the empty one included.

Stricter rules (the reference reader accepts these; ``STRICTER_RULES`` lists their names):

* ``DuplicateKey``: a key repeated in the top-level object, in ``__metadata__`` or in a tensor
  entry. The reference reader keeps the last tensor or metadata value silently, which hides a
  tensor from every check (it rejects a repeated ``dtype``/``shape``/``data_offsets`` or
  ``__metadata__`` itself, and so do we).
* ``TensorInfoAsArray``: a tensor entry written as ``[dtype, shape, data_offsets]``; and
  ``DtypeAsMap``: a dtype written as ``{"F32": null}``. Both are the generic serde encodings of a
  struct and an enum that the reference reader's deserializer happens to take; the format is
  objects with string dtypes, and no writer produces these.
* ``NumberOutOfRange``: a number in an ignored field beyond +-1e308. The reference reader rejects
  numbers beyond the float range (about +-1.8e308) but with inexact rounding at the boundary;
  1e308 leaves a margin that is exact on both sides.

Two paths, one set of rules. ``parse_header_exact`` applies the rules above a check at a time and
is their definition: every message and reason comes from it. ``parse_header_fast`` gives the same
result for headers as writers write them, decoding with msgspec straight into typed entries
(types and signs checked in C) and checking offsets and sizes a whole list at a time, once per
distinct (dtype, shape) for the layout rules. It declines (returns None, and ``parse_header``
runs the exact path, which then names any problem) every header it cannot prove equivalent:

* one that does not start with ``{`` (leading whitespace is tolerated with a warning), or holds
  a backslash: without escapes every ``"`` delimits a string and strings decode byte for byte;
* one holding the number ``-0`` (an integer to msgspec, not to the reference reader); and
  non-ASCII bytes that are not UTF-8;
* any entry that is not exactly ``dtype``, ``shape`` and ``data_offsets`` with a known dtype,
  an array of non-negative integers (``true``, ``1.0`` or ``null`` fail the typed decode) and
  two non-negative integers; a ``__metadata__`` that is not an object of strings at the start;
* a repeated key, or one it cannot rule out. The decoders keep the last of repeated keys, so
  the fast path counts: every ``:`` of the text is either the separator of exactly one key or
  inside a string, and the decoded objects hold ``4 x tensors (+ 1 + metadata keys)`` distinct
  keys. Equal counts prove there is no repeated key and no ``:`` in a string (whitespace around
  a separator changes nothing; a ``:`` in a name or value only raises the text's count, so it
  can only make the fast path decline, never hide a repeated key);
* any header that breaks a rule (a new layout is checked by the exact rules on one tensor
  that has it; offsets must fill the buffer in file order or, failing that, sorted).
"""

from __future__ import annotations

import json
import math
import operator
import re
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate, repeat
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

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
# Reasons for which this reader rejects headers that the reference reader accepts (see above).
STRICTER_RULES = frozenset({"DuplicateKey", "TensorInfoAsArray", "DtypeAsMap", "NumberOutOfRange"})
MAX_DEPTH = 127  # nested arrays/objects the reference reader's JSON parser accepts (128 fails)
_LIMIT_U64 = 1 << 64  # shapes, offsets and sizes are usize (u64) in the reference reader
_NUMBER_LIMIT = 1e308
_TENSOR_FIELDS = frozenset({"dtype", "shape", "data_offsets"})
_SURROGATE = re.compile("[\ud800-\udfff]")
# The number -0 where a JSON value can start (false hits inside strings only cost speed).
_NEGATIVE_ZERO = re.compile(rb"[\[,:][ \t\r\n]*-0(?![.eE0-9])")
# Validated (dtype, shape) → (that dtype, the shared shape tuple, its size in bytes, its number).
Layouts = dict[tuple[str, tuple[int, ...]], tuple[str, tuple[int, ...], int, int]]
_CORRUPT_HINT = "the file is corrupt, truncated or not safetensors; re-export or re-copy it"


# The fast path's decoders (see the module docstring): a tensor entry exactly as the format
# defines it, types and signs checked in C; gc=False: the entries hold no containers of objects.
_NonNegative = Annotated[int, msgspec.Meta(ge=0)]


# dtype is a Literal: msgspec checks it and yields the one shared string of each name.
_Entry: Any = msgspec.defstruct(
    "_Entry",
    [
        ("dtype", Literal[tuple(DTYPE_BITS)]),
        ("shape", tuple[_NonNegative, ...]),
        ("data_offsets", tuple[_NonNegative, _NonNegative]),
    ],
    forbid_unknown_fields=True,
    gc=False,
)
_decode_entries: Callable[[bytes | bytearray], dict[str, Any]] = msgspec.json.Decoder(
    dict[str, _Entry]
).decode
_decode_metadata = msgspec.json.Decoder(dict[str, str]).decode
_METADATA_START = re.compile(rb'\{[ \t\r\n]*"__metadata__"[ \t\r\n]*:[ \t\r\n]*(?=\{)')
_COMMA = re.compile(rb"[ \t\r\n]*,")
_LAYOUT_FIELDS = operator.attrgetter("dtype", "shape")
_FIRST, _SECOND, _THIRD = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)
_FOURTH = operator.itemgetter(3)


class TensorInfo(NamedTuple):
    """One tensor's header entry. ``begin``/``end`` are relative to the data buffer; ``layout``
    numbers its (dtype, shape) (``layout_number``): tensors of one layout, of any checkpoint,
    share the number, a key that hashes and compares without looking at the shape.

    A NamedTuple rather than a dataclass: a 671B-parameter export has ~200k of these, and tuple
    construction is several times cheaper. Made by hand (tests): ``tensor_info``."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int
    layout: int

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


# TensorInfo's fields as C-speed getters, for passes over a whole tensor table.
INFO_NAME, INFO_DTYPE = operator.itemgetter(0), operator.itemgetter(1)
INFO_BEGIN, INFO_END = operator.itemgetter(3), operator.itemgetter(4)
INFO_LAYOUT = operator.itemgetter(5)  # the number of its (dtype, shape): ``layout_number``

# Every (dtype, shape) met in this process, numbered in order of first appearance: a layout is
# keyed by its number where tensors are grouped by layout (a module's, tens of thousands of
# times), instead of by a tuple whose shape is hashed and compared element by element each time.
_NUMBERS: dict[tuple[str, tuple[int, ...]], int] = {}
_NUMBERED: list[tuple[str, tuple[int, ...]]] = []
_NUMBERING = threading.Lock()


def layout_number(dtype: str, shape: tuple[int, ...]) -> int:
    """The number of the layout (``dtype``, ``shape``): one per distinct pair, for the process."""
    number = _NUMBERS.get((dtype, shape))
    if number is None:
        with _NUMBERING:
            number = _NUMBERS.setdefault((dtype, shape), len(_NUMBERED))
            if number == len(_NUMBERED):
                _NUMBERED.append((dtype, shape))
    return number


def numbered_layout(number: int) -> tuple[str, tuple[int, ...]]:
    """The (dtype, shape) of layout ``number`` (``layout_number``)."""
    return _NUMBERED[number]


def tensor_info(name: str, dtype: str, shape: tuple[int, ...], begin: int, end: int) -> TensorInfo:
    """A ``TensorInfo`` with its layout numbered."""
    return TensorInfo(name, dtype, shape, begin, end, layout_number(dtype, shape))


@dataclass
class ShardHeader:
    """What a validated header says besides its tensor table: sizes, the string metadata, and
    what was tolerated. ``Checkpoint`` keeps one per shard (the tensors it merges)."""

    file: str
    file_size: int
    header_size: int
    metadata: dict[str, str] | None
    warnings: list[str] = field(default_factory=list)

    @property
    def data_offset(self) -> int:
        """Absolute file offset of the data buffer (8 + header length)."""
        return 8 + self.header_size


@dataclass
class SafetensorsHeader(ShardHeader):
    """A validated header: the above, and its tensors in the header's order as two columns,
    ``names`` (distinct) and ``infos``; ``tensors`` is them by name."""

    names: list[str] = field(kw_only=True)
    infos: list[TensorInfo] = field(kw_only=True)

    @cached_property
    def tensors(self) -> dict[str, TensorInfo]:
        """The tensors by name (made on first use: a checkpoint joins the columns)."""
        return dict(zip(self.names, self.infos, strict=True))

    def shard(self) -> ShardHeader:
        """This header without its tensor table."""
        return ShardHeader(self.file, self.file_size, self.header_size, self.metadata, self.warnings)


class HeaderError(InputError):
    """An invalid header; ``reason`` is the name of the rule it breaks (see the module docstring)."""

    def __init__(self, message: str, *, hint: str | None = None, reason: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason

    def __reduce__(self):  # keep the reason when the error crosses a process boundary
        return _rebuild_header_error, (self.message, self.hint, self.reason)


def _rebuild_header_error(message: str, hint: str | None, reason: str) -> HeaderError:
    return HeaderError(message, hint=hint, reason=reason)


def _fail(display: str, reason: str, detail: str) -> HeaderError:
    return HeaderError(
        f"{display}: invalid safetensors header ({reason}): {detail}", hint=_CORRUPT_HINT, reason=reason
    )


def read_header(source: ByteSource, name: str, layouts: Layouts | None = None) -> SafetensorsHeader:
    """Read and validate the header of safetensors file ``name`` from ``source``. ``layouts``
    (see ``parse_header``) may be shared by the shards of one checkpoint."""
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
    return parse_header(source.read_range(name, 8, length), file_size, display, layouts)


def parse_header(
    header_bytes: bytes, file_size: int, display: str, layouts: Layouts | None = None
) -> SafetensorsHeader:
    """Validate ``header_bytes`` (the JSON after the 8-byte length) of a ``file_size`` file.
    ``layouts`` caches validated (dtype, shape) layouts across calls (the shape tuples are then
    shared by every tensor of that layout); it changes no result, only the cost.

    Headers as writers write them take ``parse_header_fast``; it declines everything else, and
    ``parse_header_exact``, the definition of every rule and message, reads those."""
    if layouts is None:
        layouts = {}
    header = parse_header_fast(header_bytes, file_size, display, layouts)
    return header if header is not None else parse_header_exact(header_bytes, file_size, display, layouts)


def parse_header_fast(
    header_bytes: bytes, file_size: int, display: str, layouts: Layouts
) -> SafetensorsHeader | None:
    """``parse_header_exact``'s result, found with compiled decoding and whole-list checks, or
    None (declined) for a header it cannot prove equivalent or that breaks a rule: then the exact
    path runs and names the problem. See "The fast path" in the module docstring."""
    if header_bytes[:1] != b"{" or b"\\" in header_bytes:
        return None
    if b"-" in header_bytes and _NEGATIVE_ZERO.search(header_bytes):  # ("-0" is a slow search)
        return None
    if not header_bytes.isascii():
        try:
            header_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return None
    metadata: dict[str, str] | None = None
    body = header_bytes
    if b'"__metadata__"' in header_bytes:  # without escapes, only the key can be spelled so
        metadata, body = _split_metadata(header_bytes)
        if metadata is None:
            return None
    try:
        entries = _decode_entries(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    if metadata is not None and (not entries or "__metadata__" in entries):
        return None  # "{__metadata__, }" or a second __metadata__: the exact path rejects it
    # Duplicate keys: every ':' of the text is one key's separator or sits inside a string, and
    # the decoder kept each distinct key once; equal counts leave no room for a repeated key.
    keys = 4 * len(entries) + (0 if metadata is None else 1 + len(metadata))
    if header_bytes.count(b":") != keys:
        return None
    infos = list(entries.values())
    # (dtype, shape) → (dtype, shared shape, bytes, number): a few dozen layouts, each checked once.
    # (Comprehensions: Python 3.11 reads a struct's field faster than attrgetter does.)
    try:
        shared: list[Any] = [layouts[entry.dtype, entry.shape] for entry in infos]
    except KeyError:
        if not _learn_layouts(entries, layouts, display):
            return None
        shared = [layouts[entry.dtype, entry.shape] for entry in infos]
    offsets = [offset for entry in infos for offset in entry.data_offsets]
    begins, ends = offsets[0::2], offsets[1::2]
    del offsets
    buffer_size = file_size - 8 - len(header_bytes)
    # As writers lay tensors out, in header order, back to back from 0: then each tensor has its
    # layout's size exactly when the ends are the running sums of the sizes (two list compares
    # in C, cheaper than a difference per tensor).
    if _contiguous(begins, ends, buffer_size) and list(accumulate(map(_THIRD, shared))) == ends:
        begins[1:] = ends[:-1]  # equal values; sharing the objects saves an int per tensor
    elif any(map(operator.ne, map(operator.sub, ends, begins), map(_THIRD, shared))):
        return None
    else:
        ordered = sorted(zip(begins, ends, strict=True))
        if not _contiguous(list(map(_FIRST, ordered)), list(map(_SECOND, ordered)), buffer_size):
            return None
    rows = zip(
        entries, map(_FIRST, shared), map(_SECOND, shared), begins, ends, map(_FOURTH, shared), strict=True
    )
    # TensorInfo from each (name, ..., layout) row in C (a partial of tuple.__new__ costs 15 % more).
    infos = list(map(tuple.__new__, repeat(TensorInfo), rows))
    return SafetensorsHeader(
        display, file_size, len(header_bytes), metadata, names=list(entries), infos=infos
    )


def _learn_layouts(entries: dict[str, Any], layouts: Layouts, display: str) -> bool:
    """Check each (dtype, shape) not yet in ``layouts`` by the exact rules, on one tensor that has
    it, and add it; False when that tensor breaks a rule (the exact path will name it)."""
    names, infos = list(entries), list(entries.values())
    for kind, index in dict(zip(map(_LAYOUT_FIELDS, infos), range(len(names)), strict=True)).items():
        if kind not in layouts:
            entry = infos[index]
            pairs = (
                ("dtype", entry.dtype),
                ("shape", list(entry.shape)),
                ("data_offsets", list(entry.data_offsets)),
            )
            try:
                info = _tensor_info(names[index], pairs, display, [])
            except HeaderError:
                return False
            layouts[kind] = (kind[0], kind[1], info.end - info.begin, info.layout)
    return True


def _split_metadata(header_bytes: bytes) -> tuple[dict[str, str] | None, bytes | bytearray]:
    """A header that opens with an object ``__metadata__`` of strings, as writers put it: that
    object, and the header with it blanked out (``{`` and spaces, then the tensors); (None, b"")
    when the header does not start so. The object is the text up to the first '}': if that
    decodes as an object of strings it is the whole value (had the '}' been inside one of its
    strings, that string would be unterminated there)."""
    start = _METADATA_START.match(header_bytes)
    close = header_bytes.find(b"}", start.end()) if start else -1
    comma = _COMMA.match(header_bytes, close + 1) if close >= 0 else None
    if start is None or comma is None:
        return None, b""
    try:
        metadata = _decode_metadata(memoryview(header_bytes)[start.end() : close + 1])
    except (msgspec.DecodeError, RecursionError):
        return None, b""
    body = bytearray(header_bytes)
    body[1 : comma.end()] = b" " * (comma.end() - 1)
    return metadata, body


def _contiguous(begins: list[int], ends: list[int], buffer_size: int) -> bool:
    """Whether the spans, in this order, start at 0, follow each other and fill the buffer."""
    return (
        (begins[:1] == [0] or not begins) and begins[1:] == ends[:-1] and (ends[-1:] or [0]) == [buffer_size]
    )


def parse_header_exact(
    header_bytes: bytes, file_size: int, display: str, layouts: Layouts | None = None
) -> SafetensorsHeader:
    """``parse_header`` by the rules as written, a check at a time, with the messages."""
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
    negative_zero = b"-0" in header_bytes and _NEGATIVE_ZERO.search(header_bytes) is not None
    floats = _FloatSeen()
    try:
        # object_pairs_hook=tuple keeps duplicate keys visible at C speed, and tells an empty
        # object (()) from an empty array ([]); objects are turned into dicts below. The integer
        # hook, needed only when the number -0 occurs, is skipped otherwise: it costs a call
        # per number, and "-0" in a name or a metadata date must not pay it. The float hook
        # runs only for float literals (rare in a header) and records that one occurred.
        pairs = json.loads(
            stripped,
            object_pairs_hook=tuple,
            parse_constant=_reject_constant,
            parse_int=_reference_int if negative_zero else None,
            parse_float=floats,
        )
    except _BadConstant as exc:
        raise _fail(display, "InvalidHeaderJson", f"non-standard literal {exc.literal}") from None
    except RecursionError:
        raise _fail(display, "NestingTooDeep", f"more than {MAX_DEPTH} nested arrays/objects") from None
    except ValueError as exc:
        raise _fail(display, "InvalidHeaderJson", str(exc)) from None
    if (b"\\ud" in header_bytes or b"\\uD" in header_bytes) and _has_lone_surrogate(pairs):
        raise _fail(display, "InvalidHeaderJson", "a \\u escape encodes a lone UTF-16 surrogate")
    raw = _as_object(pairs, display)

    metadata = raw.pop("__metadata__", None)
    if metadata is not None:
        if type(metadata) is not tuple:
            raise _fail(
                display, "InvalidMetadata", "__metadata__ must be an object mapping strings to strings"
            )
        metadata = _as_object(metadata, display)
        if not all(type(v) is str for v in metadata.values()):
            raise _fail(
                display, "InvalidMetadata", "__metadata__ must be an object mapping strings to strings"
            )

    # A known layout may be reused only when equal shapes have equal types: with no float,
    # true/false or -0.0 in the document, every number the parser made is an int (true == 1
    # and 1.0 == 1 would otherwise let [true, 4] pass as the validated [1, 4]).
    reuse = not (floats.seen or negative_zero or b"true" in header_bytes or b"false" in header_bytes)
    tensors = _tensor_infos(raw, display, warnings, ({} if layouts is None else layouts) if reuse else None)
    _check_layout(tensors, file_size - 8 - len(header_bytes), display)
    return SafetensorsHeader(
        display,
        file_size,
        len(header_bytes),
        metadata,
        warnings,
        names=list(tensors),
        infos=list(tensors.values()),
    )


def _tensor_infos(
    raw: dict[str, Any], display: str, warnings: list[str], layouts: Layouts | None
) -> dict[str, TensorInfo]:
    """Every tensor entry of ``raw``, validated. An entry in the usual field order whose dtype and
    shape equal a layout already validated (``layouts``, see ``Layouts``) needs
    only its offsets checked: a 671B export repeats a few dozen layouts ~200k times. Every other
    entry, and every entry when ``layouts`` is None, takes the full check in ``_tensor_info``."""
    if layouts is None:
        return {name: _tensor_info(name, entry, display, warnings) for name, entry in raw.items()}
    tensors: dict[str, TensorInfo] = {}
    for name, entry in raw.items():
        if type(entry) is tuple and len(entry) == 3:
            (k0, dtype), (k1, shape), (k2, offsets) = entry
            if k0 == "dtype" and k1 == "shape" and k2 == "data_offsets" and type(shape) is list:
                try:
                    known = layouts.get((dtype, tuple(shape)))
                except TypeError:  # an unhashable dtype or dimension: the full check names it
                    known = None
                if known is not None and type(offsets) is list and len(offsets) == 2:
                    begin, end = offsets
                    if type(begin) is int and type(end) is int and begin >= 0 and end - begin == known[2]:
                        tensors[name] = TensorInfo(name, dtype, known[1], begin, end, known[3])
                        continue
        info = tensors[name] = _tensor_info(name, entry, display, warnings)
        layouts[info.dtype, info.shape] = (info.dtype, info.shape, info.end - info.begin, info.layout)
    return tensors


def _tensor_info(name: str, entry: Any, display: str, warnings: list[str]) -> TensorInfo:
    # The common case (exactly the three fields, well typed) is checked with plain type tests:
    # this runs once per tensor, ~200k times for a 671B export.
    if type(entry) is not tuple:
        if type(entry) is list:
            raise _fail(display, "TensorInfoAsArray", f"tensor {name!r}: entry is an array, not an object")
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
        if type(dtype) is tuple:
            raise _fail(display, "DtypeAsMap", f"tensor {name!r}: dtype is an object, not a string")
        raise _fail(display, "UnknownDtype", f"tensor {name!r}: dtype {dtype!r} is not a safetensors dtype")
    if type(shape) is not list:
        raise _fail(
            display, "InvalidShape", f"tensor {name!r}: shape must be an array of integers in [0, 2**64)"
        )
    numel = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise _fail(
                display, "InvalidShape", f"tensor {name!r}: shape must be an array of integers in [0, 2**64)"
            )
        numel *= dim
    if numel == 0 or numel >= _LIMIT_U64:  # rare: only then can a dimension or a prefix overflow
        _check_dimensions(name, shape, display)
    if not (
        type(offsets) is list
        and len(offsets) == 2
        and type(offsets[0]) is int
        and type(offsets[1]) is int
        and offsets[0] >= 0
        and offsets[1] >= 0
    ):  # offsets of 2**64 or more are caught by the layout check: no file is that large
        raise _fail(
            display, "InvalidOffset", f"tensor {name!r}: data_offsets must be two non-negative integers"
        )
    begin, end = offsets
    if end < begin:
        raise _fail(display, "InvalidOffset", f"tensor {name!r}: data_offsets end {end} < begin {begin}")
    bits = numel * dtype_bits
    if bits >= _LIMIT_U64:
        raise _fail(
            display, "ValidationOverflow", f"tensor {name!r}: size of {dtype} {shape} overflows 64 bits"
        )
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
    return tensor_info(name, dtype, tuple(shape), begin, end)


def _check_dimensions(name: str, shape: list[int], display: str) -> None:
    """Each dimension is below 2**64 and so is every running product, as the reference reader's
    checked multiplication requires: a zero dimension after an overflowing prefix does not rescue
    the shape."""
    numel = 1
    for dim in shape:
        if dim >= _LIMIT_U64:
            raise _fail(
                display, "InvalidShape", f"tensor {name!r}: shape must be an array of integers in [0, 2**64)"
            )
        numel *= dim
        if numel >= _LIMIT_U64:
            raise _fail(display, "ValidationOverflow", f"tensor {name!r}: shape {shape} overflows 64 bits")


def _unusual_entry(
    name: str, pairs: tuple[tuple[str, Any], ...], display: str, warnings: list[str]
) -> tuple[Any, Any, Any]:
    """Fields of an entry written in another order, with extra fields, or with some missing."""
    entry = _as_object(pairs, display)
    missing = _TENSOR_FIELDS - entry.keys()
    if missing:
        raise _fail(display, "InvalidTensorInfo", f"tensor {name!r}: missing {', '.join(sorted(missing))}")
    extra = sorted(entry.keys() - _TENSOR_FIELDS)
    if extra:
        for key in extra:
            _check_ignored(entry[key], name, key, display)
        warnings.append(f"tensor {name!r}: unknown fields {', '.join(extra)} ignored")
    return entry["dtype"], entry["shape"], entry["data_offsets"]


def _check_ignored(value: Any, name: str, key: str, display: str) -> None:
    """What the reference reader's JSON parser still enforces in a field it then ignores: nesting
    depth and number range (the value sits at depth 3: header object, tensor entry, value)."""
    stack = [(value, 3)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is tuple or kind is list:
            if depth > MAX_DEPTH:
                raise _fail(
                    display, "NestingTooDeep", f"tensor {name!r}: field {key!r} nests deeper than {MAX_DEPTH}"
                )
            stack.extend((v[1] if kind is tuple else v, depth + 1) for v in item)
        elif (kind is int or kind is float) and not -_NUMBER_LIMIT <= item <= _NUMBER_LIMIT:
            raise _fail(
                display, "NumberOutOfRange", f"tensor {name!r}: field {key!r} holds a number beyond +-1e308"
            )


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string (key or value) in the parsed JSON holds an unpaired UTF-16 surrogate
    (the JSON parser pairs valid escapes into one code point, so any surrogate left is lone)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if _SURROGATE.search(item):
                return True
        elif kind is list:
            stack.extend(item)
        elif kind is tuple:  # an object: (key, value) pairs
            for key, member in item:
                stack.append(key)
                stack.append(member)
    return False


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


def _as_object(pairs: Any, display: str) -> dict[str, Any]:
    """A JSON object (parsed as a tuple of (key, value) pairs) as a dict; a repeated key fails."""
    if type(pairs) is not tuple:
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


def _reference_int(literal: str) -> int | float:
    # The reference reader's JSON parser reads "-0" as the float -0.0, so it is no integer there.
    return -0.0 if literal == "-0" else int(literal)


class _FloatSeen:
    """``parse_float`` hook: the float, remembering that the document held one."""

    seen = False

    def __call__(self, literal: str) -> float:
        self.seen = True
        return float(literal)


class _BadConstant(Exception):
    def __init__(self, literal: str) -> None:
        self.literal = literal


def _reject_constant(literal: str) -> Any:
    raise _BadConstant(literal)
