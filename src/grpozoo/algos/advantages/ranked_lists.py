"""Rank-level advantages for completions that are ranked lists (Rank-GRPO, Zhu et al. 2025,
"Rank-GRPO: Training LLM-based Conversational Recommender Systems with Reinforcement Learning",
arXiv:2510.20150): each item of the list is one action, credited only for what it and the items
after it earn, and compared with the items at the same rank in the other completions of its group.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Literal

import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.losses.preference import list_item_ids
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts, required

_LIST_MARKER = re.compile(r"^\s*(?:\d+\s*[.):]|[-*•])\s*")  # "1.", "2)", "3:", "-", "*", "•"


def normalise_item(text: str) -> str:
    """An item's text as compared with the relevant items: list marker, surrounding space and
    trailing punctuation removed, lower case, inner spaces collapsed."""
    text = _LIST_MARKER.sub("", text).strip().rstrip(".,;:!").strip()
    return " ".join(text.lower().split())


def relevant_items(answer: Any) -> set[str]:
    """The normalised relevant items of a task row's answer: a list's elements, or a string's lines."""
    values = answer if isinstance(answer, list | tuple | set) else str(answer or "").splitlines()
    return {item for item in (normalise_item(str(v)) for v in values) if item}


def item_relevance(
    texts: Sequence[Sequence[str]], num_tokens: int, answers: Sequence[Any], num_items: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-rank relevance and each token's rank.

    Items are the lines of each completion (:func:`~grpozoo.algos.losses.preference.list_item_ids`);
    blank lines are not items. Returns ``relevance [B, num_items]`` (1.0 where the item at rank k is
    one of its row's relevant items, :func:`relevant_items` of ``answers [B]``, and not a repeat of an
    earlier item; 0 past the end of a list) and ``rank [B, num_tokens]`` (long, the 0-based rank of
    each token's item; −1 on blank lines, padding and items past ``num_items``).
    ``texts`` is ``ctx.completion_token_texts`` ``[B][L_i]``.
    """
    segments = list_item_ids(texts, num_tokens)
    relevance = torch.zeros(len(texts), num_items, dtype=torch.float64)
    rank = torch.full((len(texts), num_tokens), -1, dtype=torch.long)
    for i, row in enumerate(texts):
        relevant, seen, k = relevant_items(answers[i]), set(), 0
        row = list(row[:num_tokens])
        labels = segments[i, : len(row)].tolist()
        start = 0
        while start < len(row):
            end = start
            while end < len(row) and labels[end] == labels[start]:
                end += 1
            item = normalise_item("".join(row[start:end]))
            if item:
                if k < num_items:
                    relevance[i, k] = float(item in relevant and item not in seen)
                    rank[i, start:end] = k
                seen.add(item)
                k += 1
            start = end
    return relevance, rank


def causal_rank_rewards(
    relevance: torch.Tensor, reward: Literal["dcg_suffix", "own"] = "dcg_suffix"
) -> torch.Tensor:
    """Rank-GRPO's causal rank rewards ``[B, K]`` from ``relevance [B, K]``: ``"dcg_suffix"``,
    ``r_k = Σ_{j≥k} rel_j / log2(j + 1)`` (the list's DCG from rank k on, ranks 1-based: an item is
    never credited for the items before it); ``"own"``, ``r_k = rel_k`` (only the item's own hit)."""
    if reward == "own":
        return relevance.clone()
    if reward != "dcg_suffix":
        raise ValueError(f"rank_grpo: reward={reward!r} is not 'dcg_suffix' or 'own'")
    k = relevance.shape[1]
    discount = torch.tensor([1.0 / math.log2(j + 2) for j in range(k)], dtype=relevance.dtype)
    gains = relevance * discount
    return gains.flip(1).cumsum(1).flip(1)


@advantages.register("rank_grpo")
def rank_grpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    num_items: int = 20,
    reward: Literal["dcg_suffix", "own"] = "dcg_suffix",
    answer_key: str = "answer",
    eps: float = 1e-4,
) -> torch.Tensor:
    """Rank-GRPO's rank-level advantage (Zhu et al. 2025, "Rank-GRPO: Training LLM-based
    Conversational Recommender Systems with Reinforcement Learning", arXiv:2510.20150).

    Each line of a completion is an item (blank lines are not); item k's relevance is 1 when it is
    one of the task row's relevant items (``ctx.examples[i][answer_key]``: a list, or a string with one
    item per line; compared after :func:`normalise_item`) and not a repeat. Its causal rank reward
    ``r_{i,k}`` (:func:`causal_rank_rewards`) is normalised across the group at the same rank,
    ``A_{i,k} = (r_{i,k} − mean_G r_{·,k}) / (std_G r_{·,k} + eps)`` (GRPO per rank; ranks a list does
    not reach have reward 0), and every token of item k gets ``A_{i,k}``; tokens of blank lines and of
    items past ``num_items`` get 0. Use with the ``rank_grpo`` loss (its item-level ratio).
    The sequence reward ``rewards`` is not used: the learning signal is the items' relevance.
    GUESS: items are lines; the authors' catalogue matching (titles with release years) is reduced to
    normalised string equality; ``num_items = 20``, ``eps = 1e-4`` (the authors' code).
    Shapes: ``rewards [B]`` (unused), ``group_ids [B]``, ``ctx.completion_token_texts [B][L_i]`` ->
    ``[B, T]``.
    """
    if num_items < 1:
        raise ValueError(f"rank_grpo: num_items={num_items} must be at least 1")
    texts = required(ctx.completion_token_texts, "ctx.completion_token_texts", "advantage estimator 'rank_grpo'")
    num_tokens = ctx.completion_mask.shape[1]
    answers = [example.get(answer_key) for example in ctx.examples]
    relevance, rank = item_relevance(texts, num_tokens, answers, num_items)
    rank_rewards = causal_rank_rewards(relevance, reward)
    ids = group_ids.cpu()
    per_rank = torch.stack(
        [grpo_advantage(rank_rewards[:, k], ids, scale="group", eps=eps) for k in range(num_items)], dim=1
    )
    token_advantages = per_rank.gather(1, rank.clamp(min=0)) * (rank >= 0)
    return (token_advantages * ctx.completion_mask.cpu()).to(device=rewards.device, dtype=torch.float32)
