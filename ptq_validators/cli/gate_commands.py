"""`ptqv gate`, `ptqv scan` and `ptqv demo`: the post-PTQ gate and the checkpoint inventory."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the gate commands to ``app``."""
