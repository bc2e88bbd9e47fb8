"""Soft-thinking steps with Gumbel noise, as SofT-GRPO samples and scores them (Zheng and Lee 2025,
"SofT-GRPO: Surpassing Discrete-Token LLM Reinforcement Learning via Gumbel-Reparameterized
Soft-Thinking Policy Optimization", arXiv:2511.06411).

During the thinking part, instead of one sampled token the model reads a mixture of token
embeddings ``Σ_k y_k·e_k`` with ``y = softmax((ℓ + g)/τ)`` over the ``top_k`` largest logits ``ℓ``
and Gumbel noise ``g``; the answer is then sampled as discrete tokens. The policy's "action" at a
soft step is the noise: the same mixture under other logits ``ℓ'`` needs the noise
``g' = g + ℓ − ℓ'`` (on the top-k support), so the log-likelihood ratio of a soft step is the Gumbel
log-density of ``g'`` minus that of ``g`` (:func:`soft_step_log_ratio`), which a GRPO-style clipped
ratio then uses.

The pure functions live here. They are wired with ``rollout.soft_thinking.tokens > 0`` (the
``soft_grpo`` recipe): :class:`grpozoo.generation.soft_engine.SoftThinkingGenerator` samples the
first ``tokens`` completion positions of every row as soft steps and records, per soft step, the
top-k ids, mixture weights, noise and log-probs (``Rollouts.soft_*``);
:func:`grpozoo.training.soft_forward.soft_completion_logprobs` feeds the recorded mixtures back in
the learning forward and scores each soft step with :func:`soft_step_logprob`, whose difference
under the new and old log-probs is :func:`soft_step_log_ratio`.
Shapes: ``logits [..., V]``, ``embeddings [V, D]``; every function works on any leading shape.
"""

from __future__ import annotations

import torch


def gumbel_noise(shape: torch.Size | tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise ``−log(−log U)``, ``U`` uniform in (0, 1)."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    return -torch.log(-torch.log(u))


def top_k_support(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """``[..., V]`` bool: the ``top_k`` largest logits of each position (all of them when
    ``top_k`` is 0 or at least ``V``)."""
    vocab = logits.shape[-1]
    if top_k <= 0 or top_k >= vocab:
        return torch.ones_like(logits, dtype=torch.bool)
    index = logits.topk(top_k, dim=-1).indices
    return torch.zeros_like(logits, dtype=torch.bool).scatter(-1, index, True)


def soft_token_weights(
    logits: torch.Tensor, noise: torch.Tensor, tau: float = 0.1, top_k: int = 15
) -> torch.Tensor:
    """The mixture weights of a soft step ``[..., V]``: ``softmax((ℓ + g)/τ)`` over the ``top_k``
    largest logits, 0 elsewhere (non-negative, summing to 1). As ``τ → 0`` they become the one-hot of
    the Gumbel-max token ``argmax_{k ∈ top-k}(ℓ_k + g_k)`` (:func:`gumbel_max_token`).

    GUESS: ``tau = 0.1`` and ``top_k = 15`` (the paper tunes both)."""
    if tau <= 0:
        raise ValueError(f"soft thinking: tau must be > 0, got {tau}")
    support = top_k_support(logits, top_k)
    scores = ((logits + noise) / tau).masked_fill(~support, float("-inf"))
    return torch.softmax(scores, dim=-1)


def gumbel_max_token(logits: torch.Tensor, noise: torch.Tensor, top_k: int = 15) -> torch.Tensor:
    """``[...]`` the discrete token the same noise samples: ``argmax_{k ∈ top-k}(ℓ_k + g_k)``."""
    support = top_k_support(logits, top_k)
    return (logits + noise).masked_fill(~support, float("-inf")).argmax(dim=-1)


def soft_embedding(weights: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """``Σ_k y_k·e_k`` ``[..., D]``: the input embedding of a soft step, a convex combination of the
    rows of ``embeddings [V, D]`` on the weights' support."""
    return weights.to(embeddings.dtype) @ embeddings


def gumbel_log_density(noise: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log p(g) = −g − exp(−g)`` of the standard Gumbel distribution."""
    return -noise - torch.exp(-noise)


def soft_step_log_ratio(
    new_logits: torch.Tensor, old_logits: torch.Tensor, noise: torch.Tensor, top_k: int = 15
) -> torch.Tensor:
    """``[...]`` log π_new / π_old of a soft step sampled with ``noise`` under ``old_logits``: the
    noise that gives the same mixture under ``new_logits`` is ``g' = g + ℓ_old − ℓ_new``, and the
    ratio is ``Σ_{k ∈ top-k} log p(g'_k) − log p(g_k)`` over the old logits' top-k support. It is 0
    when the logits are equal, and differentiable in ``new_logits`` (the reparameterisation).

    GUESS: the support is the old logits' top-k (the tokens the mixture was built from)."""
    support = top_k_support(old_logits, top_k)
    shifted = noise + old_logits - new_logits
    terms = (gumbel_log_density(shifted) - gumbel_log_density(noise)) * support.to(noise.dtype)
    return terms.sum(dim=-1)


def soft_step_logprob(new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``[...]`` the log-density of a soft step under the policy with ``new_logprobs [..., k]``: the
    step is the perturbed vector ``ℓ_old + g`` on its ``k`` recorded tokens, and its density under
    ``ℓ_new`` is ``Σ_k log p(g_k + ℓ_old,k − ℓ_new,k)`` (Gumbel). Under the sampling policy
    (``new = old``) it is ``Σ_k log p(g_k)`` exactly; the difference of two of these is
    :func:`soft_step_log_ratio` on the same support. Differentiable in ``new_logprobs``."""
    return gumbel_log_density(noise + (old_logprobs - new_logprobs)).sum(dim=-1)


def mixture_embedding(weights: torch.Tensor, ids: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """``Σ_k w_k·e_{ids_k}`` ``[..., D]`` from the weights ``[..., k]`` on the token ids ``[..., k]``
    and ``embeddings [V, D]``: :func:`soft_embedding` with the weights kept on their support only,
    the one computation the sampler and the learner both use."""
    rows = embeddings[ids]  # [..., k, D]
    return (weights.to(rows.dtype).unsqueeze(-2) @ rows).squeeze(-2)
