#!/usr/bin/env bash
# Rendered by ptqv (launcher): runs launcher.yaml with the ModelOpt launcher.
set -euo pipefail
# local Docker mode (hf_local=...): models are read from <hf_local>/<org>/<name>

cd /opt/Model-Optimizer/tools/launcher
uv run launch.py \
    --yaml @WS@/scripts/launcher.yaml \
    'hf_local=/lustre/hf cache' \
    --yes
