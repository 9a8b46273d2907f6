#!/usr/bin/env bash
# Rendered by ptqv (nemotron): exports the full run's Megatron checkpoint to a unified HF
# checkpoint with Megatron-Bridge. Run it inside the NeMo container after job.sh succeeded.
set -euo pipefail

torchrun --nproc_per_node=1 /opt/Megatron-Bridge/examples/quantization/export.py \
    --hf-model-id Qwen/Qwen3-8B \
    --megatron-load-path @WS@/output/megatron \
    --export-dir @WS@/output/checkpoint \
    --pp 1 \
    --tp 1
