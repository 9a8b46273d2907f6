#!/usr/bin/env bash
# Rendered by ptqv (docker): the inner runner. Usage: run.sh smoke|full
# Every value below was quoted by ptqv before templating; edit the spec and re-render instead.
set -euo pipefail

phase=${1:?usage: run.sh smoke|full}
case "$phase" in
  smoke) calib_size=4; export_path=@WS@/output/smoke ;;
  full) calib_size=512; export_path=@WS@/output/checkpoint ;;
  *) echo "run.sh: unknown phase '$phase' (expected smoke|full)" >&2; exit 2 ;;
esac
export PTQV_PHASE="$phase" PTQV_CALIB_SIZE="$calib_size" PTQV_EXPORT_PATH="$export_path"

# One process spreads the model over the GPUs (device_map=auto). Rank variables from srun would
# make PyTorch start a process group and wrap tensors as DTensors, which breaks the export.
unset SLURM_PROCID SLURM_LOCALID SLURM_NTASKS WORLD_SIZE LOCAL_RANK RANK

export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
export HF_HOME='/lustre/hf cache'
if [ -z "${HF_TOKEN:-}" ]; then
  echo "run.sh: HF_TOKEN is not set; it is passed through by name from the submitting environment" >&2
fi

# NGC images set PIP_CONSTRAINT, which makes extra installs fail with ResolutionImpossible
unset PIP_CONSTRAINT
python -m pip install 'transformers>=4.57,<4.58'

mkdir -p "$(dirname "$export_path")"
cd /opt/Model-Optimizer/examples/hf_ptq
python hf_ptq.py \
    --pyt_ckpt_path Qwen/Qwen3-8B \
    --qformat nvfp4_mlp_only \
    --kv_cache_qformat fp8_cast \
    --calib_size "$calib_size" \
    --dataset cnn_dailymail \
    --export_path "$export_path"
