#!/usr/bin/env bash
# Rendered by ptqv (canary): the inner runner. Usage: run.sh serve
# Every value below was quoted by ptqv before templating; edit the spec and re-render instead.
set -euo pipefail

phase=${1:?usage: run.sh serve}
case "$phase" in
  serve) calib_size=0; export_path=@WS@/output/canary.json ;;
  *) echo "run.sh: unknown phase '$phase' (expected serve)" >&2; exit 2 ;;
esac
export PTQV_PHASE="$phase" PTQV_CALIB_SIZE="$calib_size" PTQV_EXPORT_PATH="$export_path"

export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
export HF_HOME='/lustre/hf cache'
if [ -z "${HF_TOKEN:-}" ]; then
  echo "run.sh: HF_TOKEN is not set; it is passed through by name from the submitting environment" >&2
fi

# NGC images set PIP_CONSTRAINT, which makes extra installs fail with ResolutionImpossible
unset PIP_CONSTRAINT
python -m pip install 'transformers>=4.57,<4.58'

mkdir -p "$(dirname "$export_path")"
cd @WS@
ptqv canary '/lustre/exports/Qwen3-8B nvfp4' \
    --serve vllm \
    --engine-python /opt/vllm/bin/python \
    --log-dir @WS@/logs \
    --source /lustre/models/Qwen3-8B \
    --out "$export_path"
