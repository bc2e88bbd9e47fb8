#!/usr/bin/env bash
# The GPU check, one command on a lent GPU machine (under 8 minutes): install grpozoo without its
# dependencies (the machine's own torch stays), the wheels benchmarks/gpu_wheels.sh fetched into
# .whl/, then run the GPU-marked tests and three-step runs of randomly initialised models (the
# embedded model's shape and a 1.5B Qwen2 shape) in bfloat16, printing step time, tokens/s, peak
# GPU memory and MFU. Everything printed is also written to $OUT/gpu_check.log when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG="${OUT:-/tmp}/gpu_check.log"
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD/src"
python3 -c "import torch, transformers, peft, grpozoo; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
python3 -m pytest -q -p no:cacheprovider tests/gpu -rs
python3 benchmarks/gpu_runs.py --tokenizer .gpu/smollm2-135m --device cuda --steps 3
