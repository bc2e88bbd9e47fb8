"""What the generator and the learner need to know about a Hugging Face causal LM's structure:
the keyword of its KV cache, and whether its output layer is a plain matmul (so that it can be
applied outside the model: to completion tokens only, in chunks, or with a faster layout)."""

from __future__ import annotations

import inspect
from functools import cache

import torch


@cache
def _cache_keyword(forward_class: type) -> str:
    return "cache" if "cache" in inspect.signature(forward_class.forward).parameters else "past_key_values"


def cache_keyword(model) -> str:
    """The model's keyword for a KV cache: ``cache`` since transformers 5, ``past_key_values`` before
    (outputs answer to ``past_key_values`` in both)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _cache_keyword(type(base))


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
