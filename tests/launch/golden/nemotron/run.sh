#!/usr/bin/env bash
# Rendered by ptqv (nemotron): the inner runner. Usage: run.sh smoke|full
# Every value below was quoted by ptqv before templating; edit the spec and re-render instead.
set -euo pipefail

phase=${1:?usage: run.sh smoke|full}
case "$phase" in
  smoke) calib_size=4; export_path=@WS@/output/smoke ;;
  full) calib_size=512; export_path=@WS@/output/megatron ;;
  *) echo "run.sh: unknown phase '$phase' (expected smoke|full)" >&2; exit 2 ;;
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
cd /opt/Nemotron
uv run nemotron steps run optimize/modelopt/quantize \
    -c fp8 \
    args.hf_model_id=Qwen/Qwen3-8B \
    args.export_quant_cfg=fp8 \
    "args.calib_size=$calib_size" \
    "args.megatron_save_path=$export_path" \
    args.tp=8 \
    args.pp=1 \
    args.ep=1 \
    args.etp=1 \
    args.trust_remote_code=false \
    args.calib_dataset=cnn_dailymail \
    torchrun.nproc_per_node=8
