"""The packed layout and split attention of the shared-prefix learning forward (Prefix Grouper:
Liu et al. 2025, "Prefix Grouper: Efficient GRPO Training through Shared-Prefix Forward", arXiv:2506.05433).

A micro-batch becomes one sequence without padding: rows in batch order, each row's inputs (its
completion tokens but the last, which predicts nothing) preceded, at the first row of its group,
by the group's prompt: ``[prompt_1 | row 1 | prompt_2 | row 2 | row 3 (group 1) | …]``. Every
linear layer then runs once over all tokens.

Attention is split in two calls, as in the paper, registered as a Hugging Face attention
implementation that reads the layout from the forward's keyword arguments:

* prompt tokens attend causally within their prompt (``[groups, P]`` queries);
* a row's inputs attend to ``[its group's prompt | its own inputs]`` with a causal mask on the
  second part (``[rows, T]`` queries over ``P + T`` keys).

Keys and values are gathered per row from the packed sequence, so gradients flow back to the
shared prompt from every completion of its group.

A second path computes the same attention with PyTorch's flex attention
(:func:`torch.nn.attention.flex_attention.flex_attention`): one call over the whole packed
sequence, with a :class:`~torch.nn.attention.flex_attention.BlockMask` whose mask function reads
each packed token's group, row and step (:attr:`PackedGroups.token_group` and the fields after
it), so keys and values are neither gathered per row nor repeated per query head. It exists for
GPUs, where ``torch.compile(flex_attention)`` becomes a fused kernel that skips the masked-out
blocks, while the split path takes SDPA's masked kernels over per-row copies of the keys and
values. Its speed on a GPU has not been measured on the machine this was written on (it had no
GPU): it is chosen on CUDA devices (for heads of at least 16 dimensions) because of what flex
attention is built for, not because of a timing. Its block mask is built once per forward by
evaluating the mask function on every (query, key) pair, ``N²`` booleans for ``N`` packed tokens.
On the CPU the SDPA path runs (and is the reference the flex path is tested against);
:func:`attention_kernel` chooses a path by hand.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from grpozoo.rollouts import Rollouts

ATTENTION_NAME = "grpozoo_shared_prefix"

Kernel = Literal["auto", "sdpa", "flex"]
_kernel: Kernel = "auto"


@contextmanager
def attention_kernel(kernel: Kernel) -> Iterator[None]:
    """Within the block, :func:`shared_prefix_attention` takes the given path: ``"sdpa"`` (the
    split attention, two SDPA calls), ``"flex"`` (one flex attention call: compiled on CUDA,
    eager elsewhere, where it materialises the scores and serves to check the mask; PyTorch's eager
    flex attention refuses inputs that require gradients on the CPU) or ``"auto"`` (the default:
    flex on CUDA devices for heads of at least 16 dimensions, which the compiled kernel needs, SDPA
    elsewhere). Attention with dropout always takes the SDPA path: flex attention has no dropout."""
    global _kernel
    if kernel not in ("auto", "sdpa", "flex"):
        raise ValueError(f"attention kernel must be 'auto', 'sdpa' or 'flex', not {kernel!r}")
    previous, _kernel = _kernel, kernel
    try:
        yield
    finally:
        _kernel = previous


@dataclass
class PackedGroups:
    """``ids``, ``positions [N]`` of the packed sequence; ``prompt_tokens [g, P]`` and
    ``row_tokens [b, T]``: the packed index of each group's prompt tokens (left-aligned) and of
    each row's inputs, with ``prompt_valid``/``row_valid`` masks (index 0 where invalid);
    ``group_of_row [b]``; ``row_keys [b, P + T]``: each row's keys, its group's prompt then its own inputs; the two
    attention patterns ``prompt_allowed [g, P, P]`` and ``row_allowed [b, T, P + T]`` (query,
    key), the same for every layer; ``predictors [b, T]``: the packed index of the token whose
    state predicts each completion token (0 on padding). For the flex path, per packed token
    ``[N]``: ``token_group``, its group; ``token_row``, its row (-1 for a prompt token);
    ``token_step``, its index within its prompt or its row's inputs."""

    ids: torch.Tensor
    positions: torch.Tensor
    prompt_tokens: torch.Tensor
    prompt_valid: torch.Tensor
    row_tokens: torch.Tensor
    row_valid: torch.Tensor
    group_of_row: torch.Tensor
    row_keys: torch.Tensor
    prompt_allowed: torch.Tensor
    row_allowed: torch.Tensor
    predictors: torch.Tensor
    token_group: torch.Tensor
    token_row: torch.Tensor
    token_step: torch.Tensor
    # the flex path's block mask, built on first use and shared by every layer
    block_mask: BlockMask | None = field(default=None, init=False, repr=False, compare=False)

    def to(self, device) -> PackedGroups:
        return PackedGroups(**{f.name: getattr(self, f.name).to(device) for f in fields(self) if f.init})


def pack_groups(batch: Rollouts) -> PackedGroups:
    """The packed layout of ``batch`` (left-padded prompts, right-padded completions): rows with
    identical prompt tokens share one copy of it."""
    prompts = torch.cat([batch.prompt_ids * batch.prompt_mask, batch.prompt_mask], dim=1)
    _, group_of_row = torch.unique(prompts, dim=0, return_inverse=True)
    rows, length = batch.completion_ids.shape
    first_row = torch.zeros(int(group_of_row.max()) + 1, dtype=torch.long).scatter_(
        0, group_of_row.flip(0), torch.arange(rows).flip(0)
    )
    prompt_mask = batch.prompt_mask[first_row].bool()
    prompt_lengths = prompt_mask.sum(dim=1)
    completion_lengths = batch.completion_mask.sum(dim=1)
    inputs = (completion_lengths - 1).clamp(min=0)

    # offsets: each group's prompt, then its rows' inputs in row order
    starts, cursor = [], 0
    group_start = {}
    for row, g in enumerate(group_of_row.tolist()):
        if g not in group_start:
            group_start[g] = cursor
            cursor += int(prompt_lengths[g])
        starts.append(cursor)
        cursor += int(inputs[row])
    # a group's prompt sits before its first row's inputs; later rows of the group follow further on
    prompt_start = torch.tensor([group_start[g] for g in range(len(first_row))], dtype=torch.long)
    row_start = torch.tensor(starts, dtype=torch.long)

    width = int(prompt_lengths.max())
    slots = torch.arange(width)
    prompt_valid = slots[None] < prompt_lengths[:, None]
    prompt_tokens = torch.where(prompt_valid, prompt_start[:, None] + slots[None], 0)
    steps = torch.arange(max(int(inputs.max()), 1))
    row_valid = steps[None] < inputs[:, None]
    row_tokens = torch.where(row_valid, row_start[:, None] + steps[None], 0)

    ids = torch.empty(cursor, dtype=torch.long)
    positions = torch.empty(cursor, dtype=torch.long)
    left_aligned = torch.argsort((~prompt_mask).long(), dim=1, stable=True)  # real prompt tokens first
    prompt_ids = batch.prompt_ids[first_row].gather(1, left_aligned)
    ids[prompt_tokens[prompt_valid]] = prompt_ids[prompt_valid]
    positions[prompt_tokens[prompt_valid]] = slots[None].expand_as(prompt_valid)[prompt_valid]
    ids[row_tokens[row_valid]] = batch.completion_ids[:, : len(steps)][row_valid]
    positions[row_tokens[row_valid]] = (prompt_lengths[group_of_row][:, None] + steps[None]).expand_as(row_valid)[
        row_valid
    ]

    # a padding prompt slot attends to itself only (its output is dropped)
    prompt_allowed = torch.ones(width, width, dtype=torch.bool).tril() & prompt_valid[:, None, :] | torch.eye(
        width, dtype=torch.bool
    )
    own = torch.ones(len(steps), len(steps), dtype=torch.bool).tril() & row_valid[:, None, :]
    row_allowed = torch.cat([prompt_valid[group_of_row][:, None, :].expand(-1, len(steps), -1), own], dim=2)
    row_keys = torch.cat([prompt_tokens[group_of_row], row_tokens], dim=1)

    token_group = torch.empty(cursor, dtype=torch.long)
    token_row = torch.full((cursor,), -1, dtype=torch.long)
    token_step = torch.empty(cursor, dtype=torch.long)
    groups = torch.arange(len(first_row))
    token_group[prompt_tokens[prompt_valid]] = groups[:, None].expand_as(prompt_valid)[prompt_valid]
    token_step[prompt_tokens[prompt_valid]] = slots[None].expand_as(prompt_valid)[prompt_valid]
    token_group[row_tokens[row_valid]] = group_of_row[:, None].expand_as(row_valid)[row_valid]
    token_row[row_tokens[row_valid]] = torch.arange(rows)[:, None].expand_as(row_valid)[row_valid]
    token_step[row_tokens[row_valid]] = steps[None].expand_as(row_valid)[row_valid]

    t = torch.arange(length)
    last_prompt_token = (prompt_start + prompt_lengths - 1)[group_of_row]
    predictors = torch.where(t[None] == 0, last_prompt_token[:, None], row_start[:, None] + t[None] - 1)
    predictors = predictors.masked_fill(t[None] >= completion_lengths[:, None], 0)
    return PackedGroups(ids, positions, prompt_tokens, prompt_valid, row_tokens, row_valid, group_of_row, row_keys,
                        prompt_allowed, row_allowed, predictors, token_group, token_row, token_step)


def flex_mask_mod(layout: PackedGroups):
    """The flex attention mask function of ``layout``: query token ``q`` may attend to key token
    ``kv`` (packed indices) when both are of one group and either ``kv`` is a prompt token and ``q``
    one of the group's rows, or both are of the same prompt or row and ``kv`` comes no later than
    ``q`` — the rule of ``prompt_allowed`` and ``row_allowed``."""
    group, row, step = layout.token_group, layout.token_row, layout.token_step

    def mask_mod(b, h, q, kv):
        prompt_for_row = (row[kv] == -1) & (row[q] != -1)
        causal_within = (row[q] == row[kv]) & (step[kv] <= step[q])
        return (group[q] == group[kv]) & (prompt_for_row | causal_within)

    return mask_mod


def flex_block_mask(layout: PackedGroups, device) -> BlockMask:
    """The :class:`BlockMask` of :func:`flex_mask_mod` over the packed sequence on ``device``,
    built once per layout (every layer reuses it)."""
    cached = layout.block_mask
    if cached is None or cached.kv_num_blocks.device != torch.device(device):
        n = len(layout.token_group)
        cached = create_block_mask(flex_mask_mod(layout), None, None, n, n, device=device)
        layout.block_mask = cached
    return cached


@functools.cache
def _compiled_flex_attention():
    """``torch.compile(flex_attention)``, compiled once for the process, as PyTorch documents for a
    fused kernel."""
    return torch.compile(flex_attention)


def _uses_flex(query: torch.Tensor, value: torch.Tensor, dropout: float) -> bool:
    if dropout > 0 or _kernel == "sdpa":
        return False
    # the compiled CUDA kernel needs heads of at least 16 dimensions (a limit of its tl.dot)
    return _kernel == "flex" or (query.device.type == "cuda" and min(query.shape[-1], value.shape[-1]) >= 16)


def _flex_attend(query, key, value, layout: PackedGroups, scaling):
    """One flex attention call over the packed sequence (``query [1, H, N, d]``, ``key``/``value``
    ``[1, H_kv, N, d]``, grouped-query heads broadcast by flex); returns ``[1, N, H, d]``."""
    attend = _compiled_flex_attention() if query.device.type == "cuda" else flex_attention
    out = attend(query, key, value, block_mask=flex_block_mask(layout, query.device), scale=scaling,
                 enable_gqa=True)
    return out.transpose(1, 2)


def _attend(query, key, value, allowed, scaling, dropout):
    """SDPA of ``query [n, H, q, d]`` over ``key, value [n, H_kv, k, d]`` where ``allowed [n, q, k]``."""
    repeat = query.shape[1] // key.shape[1]
    if repeat > 1:
        key, value = key.repeat_interleave(repeat, dim=1), value.repeat_interleave(repeat, dim=1)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=allowed[:, None], dropout_p=dropout,
                                          scale=scaling)


def shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                            shared_prefix: PackedGroups | None = None, **kwargs):
    """The attention over :class:`PackedGroups` (``query [1, H, N, d]``, ``key``/``value``
    ``[1, H_kv, N, d]``); returns ``[1, N, H, d]`` as Hugging Face's attention functions do. The
    split SDPA attention, or the flex path (one call with a block mask) where
    :func:`attention_kernel` chooses it: by default on CUDA devices (heads of at least 16
    dimensions), never with dropout."""
    if shared_prefix is None:
        raise ValueError(
            "shared_prefix_attention needs the packed layout: call the model with "
            "shared_prefix=pack_groups(batch)"
        )
    layout = shared_prefix
    if _uses_flex(query, value, dropout):
        return _flex_attend(query, key, value, layout, scaling), None
    q, k, v = query[0].transpose(0, 1), key[0].transpose(0, 1), value[0].transpose(0, 1)  # [N, heads, d]

    def gather(x, index):  # [N, heads, d] at index [n, m] -> [n, heads, m, d]
        return x[index].transpose(1, 2)

    prompt_out = _attend(gather(q, layout.prompt_tokens), gather(k, layout.prompt_tokens),
                         gather(v, layout.prompt_tokens), layout.prompt_allowed, scaling, dropout)
    row_out = _attend(gather(q, layout.row_tokens), gather(k, layout.row_keys), gather(v, layout.row_keys),
                      layout.row_allowed, scaling, dropout)
    out = q.new_zeros(q.shape[0], q.shape[1], v.shape[-1])
    out = out.index_copy(0, layout.prompt_tokens[layout.prompt_valid], prompt_out.transpose(1, 2)[layout.prompt_valid])
    out = out.index_copy(0, layout.row_tokens[layout.row_valid], row_out.transpose(1, 2)[layout.row_valid])
    return out[None], None


@dataclass
class _Calls:
    count: int = 0


@contextmanager
def prefix_attention(model):
    """Within the block, the model's attention layers run :func:`shared_prefix_attention` (when
    they dispatch through Hugging Face's attention interface); the yielded counter tells how many
    attention calls took it."""
    from transformers import AttentionInterface

    calls = _Calls()

    def counted(*args, **kwargs):
        calls.count += 1
        return shared_prefix_attention(*args, **kwargs)

    AttentionInterface.register(ATTENTION_NAME, counted)
    config = model.config
    previous = config._attn_implementation
    config._attn_implementation = ATTENTION_NAME
    try:
        yield calls
    finally:
        config._attn_implementation = previous
