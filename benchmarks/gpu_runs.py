"""Three-step GRPO runs of randomly initialised models on the device at hand: step time, tokens/s,
peak device memory and the learner's model-FLOPs utilisation (MFU).

    python benchmarks/gpu_runs.py --tokenizer DIR [--models smollm2-135m,qwen2-1.5b] [--steps 3] [--device cuda]

``--tokenizer`` is a directory holding the embedded model's ``config.json`` and tokenizer files
(the model's weights need not travel: the models here start from random weights). The two model
shapes: the embedded SmolLM2-135M-Instruct's configuration, and a Qwen2-1.5B-shaped one (28
layers, hidden 1536, 12 query and 2 key/value heads, MLP 8960) over the same tokenizer's vocabulary.
Both train with LoRA (r=16, all linear layers) over bfloat16 weights on a GPU (float32 on a CPU),
8 prompts x 4 completions of exactly 64 new tokens of a small arithmetic task written here.

MFU = learner FLOPs / (learning seconds x the device's dense bfloat16 peak), with learner FLOPs =
4 x (non-embedding parameters) x (tokens through the learner): 2 for the forward, 2 for the
gradients with respect to the activations (LoRA computes no gradient for the frozen weights);
attention's own FLOPs are left out. The peak is known for H100 and H200 (989 TFLOP/s); elsewhere
MFU prints as n/a.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

PROMPTS, GROUP, NEW_TOKENS = 8, 4, 64
PEAK_BF16 = {"H100": 989e12, "H200": 989e12}


def model_config(name: str, tokenizer_dir: Path):
    from transformers import AutoConfig, Qwen2Config

    base = AutoConfig.from_pretrained(tokenizer_dir)
    if name == "smollm2-135m":
        return base
    if name == "qwen2-1.5b":
        return Qwen2Config(
            vocab_size=base.vocab_size, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
            num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
            bos_token_id=base.bos_token_id, eos_token_id=base.eos_token_id, pad_token_id=base.pad_token_id,
        )
    raise SystemExit(f"unknown model {name!r}: smollm2-135m or qwen2-1.5b")


def write_model(name: str, tokenizer_dir: Path, target: Path) -> int:
    """A randomly initialised checkpoint of ``name`` with the tokenizer; returns its non-embedding
    parameter count."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config(name, tokenizer_dir))
    model.save_pretrained(target)
    for file in tokenizer_dir.iterdir():
        if file.name.startswith(("tokenizer", "special_tokens", "chat_template", "generation_config")):
            shutil.copy(file, target / file.name)
    embedding = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embedding


def write_task(target: Path) -> Path:
    rows = [{"prompt": f"What is {a} + {b}? Answer with the number.", "answer": str(a + b)}
            for a in range(20) for b in range(5)]
    target.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return target


def run(name: str, tokenizer_dir: Path, steps: int, device: str) -> dict[str, float | str]:
    import torch

    from grpozoo.config import resolve_config
    from grpozoo.training import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        params = write_model(name, tokenizer_dir, Path(tmp) / "model")
        cfg = resolve_config(overrides=[
            f"model.name={Path(tmp) / 'model'}", f"model.dtype={'bfloat16' if device == 'cuda' else 'float32'}",
            f"task.name={write_task(Path(tmp) / 'sums.jsonl')}", "task.eval_size=4",
            f"rollout.prompts_per_step={PROMPTS}", f"rollout.group_size={GROUP}",
            f"rollout.max_new_tokens={NEW_TOKENS}", f"rollout.min_new_tokens={NEW_TOKENS}",
            f"train.device={device}", f"train.steps={steps + 1}", "eval.at_start=false", "eval.at_end=false",
            f"output_dir={Path(tmp) / 'run'}",
        ])
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer = Trainer(cfg)
        records = [trainer.train_step() for _ in range(steps + 1)][1:]  # the first is the warm-up
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        prompt_tokens = float(trainer.rollouts.generate(trainer.rollouts.selector.next(1), 0).prompt_mask.sum())
    learn_s = statistics.median(r["time/learning_s"] for r in records)
    learner_tokens = PROMPTS * GROUP * (prompt_tokens + NEW_TOKENS)
    chip = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak_flops = next((v for k, v in PEAK_BF16.items() if k in chip), None)
    mfu = 4 * params * learner_tokens / learn_s / peak_flops if peak_flops else None
    return {
        "model": name, "device": chip, "non-embedding params (M)": params / 1e6,
        "step s": statistics.median(r["time/step_s"] for r in records),
        "gen tok/s": statistics.median(r["tokens_per_s"] for r in records),
        "learn s": learn_s, "peak GiB": peak, "MFU": "n/a" if mfu is None else f"{mfu:.1%}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokenizer", type=Path, required=True, help="the embedded model's config and tokenizer files")
    p.add_argument("--models", default="smollm2-135m,qwen2-1.5b")
    p.add_argument("--steps", type=int, default=3, help="measured steps after 1 warm-up (default 3)")
    p.add_argument("--device", default="cuda")
    a = p.parse_args()
    import warnings

    warnings.filterwarnings("ignore", message=".*without finishing")  # fixed-length completions on purpose
    for name in a.models.split(","):
        row = run(name, a.tokenizer, a.steps, a.device)
        print(" | ".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
