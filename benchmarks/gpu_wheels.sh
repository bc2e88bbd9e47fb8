#!/usr/bin/env bash
# Fetch, into .whl/, the pure-Python packages grpozoo needs that the lent GPU machines lack (Python
# 3.12 there; its torch, transformers, peft, accelerate, numpy, pandas, pyarrow, sympy, rich and
# matplotlib are used as they are), and copy the embedded model's config and tokenizer into .gpu/
# (its weights stay here: gpu_runs.py starts from random weights). Both folders are ignored by git
# and carried to the device: run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".gpu"]).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info && touch .git/info/exclude
grep -qx "/.whl/" .git/info/exclude || echo "/.whl/" >> .git/info/exclude
grep -qx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
rm -rf .whl .gpu && mkdir -p .whl .gpu/smollm2-135m
PACKAGES=(
    pydantic pydantic-core annotated-types typing-inspection
    datasets dill multiprocess
    math-verify latex2sympy2_extended antlr4-python3-runtime==4.13.2
)  # reasoning-gym is not needed there: the GPU runs train on a task file written by gpu_runs.py
for package in "${PACKAGES[@]}"; do
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl "$package" 2>&1 | { grep -v "is ignored" || true; }
done
.venv/bin/python -c "from grpozoo.training.model import resolve_model; print(resolve_model('smollm2-135m'))" \
    | xargs -I{} sh -c 'cp {}/config.json {}/tokenizer* {}/generation_config.json .gpu/smollm2-135m/'
du -sh .whl .gpu
