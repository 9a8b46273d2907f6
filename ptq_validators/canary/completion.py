"""What one engine answered for one prompt, in the form every canary check reads.

``prompt_logprobs[i]`` is the log-probability the engine gave prompt token ``i`` (teacher-forced, so
two engines with the same tokenizer score the same tokens; None for the first token, which has no
context), ``prompt_top1[i]`` the engine's most likely token at that position. ``error`` is set when
the request itself failed (HTTP error, invalid JSON); then the other fields may be empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Completion:
    prompt_id: str
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    prompt_token_ids: list[int] = field(default_factory=list)
    prompt_logprobs: list[float | None] = field(default_factory=list)
    prompt_top1: list[int | None] = field(default_factory=list)
    error: str | None = None
    #: In-process engines only: per-position log-softmax rows (for KL); never written to JSON.
    distributions: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "text": self.text,
            "token_ids": self.token_ids,
            "logprobs": [_finite_or_text(v) for v in self.logprobs],
            "prompt_token_ids": self.prompt_token_ids,
            "error": self.error,
        }


def _finite_or_text(value: float | None) -> float | str | None:
    """JSON has no NaN/Inf: write them as strings so a broken run stays a valid record."""
    if value is None or (value == value and abs(value) != float("inf")):
        return value
    return str(value)
