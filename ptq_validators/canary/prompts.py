"""The canary's fixed, versioned prompt set.

Changing a prompt changes every measured number, so the set carries a version that the canary
record stores; bump it with any edit. The general prompts are plain text (no chat template), so any
completions endpoint scores the same tokens. The knowledge prompts are what a real model must answer;
tiny random test models cannot, so they run only with ``--knowledge``.
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_SET_VERSION = "ptqv-canary-prompts/1"


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    #: For knowledge prompts: a word the completion must contain (case-insensitive).
    expect: str | None = None


PROMPTS = (
    Prompt("story", "Once upon a time, in a small village by the sea, there lived"),
    Prompt("instructions", "To make a cup of tea, first boil the water, then"),
    Prompt("list", "The days of the week are Monday, Tuesday, Wednesday,"),
    Prompt("code", "def fibonacci(n):\n    if n < 2:\n        return n\n    return"),
)

KNOWLEDGE = (
    Prompt("capital", "Question: What is the capital of France?\nAnswer:", expect="Paris"),
    Prompt("arithmetic", "Question: What is 17 × 23?\nAnswer:", expect="391"),
)

#: Tokens generated per prompt (greedy); the knowledge answers fit in this many.
MAX_TOKENS = 8


def prompt_set(knowledge: bool) -> tuple[Prompt, ...]:
    return PROMPTS + KNOWLEDGE if knowledge else PROMPTS
