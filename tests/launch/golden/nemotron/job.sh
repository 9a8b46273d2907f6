#!/usr/bin/env bash
# Rendered by ptqv (nemotron): runs the phases in order, each only after the previous succeeded.
set -euo pipefail

bash @WS@/scripts/run.sh smoke
bash @WS@/scripts/run.sh full
