"""The ``--help`` epilogs: a command's examples and the exit-code table, kept unwrapped.

Click rewraps every help paragraph to the terminal width, which splits a long example command
in the middle; a paragraph that starts with a ``\\b`` line is printed as written.
"""

from __future__ import annotations

from ptq_validators.errors import EXIT_CODES


def exit_code_lines() -> list[str]:
    """The exit-code table, one ``code  meaning`` line each."""
    return [f"{code:<4}{meaning}" for code, meaning in EXIT_CODES]


def epilog(*examples: str, note: str | None = None) -> str:
    """The epilog of one command: its examples (one command line each, ``# comment`` allowed),
    an optional note, then the exit-code table."""
    paragraphs = []
    if examples:
        title = "Example:" if len(examples) == 1 else "Examples:"
        paragraphs.append("\b\n" + "\n".join([title, *(f"  {line}" for line in examples)]))
    if note:
        paragraphs.append(note)
    paragraphs.append("\b\n" + "\n".join(["Exit codes:", *(f"  {line}" for line in exit_code_lines())]))
    return "\n\n".join(paragraphs)
