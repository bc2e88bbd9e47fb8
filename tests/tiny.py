"""A tiny causal LM and a character-level tokenizer with a chat template, built in code."""

from __future__ import annotations

import string
from pathlib import Path

import torch

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'][0] }}>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<a>{% endif %}"
)


def build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<s>", "<u>", "<a>"]
    chars = list(string.ascii_letters + string.digits + string.punctuation + " \n")
    vocab = {token: i for i, token in enumerate(specials + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("<[a-z/]>|."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", bos_token="<s>",
        additional_special_tokens=["<u>", "<a>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Save a 2-layer Llama with random weights and the tokenizer above into ``directory``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def digit_share(completions, prompts, **columns) -> list[float]:
    """A reward a random tiny model can earn: the share of digits in its completion."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def tiny_run_overrides(model_dir: Path, run_dir: Path) -> list[str]:
    """``--set`` overrides for a fast run of the tiny model at ``model_dir`` on an easy reasoning-gym
    task, into ``run_dir``."""
    return [
        f"model.name={model_dir}",
        "model.lora.r=4",
        "model.lora.alpha=8",
        "task.train_size=40",
        "task.eval_size=6",
        "rollout.prompts_per_step=2",
        "rollout.group_size=3",
        "rollout.max_new_tokens=8",
        "eval.samples=2",
        "train.micro_batch_tokens=64",
        f"output_dir={run_dir}",
        # the task's verifier plus a reward a random model can earn, so advantages are not all 0
        f"rewards=[{{name: task}}, {{name: '{Path(__file__)}:digit_share'}}]",
    ]
