#!/usr/bin/env bash
# Rendered by ptqv (docker): runs job.sh in the container. The workspace, the output, the HF cache
# and the Model-Optimizer checkout are mounted at the same paths inside. Secrets pass by name (-e).
# `ptqv launch --local` runs the same command, with --gpus only where a GPU runtime exists.
set -euo pipefail

exec docker run --rm \
    --gpus=4 \
    --ipc=host \
    --ulimit memlock=-1 \
    --ulimit stack=67108864 \
    --network=host \
    -v @WS@:@WS@ \
    -v '/lustre/hf cache:/lustre/hf cache' \
    -v /opt/Model-Optimizer:/opt/Model-Optimizer \
    -v /lustre/data:/data:ro \
    -e HF_TOKEN \
    -w @WS@ \
    nvcr.io/nvidia/tensorrt-llm/release:1.2.0 bash @WS@/scripts/job.sh
