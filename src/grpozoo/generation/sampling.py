"""The token-by-token sampling loop behind :class:`~grpozoo.generation.hf.HFGenerator`.

These make it cheaper than ``model.generate(num_return_sequences=G)`` for RL rollouts:

* each distinct prompt is prefilled once and its keys/values are copied to the G rows of its
  group (``generate`` prefills every copy: G times the prompt's cost);
* rows that have finished (EOS) are dropped from the batch, so late steps pay only for the rows
  still writing;
* the sampled token's log-prob and the distribution's entropy are taken at each step from that
  step's logits ``[b, V]``, so no ``[B, T, V]`` tensor of logits is ever kept;
* tokens are drawn by inverting the CDF (one random number a row);
* the model side (:mod:`grpozoo.generation.decoders`) runs a Llama-family model's layers directly
  over a KV cache allocated once, and any other model through its own forward.

Log-probs and entropies are those of the tempered model distribution (what the learner's forward
recomputes), before top-k/top-p truncation or the EOS suppression of ``min_new_tokens``, which only
shape what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpozoo.generation.decoders import decoder_for

# compact the KV cache once this fraction of its rows has finished (each compaction copies it)
COMPACT_FRACTION = 0.25


@dataclass
class SampledTokens:
    """``ids [B, T]`` (``pad_id`` after a row's EOS), ``logprobs [B, T]`` and ``entropies [B, T]``
    (0 after EOS), for ``B = sum(counts)`` rows grouped prompt by prompt; T is the longest
    completion's length."""

    ids: torch.Tensor
    logprobs: torch.Tensor
    entropies: torch.Tensor


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """``logits [b, V]`` with every token outside the top ``top_k`` (0: no limit) and outside the
    smallest set whose probability reaches ``top_p`` set to ``-inf``; the most likely token is
    always kept."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the strictly more likely tokens
        drop_sorted = before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def draw(probs: torch.Tensor) -> torch.Tensor:
    """One token per row of ``probs [b, V]`` by inverting the cumulative distribution at a uniform
    draw: one random number a row instead of one a vocabulary entry (``torch.multinomial`` costs
    about 20x more at V = 49k). A token of probability 0 is never drawn."""
    cdf = probs.double().cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, dtype=torch.float64, device=probs.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp(max=probs.shape[-1] - 1)


@torch.no_grad()
def sample_tokens(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    counts: list[int],
    max_new_tokens: int,
    eos_ids: list[int],
    pad_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    min_new_tokens: int = 0,
    decoder=None,
) -> SampledTokens:
    """Sample ``counts[i]`` completions of the left-padded prompt ``prompt_ids[i]`` (``[P, L]``,
    mask ``[P, L]``), at most ``max_new_tokens`` each; ``temperature`` 0 is greedy decoding.
    ``decoder``: the model side to use instead of :func:`decoder_for`'s (one that continues rows
    already under way, e.g. after soft-thinking steps)."""
    device = prompt_ids.device
    group = torch.repeat_interleave(torch.arange(len(counts), device=device), torch.tensor(counts, device=device))
    rows = len(group)
    decoder = decoder_for(model) if decoder is None else decoder
    logits = decoder.prefill(prompt_ids, prompt_mask, max_new_tokens)[group]
    decoder.keep(group)  # each row continues from its prompt's keys and values

    ids = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros((rows, max_new_tokens), device=device)
    entropies = torch.zeros((rows, max_new_tokens), device=device)
    eos = torch.tensor(eos_ids, device=device)
    active = torch.arange(rows, device=device)  # rows of the output the cache rows belong to
    running = torch.ones(rows, dtype=torch.bool, device=device)  # per cache row: not finished
    steps = 0
    for t in range(max_new_tokens):
        steps = t + 1
        scaled = logits.float()
        if temperature > 0 and temperature != 1.0:
            scaled = scaled / temperature
        log_probs = torch.log_softmax(scaled, dim=-1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs).sum(dim=-1)
        restricted = scaled if t >= min_new_tokens else scaled.index_fill(-1, eos, float("-inf"))
        if temperature == 0:
            token = restricted.argmax(dim=-1)
        elif restricted is scaled and not top_k and top_p == 1.0:
            token = draw(probs)  # the model's own distribution: reuse its probabilities
        else:
            token = draw(torch.softmax(filter_logits(restricted, top_k, top_p), dim=-1))
        live = active[running]
        ids[live, t] = token[running]
        logprobs[live, t] = log_probs.gather(1, token.unsqueeze(1)).squeeze(1)[running]
        entropies[live, t] = entropy[running]
        running = running & ~torch.isin(token, eos)
        if not bool(running.any()) or t + 1 == max_new_tokens:
            break
        if float((~running).float().mean()) >= COMPACT_FRACTION:  # drop finished rows
            keep = running.nonzero().squeeze(1)
            decoder.keep(keep)
            active, token, running = active[keep], token[keep], running[keep]
        logits = decoder.step(token)
    return SampledTokens(ids[:, :steps], logprobs[:, :steps], entropies[:, :steps])
