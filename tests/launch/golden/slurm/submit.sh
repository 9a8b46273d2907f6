#!/usr/bin/env bash
# Rendered by ptqv (slurm): submits the jobs; each waits for the previous one to succeed
# (--dependency=afterok), so a failed smoke test never starts the full calibration.
set -euo pipefail

cd @WS@
mkdir -p logs
dependency=()
smoke_id=$(sbatch --parsable "${dependency[@]}" scripts/smoke.sbatch)
smoke_id=${smoke_id%%;*}
echo "smoke job: $smoke_id"
dependency=(--dependency="afterok:$smoke_id")
full_id=$(sbatch --parsable "${dependency[@]}" scripts/full.sbatch)
full_id=${full_id%%;*}
echo "full job: $full_id"
