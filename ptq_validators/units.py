"""Human-readable sizes and counts that fit models from a few KiB to a few TiB.

``binary_size(689408)`` is ``673.2 KiB``; ``count(344704)`` is ``344.7 K``. Used where a report
shows one number to a person (``ptqv inspect``); JSON keeps the exact integers.
"""

from __future__ import annotations


def binary_size(size: int) -> str:
    """Bytes in the largest binary unit (B, KiB, MiB, GiB, TiB) that keeps the value ≥ 1."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def count(number: int) -> str:
    """A count in the largest decimal unit (K, M, B, T) that keeps the value ≥ 1."""
    value = float(number)
    for unit in ("", " K", " M", " B"):
        if abs(value) < 1000:
            return f"{number}" if not unit else f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f} T"
