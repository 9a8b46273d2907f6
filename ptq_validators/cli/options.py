"""Options several command modules share (the cluster ones): defined once, in a module light
enough that loading one command does not load another command's module."""

from __future__ import annotations

import typer

CLUSTERS_OPTION = typer.Option(
    None,
    "--clusters",
    help="clusters.yaml to use [$PTQV_CLUSTERS, ~/.config/modelopt/clusters.yaml, .agents/ or .claude/clusters.yaml "
    "up from the working directory].",
)
ACCEPT_NEW_OPTION = typer.Option(
    False,
    "--accept-new-host-key",
    help="Record the host key of a server not yet in ~/.ssh/known_hosts (OpenSSH's accept-new); "
    "a changed key is always refused.",
)
