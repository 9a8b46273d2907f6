"""The job kinds ``ptqv render`` writes and how ``ptqv launch`` runs each (defined once here).

In: a kind name. Out: its launch mode (``slurm`` submits sbatch files, ``docker`` runs the
container, ``bare`` runs the kind's entry script as a detached process) and, for bare kinds,
that entry script's name. ``canary`` is no quantizer: one sbatch job that runs ``ptqv canary``
on an export where it lives (a GPU node).
"""

from __future__ import annotations

KINDS = ("slurm", "launcher", "docker", "direct", "nemotron", "llmcompressor", "canary")
KINDS_HELP = ", ".join(KINDS)
ENTRY_SCRIPT = {
    "direct": "job.sh",
    "nemotron": "job.sh",
    "llmcompressor": "job.sh",
    "launcher": "launcher.sh",
}


def launch_mode(kind: str) -> str:
    """``slurm``, ``docker`` or ``bare``."""
    if kind in ("slurm", "canary"):
        return "slurm"
    return "docker" if kind == "docker" else "bare"
