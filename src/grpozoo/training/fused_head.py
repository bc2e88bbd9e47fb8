"""Token log-probs and entropies straight from the last hidden states, in chunks of tokens.

The output layer, the log-softmax, the gather of the sampled token and the entropy run as one
autograd function over ``chunk_tokens`` completion tokens at a time, so float32 logits are held
for one chunk, never for the whole batch; padding positions are never sent through the output
layer. Each chunk takes one ``exp`` over its ``[n, V]`` logits in the forward. With a single chunk
its probabilities (and log-probabilities, when the entropy takes a gradient) are kept for the
backward, which then needs no ``exp``; with several, each chunk's logits are recomputed there (one
more matmul instead of holding ``[N, V]`` floats).

Gradients, for logits ``z`` (tempered), ``p = softmax(z)``, entropy ``H = -Σ p log p``:
``d log p_y / dz = onehot(y) - p`` and ``dH / dz = -p (log p + H)``.
"""

from __future__ import annotations

import torch

DEFAULT_CHUNK_TOKENS = 1024


def _tempered_logits(hidden, weight, inv_temp):
    z = (hidden @ weight.T).float()
    return z.mul_(inv_temp) if inv_temp != 1.0 else z


def _chunk_stats(hidden, weight, targets, inv_temp, with_entropy):
    """``log p`` and ``p`` ``[n, V]``, ``lse [n]`` (of the tempered logits), the targets' log-probs and
    the entropies of one chunk, with a single ``exp`` over ``[n, V]``."""
    log_p = _tempered_logits(hidden, weight, inv_temp)
    top = log_p.amax(dim=-1, keepdim=True)
    p = torch.exp(log_p.sub_(top))
    total = p.sum(dim=-1, keepdim=True)
    p.div_(total)
    lse_shifted = total.log_()
    log_p.sub_(lse_shifted)
    logp = log_p.gather(1, targets.unsqueeze(1)).squeeze(1)
    entropy = -torch.linalg.vecdot(p, log_p) if with_entropy else None
    return log_p, p, (top + lse_shifted).squeeze(1), logp, entropy


class _HeadLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, inv_temp, chunk_tokens, with_entropy, entropy_grad):
        n = hidden.shape[0]
        logp = hidden.new_empty(n, dtype=torch.float32)
        entropy = hidden.new_zeros(n, dtype=torch.float32)
        lse = hidden.new_empty(n, dtype=torch.float32)
        kept = (None, None)
        for start in range(0, n, chunk_tokens):
            end = min(start + chunk_tokens, n)
            log_p, p, lse[start:end], logp[start:end], ent = _chunk_stats(
                hidden[start:end], weight, targets[start:end], inv_temp, with_entropy
            )
            if ent is not None:
                entropy[start:end] = ent
            if n <= chunk_tokens:  # one chunk: keep p (and log p, for an entropy gradient) for the backward
                kept = (p, log_p if entropy_grad else None)
        ctx.save_for_backward(hidden, weight, targets, lse, entropy, *kept)
        ctx.inv_temp, ctx.chunk_tokens = inv_temp, chunk_tokens
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy):
        hidden, weight, targets, lse, entropy, kept_p, kept_log_p = ctx.saved_tensors
        want_hidden, want_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = None
        n = hidden.shape[0]
        for start in range(0, n, ctx.chunk_tokens):
            end = min(start + ctx.chunk_tokens, n)
            h = hidden[start:end]
            if kept_p is not None and (grad_entropy is None or kept_log_p is not None):
                p, log_p, fresh = kept_p, kept_log_p, False
            else:  # recompute this chunk's distribution
                log_p = _tempered_logits(h, weight, ctx.inv_temp).sub_(lse[start:end, None])
                p, fresh = torch.exp(log_p), True
            grad_z = _logits_grad(p, log_p, entropy[start:end, None], targets[start:end, None],
                                  None if grad_logp is None else grad_logp[start:end, None],
                                  None if grad_entropy is None else grad_entropy[start:end, None], fresh)
            if ctx.inv_temp != 1.0:
                grad_z.mul_(ctx.inv_temp)
            grad_z = grad_z.to(hidden.dtype)
            if grad_hidden is not None:
                grad_hidden[start:end] = grad_z @ weight
            if want_weight:
                part = (grad_z.T @ h).float()
                grad_weight = part if grad_weight is None else grad_weight.add_(part)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None, None, None


def _logits_grad(p, log_p, entropy, targets, grad_logp, grad_entropy, fresh):
    """``d(Σ g_logp·log p_y + Σ g_H·H) / dz [n, V]`` in as few passes over ``[n, V]`` as possible:
    ``p·(-g_logp - g_H·(log p + H))`` plus ``g_logp`` at the target. ``fresh``: ``p`` and ``log p``
    were computed for this call and may be overwritten."""
    if grad_entropy is None:
        grad_z = p.mul_(-grad_logp) if fresh else p * -grad_logp
    else:
        grad_z = (log_p.add_(entropy) if fresh else log_p + entropy).mul_(-grad_entropy)
        if grad_logp is not None:
            grad_z.sub_(grad_logp)
        grad_z.mul_(p)
    if grad_logp is not None:
        grad_z.scatter_add_(1, targets, grad_logp)
    return grad_z


def head_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    entropy_grad: bool = False,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs ``[N]`` of ``targets [N]`` under the logits ``hidden [N, H] @ weight [V, H].T /
    temperature`` (and entropies ``[N]``: detached, or differentiable with ``entropy_grad``).

    Under autocast (``train.compute_dtype=bfloat16``) the layer runs in float32 with autocast off,
    ``hidden`` (and a half-precision ``weight``) cast to float32, rather than stepping aside to the
    model's own head: autocast would run the forward's matmul in bfloat16 while the hand-written
    backward, which autocast does not reach, reads the float32 weight (mixed dtypes), and bfloat16
    logits (8 significant bits) would blur the log-softmax and its gradient. It runs on completion
    tokens only, so float32 costs little here, and the chunking's memory saving stays."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        with torch.autocast(device_type=device, enabled=False):
            return head_logprobs(hidden.float(), weight.float(), targets, temperature, with_entropy, entropy_grad,
                                 chunk_tokens)
    logp, entropy = _HeadLogprobs.apply(hidden, weight, targets, 1.0 / temperature, chunk_tokens, with_entropy,
                                        with_entropy and entropy_grad)
    if not with_entropy:
        return logp, None
    return logp, entropy if entropy_grad else entropy.detach()
