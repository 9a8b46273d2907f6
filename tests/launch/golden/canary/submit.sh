#!/usr/bin/env bash
# Rendered by ptqv (slurm): submits the jobs; each waits for the previous one to succeed
# (--dependency=afterok), so a failed smoke test never starts the full calibration.
set -euo pipefail

cd @WS@
mkdir -p logs
dependency=()
serve_id=$(sbatch --parsable "${dependency[@]}" scripts/serve.sbatch)
serve_id=${serve_id%%;*}
echo "serve job: $serve_id"
