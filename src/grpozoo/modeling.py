"""What the generator and the learner need to know about a Hugging Face causal LM's structure:
the keyword of its KV cache, whether its output layer is a plain matmul (so that it can be
applied outside the model: to completion tokens only, in chunks), and
how to run its LoRA adapters folded into their base weights for generation."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import contextmanager
from functools import cache
from typing import Any

import torch


@cache
def _cache_keyword(forward: Callable[..., Any]) -> str:
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def cache_keyword(model) -> str:
    """The model's keyword for a KV cache: ``cache`` since transformers 5, ``past_key_values`` before
    (outputs answer to ``past_key_values`` in both)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _cache_keyword(type(base).forward)


def head_is_plain(model) -> bool:
    """True when the model's logits are just ``hidden @ W.T`` (no bias, soft-capping or scaling),
    so that applying the output layer by hand computes exactly what the model's forward would."""
    head = model.get_output_embeddings()
    config = model.config
    return (
        type(head) is torch.nn.Linear
        and head.bias is None
        and getattr(config, "final_logit_softcapping", None) is None
        and getattr(config, "logit_scale", 1.0) in (None, 1.0)
        and getattr(config, "logits_scaling", 1.0) in (None, 1.0)
    )


def is_lora_model(model) -> bool:
    """Whether ``model`` is a peft model whose trainable weights are LoRA adapters."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def _fold_buffer(layer, weight: torch.Tensor) -> torch.Tensor:
    """The layer's own buffer for its folded weight, allocated once and reused at every generation
    (allocating and zero-filling a weight-sized tensor per layer per step costs more than filling it)."""
    buffer = layer.__dict__.get("_grpozoo_folded")
    if buffer is None or buffer.shape != weight.shape or buffer.dtype != weight.dtype or buffer.device != weight.device:
        buffer = torch.empty_like(weight, requires_grad=False)
        layer.__dict__["_grpozoo_folded"] = buffer  # a plain attribute: not a parameter, buffer or state
    return buffer


@contextmanager
def adapters_folded(model):
    """Within the block, each active LoRA adapter of ``model`` runs folded into a copy of its base
    weight, ``W + scale·B·A``: one matmul a layer instead of three, for generation. The base weights
    are swapped back afterwards, never recomputed by subtraction, so they stay bit for bit what they
    were. The copies live in one buffer per layer, kept between calls (one more set of the adapted
    layers' weights in memory). A model without (active, unmerged) LoRA layers is left as it is."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        yield model
        return
    folded = []
    with torch.no_grad():
        for layer in model.modules():
            if not isinstance(layer, LoraLayer) or layer.merged or layer.disable_adapters or layer.lora_variant:
                continue
            adapters = [a for a in layer.active_adapters if a in layer.lora_A]
            base = layer.get_base_layer()
            if not adapters or not isinstance(base, torch.nn.Linear):
                continue
            weight = base.weight
            merged = _fold_buffer(layer, weight)
            merged.copy_(weight)
            for adapter in adapters:
                a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
                if getattr(layer, "fan_in_fan_out", False) or a.dtype != merged.dtype:
                    merged += layer.get_delta_weight(adapter).to(merged.dtype)
                else:  # W + scale·B·A in one pass, no [out, in] temporary
                    merged.addmm_(b, a, alpha=layer.scaling[adapter])
            base.weight = torch.nn.Parameter(merged, requires_grad=False)
            layer.merged_adapters.extend(adapters)  # peft's forward then runs the base layer alone
            folded.append((layer, base, weight, adapters))
    try:
        yield model
    finally:
        for layer, base, weight, adapters in folded:
            base.weight = weight
            for adapter in adapters:
                layer.merged_adapters.remove(adapter)
