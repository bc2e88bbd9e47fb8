"""The learner's forward: log-probs (and entropies) of completion tokens only, in micro-batches."""

from __future__ import annotations

from typing import Any

import torch

from grpozoo.modeling import head_is_plain
from grpozoo.rollouts import Rollouts
from grpozoo.training.distributed import is_sharded
from grpozoo.training.fused_head import head_logprobs
from grpozoo.training.prefix_attention import pack_groups, prefix_attention


def trim_padding(batch: Rollouts) -> Rollouts:
    """Drop prompt columns that are padding in every row (left) and completion columns past the
    longest completion (right), so a micro-batch pays only for its own longest row."""
    prompt_keep = batch.prompt_mask.any(dim=0).nonzero()
    start = int(prompt_keep[0]) if len(prompt_keep) else batch.prompt_mask.shape[1]
    end = max(int(batch.completion_mask.sum(dim=1).max()), 1)
    batch.prompt_ids, batch.prompt_mask = batch.prompt_ids[:, start:], batch.prompt_mask[:, start:]
    per_token = ("completion_ids", "completion_mask", "sampling_logprobs", "old_logprobs", "ref_logprobs",
                 "entropies", "token_weights", "tool_mask", "teacher_logprobs", "teacher_entropies",
                 "soft_mask", "soft_ids", "soft_weights", "soft_noise", "soft_logprobs")
    for name in per_token:
        value = getattr(batch, name)
        if value is not None:
            setattr(batch, name, value[:, :end])
    if batch.advantages is not None and batch.advantages.dim() == 2:
        batch.advantages = batch.advantages[:, :end]
    return batch


def rows_of(values: dict[str, torch.Tensor], rows: torch.Tensor, width: int) -> dict[str, torch.Tensor]:
    """Whole-batch values cut to one micro-batch: per-row ``[B]`` and per-token ``[B, T]`` tensors to
    its ``rows`` (per-token ones to its first ``width`` columns, as :func:`trim_padding` cuts the
    batch); scalars (0-dim) pass through."""
    cut = {}
    for name, value in values.items():
        if value.dim() == 0:
            cut[name] = value
        elif value.dim() == 1:
            cut[name] = value[rows]
        else:
            cut[name] = value[rows][:, :width]
    return cut


def micro_batches(
    batch: Rollouts, token_budget: int, whole_groups: bool = False
) -> list[tuple[torch.Tensor, Rollouts]]:
    """Split rows into micro-batches of at most ``token_budget`` padded tokens each (at least one
    unit); each comes with the indices of its rows in ``batch``.

    The units packed are rows, or whole groups when ``whole_groups`` (for losses that need every
    member of a group together). Units are sorted by length first, so similar lengths share a
    micro-batch and padding waste stays small. Aggregations normalise by whole-batch totals, so
    the split does not change the loss.
    """
    lengths = batch.prompt_mask.sum(dim=1) + batch.completion_mask.sum(dim=1)
    if whole_groups:
        units = [(batch.group_ids == g).nonzero().squeeze(1).tolist() for g in batch.group_ids.unique()]
    else:
        units = [[row] for row in range(batch.batch_size)]
    units.sort(key=lambda rows: max(int(lengths[r]) for r in rows))
    chunks: list[list[int]] = [[]]
    longest = 0
    for rows in units:
        candidate = max(longest, *(int(lengths[r]) for r in rows))
        if chunks[-1] and candidate * (len(chunks[-1]) + len(rows)) > token_budget:
            chunks.append([])
            candidate = max(int(lengths[r]) for r in rows)
        chunks[-1].extend(rows)
        longest = candidate
    return [(torch.tensor(rows), trim_padding(batch.select(torch.tensor(rows)))) for rows in chunks]


def completion_logprobs(
    model, batch: Rollouts, temperature: float = 1.0, with_entropy: bool = False, entropy_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs ``[b, T]`` of the completion tokens under ``model`` (and token entropies ``[b, T]``
    when asked: detached, or differentiable with ``entropy_grad`` for an entropy bonus). The output
    layer runs only for completion tokens (:mod:`grpozoo.training.fused_head`)."""
    device = next(model.parameters()).device
    input_ids = torch.cat([batch.prompt_ids, batch.completion_ids], dim=1).to(device)
    attention = torch.cat([batch.prompt_mask, batch.completion_mask], dim=1).to(device)
    # positions as generate() numbers them under left padding
    position_ids = (attention.cumsum(dim=1) - 1).clamp(min=0)
    num_completion = batch.completion_ids.shape[1]
    states, _ = last_states(
        model, num_completion + 1, input_ids=input_ids, attention_mask=attention, position_ids=position_ids,
        use_cache=False,
    )
    # position t predicts completion token t
    return completion_outputs(model, states[:, :-1], batch, temperature, with_entropy, entropy_grad)


def shared_prefix_logprobs(
    model, batch: Rollouts, temperature: float = 1.0, with_entropy: bool = False, entropy_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same as :func:`completion_logprobs`, with each group's prompt run once (Prefix Grouper:
    Liu et al. 2025, "Prefix Grouper: Efficient GRPO Training through Shared-Prefix Forward",
    arXiv:2506.05433), so a group of G costs ``P + G·T`` tokens instead of ``G·(P + T)``.
    Gradients flow through the shared prompt, so log-probs and gradients equal the plain forward's.

    The micro-batch runs as one packed sequence ``[prompt_1 | completions of 1 | prompt_2 | …]``
    without padding: one pass through every layer, so each weight's gradient is one matmul over all
    tokens. Attention is split as in the paper (:mod:`grpozoo.training.prefix_attention`): each
    prompt attends to itself causally, each completion to its group's prompt and its own earlier
    tokens. A model whose attention does not dispatch through Hugging Face's attention interface
    gets the plain forward.

    Rows share a prompt when their prompt tokens are identical (a group's rows, wherever they sit
    in the batch); a row with a prompt of its own gets its own. Shapes as :func:`completion_logprobs`.
    """
    device = next(model.parameters()).device
    layout = pack_groups(batch)
    with prefix_attention(model) as calls:
        states, _ = last_states(
            model, len(layout.ids), input_ids=layout.ids[None].to(device), attention_mask=None,
            position_ids=layout.positions[None].to(device), use_cache=False, shared_prefix=layout.to(device),
        )
    if calls.count == 0:  # the model ignored the split attention: its output is not the shared forward's
        return completion_logprobs(model, batch, temperature, with_entropy, entropy_grad)
    # the state that predicts completion token t of row i, [b, T, ·] (padding rows read token 0)
    return completion_outputs(model, states[0, layout.predictors.to(device)], batch, temperature, with_entropy,
                              entropy_grad)


def fused_head_applies(model) -> bool:
    """Whether the output layer runs by hand, on completion tokens only (:mod:`grpozoo.training.fused_head`):
    for a plain head, outside a model sharded with FSDP (whose weights are whole only inside the
    model's own forward)."""
    return head_is_plain(model) and not is_sharded(model)


def last_states(model, keep: int, **inputs) -> tuple[torch.Tensor, Any]:
    """``[b, keep, ·]`` for the last ``keep`` positions, and the model's output: the decoder's last
    hidden states when :func:`fused_head_applies`, else the logits."""
    if fused_head_applies(model):
        out = model.get_decoder()(**inputs)
        return out.last_hidden_state[:, -keep:], out
    out = model(**inputs, logits_to_keep=keep)
    return out.logits[:, -keep:], out


def completion_outputs(
    model, states: torch.Tensor, batch: Rollouts, temperature: float, with_entropy: bool, entropy_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs and entropies ``[b, T]`` (0 on padding) from :func:`last_states`' ``states
    [b, T, ·]`` at the positions that predict the completion tokens."""
    if not fused_head_applies(model):
        return token_logprobs(states, batch, temperature, with_entropy, entropy_grad)
    mask = batch.completion_mask.to(states.device).bool()
    targets = batch.completion_ids.to(states.device)[mask]
    weight = model.get_output_embeddings().weight
    logp, entropy = head_logprobs(states[mask], weight, targets, temperature, with_entropy, entropy_grad)
    zeros = torch.zeros(mask.shape, device=states.device)
    return zeros.masked_scatter(mask, logp), (zeros.masked_scatter(mask, entropy) if entropy is not None else None)


def token_logprobs(
    logits: torch.Tensor, batch: Rollouts, temperature: float, with_entropy: bool, entropy_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs ``[b, T]`` of the completion tokens from the logits ``[b, T, V]`` that predict them
    (and entropies), both 0 on padding."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    targets = batch.completion_ids.to(logits.device).unsqueeze(-1)
    log_norm = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, targets).squeeze(-1) - log_norm
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            probs = torch.softmax(logits, dim=-1)
            entropy = log_norm - (probs * logits).sum(dim=-1)
    mask = batch.completion_mask.to(logits.device)
    return logp * mask, (entropy * mask if entropy is not None else None)
