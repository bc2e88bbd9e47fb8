"""The learner's forward: log-probs (and entropies) of completion tokens only, in micro-batches."""

from __future__ import annotations

from typing import Any

import torch

from grpozoo.modeling import cache_keyword, head_is_plain
from grpozoo.rollouts import Rollouts
from grpozoo.training.fused_head import head_logprobs


def trim_padding(batch: Rollouts) -> Rollouts:
    """Drop prompt columns that are padding in every row (left) and completion columns past the
    longest completion (right), so a micro-batch pays only for its own longest row."""
    prompt_keep = batch.prompt_mask.any(dim=0).nonzero()
    start = int(prompt_keep[0]) if len(prompt_keep) else batch.prompt_mask.shape[1]
    end = max(int(batch.completion_mask.sum(dim=1).max()), 1)
    batch.prompt_ids, batch.prompt_mask = batch.prompt_ids[:, start:], batch.prompt_mask[:, start:]
    per_token = ("completion_ids", "completion_mask", "sampling_logprobs", "old_logprobs", "ref_logprobs",
                 "entropies", "token_weights")
    for name in per_token:
        value = getattr(batch, name)
        if value is not None:
            setattr(batch, name, value[:, :end])
    if batch.advantages is not None and batch.advantages.dim() == 2:
        batch.advantages = batch.advantages[:, :end]
    return batch


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
    """The same as :func:`completion_logprobs`, with each group's prompt run once (Prefix Grouper,
    ALGORITHMS.md B30): the prompt's keys and values are computed once per group and shared by its
    completions, so a group of G costs ``P + G·T`` tokens instead of ``G·(P + T)``. Gradients flow
    through the shared keys and values, so log-probs and gradients equal the plain forward's.

    Rows share a prompt forward when their prompt tokens are identical (a group's rows, wherever
    they sit in the batch); a row with a prompt of its own gets its own. Shapes as
    :func:`completion_logprobs`.
    """
    device = next(model.parameters()).device
    prompts = torch.cat([batch.prompt_ids * batch.prompt_mask, batch.prompt_mask], dim=1)
    groups, group_of_row = torch.unique(prompts, dim=0, return_inverse=True)
    first_row = torch.zeros(len(groups), dtype=torch.long).scatter_(
        0, group_of_row.flip(0), torch.arange(batch.batch_size).flip(0)
    )
    prompt_ids = batch.prompt_ids[first_row].to(device)
    prompt_mask = batch.prompt_mask[first_row].to(device)
    prompt_states, prompt = last_states(
        model, 1, input_ids=prompt_ids, attention_mask=prompt_mask,
        position_ids=(prompt_mask.cumsum(dim=1) - 1).clamp(min=0), use_cache=True,
    )
    group_index = group_of_row.to(device)
    first = prompt_states[group_index]  # predicts each row's first completion token
    num_completion = batch.completion_ids.shape[1]
    if num_completion == 1:
        return completion_outputs(model, first, batch, temperature, with_entropy, entropy_grad)
    cache = prompt.past_key_values
    cache.batch_select_indices(group_index)  # every row attends to its group's prompt keys/values
    completion_mask = batch.completion_mask.to(device)
    completion_inputs = batch.completion_ids[:, :-1].to(device)
    prompt_lengths = prompt_mask.sum(dim=1)[group_index]
    position_ids = prompt_lengths.unsqueeze(1) + torch.arange(num_completion - 1, device=device)
    rest, _ = last_states(
        model, num_completion - 1, input_ids=completion_inputs,
        attention_mask=torch.cat([prompt_mask[group_index], completion_mask[:, :-1]], dim=1),
        position_ids=position_ids, use_cache=True, **{cache_keyword(model): cache},
    )
    states = torch.cat([first, rest], dim=1)
    return completion_outputs(model, states, batch, temperature, with_entropy, entropy_grad)


def last_states(model, keep: int, **inputs) -> tuple[torch.Tensor, Any]:
    """``[b, keep, ·]`` for the last ``keep`` positions, and the model's output: the decoder's last
    hidden states when the output layer is plain (the fused head applies it to completion tokens
    only), else the logits."""
    if head_is_plain(model):
        out = model.get_decoder()(**inputs)
        return out.last_hidden_state[:, -keep:], out
    out = model(**inputs, logits_to_keep=keep)
    return out.logits[:, -keep:], out


def completion_outputs(
    model, states: torch.Tensor, batch: Rollouts, temperature: float, with_entropy: bool, entropy_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs and entropies ``[b, T]`` (0 on padding) from :func:`last_states`' ``states
    [b, T, ·]`` at the positions that predict the completion tokens."""
    if not head_is_plain(model):
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
