"""Counted nouns for report text: ``plural(1, "problem")`` → ``1 problem``, ``plural(2, "layer")``
→ ``2 layers``. Nouns whose plural is not ``+s`` pass it explicitly."""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` followed by ``noun`` in the right number."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {plural_form or noun + 's'}"
