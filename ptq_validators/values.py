"""Decode tensor bytes into Python floats for the dtypes scales are stored in, without numpy
or torch. Used for the small scale tensors the gate reads by default and for ``--deep``."""

from __future__ import annotations

import math
import struct
import sys
from array import array


# Every F8_E4M3 (e4m3fn) byte as a float: 1 sign, 4 exponent (bias 7), 3 mantissa bits;
# 0x7F and 0xFF are NaN, there is no infinity.
def _e4m3(byte: int) -> float:
    sign = -1.0 if byte & 0x80 else 1.0
    exponent, mantissa = (byte >> 3) & 0xF, byte & 0x7
    if exponent == 0xF and mantissa == 0x7:
        return math.nan
    if exponent == 0:
        return sign * mantissa / 8 * 2.0**-6
    return sign * (1 + mantissa / 8) * 2.0 ** (exponent - 7)


def _e5m2(byte: int) -> float:
    return struct.unpack("<e", bytes([0, byte]))[0]


E4M3 = tuple(_e4m3(b) for b in range(256))
E5M2 = tuple(_e5m2(b) for b in range(256))
E4M3_NAN_BYTES = (0x7F, 0xFF)
DECODABLE = frozenset({"F32", "F64", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0"})


_F32_SCALAR = struct.Struct("<f")


def decode(dtype: str, data: bytes) -> list[float]:
    """The values of ``data`` stored as ``dtype`` (one of ``DECODABLE``)."""
    if dtype == "F32" and len(data) == 4:  # the common case: one per-tensor scale
        return [_F32_SCALAR.unpack(data)[0]]
    if dtype == "F32":
        return list(struct.unpack(f"<{len(data) // 4}f", data))
    if dtype == "F64":
        return list(struct.unpack(f"<{len(data) // 8}d", data))
    if dtype == "F16":
        return list(struct.unpack(f"<{len(data) // 2}e", data))
    if dtype == "BF16":
        halves = struct.unpack(f"<{len(data) // 2}H", data)
        return list(
            struct.unpack(f"<{len(halves)}f", struct.pack(f"<{len(halves)}I", *(h << 16 for h in halves)))
        )
    if dtype == "F8_E4M3":
        return [E4M3[b] for b in data]
    if dtype == "F8_E5M2":
        return [E5M2[b] for b in data]
    if dtype == "F8_E8M0":
        return [math.nan if b == 0xFF else 2.0 ** (b - 127) for b in data]
    raise ValueError(f"cannot decode {dtype}")


def non_finite_count(dtype: str, data: bytes) -> int:
    """How many values of ``data`` are NaN or infinite, at C speed where the dtype allows."""
    if dtype == "F8_E4M3":
        return data.count(b"\x7f") + data.count(b"\xff")
    if dtype == "F8_E8M0":
        return data.count(b"\xff")
    if dtype in ("BF16", "F16"):
        mask = 0x7F80 if dtype == "BF16" else 0x7C00
        return sum(1 for h in _words("H", data) if h & mask == mask)
    if dtype == "F32":
        return sum(1 for w in _words("I", data) if w & 0x7F800000 == 0x7F800000)
    return sum(1 for v in decode(dtype, data) if not math.isfinite(v))


def _words(code: str, data: bytes) -> array:
    """``data`` as little-endian unsigned words (safetensors is little-endian)."""
    words = array(code, data[: len(data) - len(data) % array(code).itemsize])
    if sys.byteorder == "big":
        words.byteswap()
    return words
