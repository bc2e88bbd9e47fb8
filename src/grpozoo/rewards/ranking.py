"""Ranking rewards: the completion scores a group of documents for a query, and the reward is a
ranking metric of those scores against graded relevance labels (GroupRank).

The task row's ``relevance`` column maps each document id to its graded label (``{"d1": 3, "d2":
0, …}``); the completion writes one ``id: score`` line per document (``d1: 0.9``, ``[d2] = 2``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch

from grpozoo.registry import rewards
from grpozoo.rewards.common import need_column

SCORE_LINE = re.compile(r"^\W*\[?([\w-]+)\]?\s*[:=]\s*(-?\d+(?:\.\d+)?)", re.MULTILINE)


def ndcg_at_k(scores: torch.Tensor, labels: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """NDCG@k (scalar in [0, 1]) of the order given by ``scores [D]`` against graded ``labels [D]``
    (gain ``2^label − 1``, discount ``1/log2(rank + 1)``), as GroupRank's ranking reward (Sun et al.
    2025, "GroupRank: A Groupwise Reranking Paradigm Driven by Reinforcement Learning",
    arXiv:2511.11653). Documents with equal scores are ordered worst label first, so tied (or
    constant) scores earn nothing an order would not: the reward cannot be gamed by declining to
    rank. 1 for the ideal order; only the order of the scores matters (any strictly increasing
    rescaling gives the same value). A query with no relevant document gives 1 (nothing to rank)."""
    k = len(scores) if k is None else min(k, len(scores))
    gains = 2.0 ** labels.double() - 1.0
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
    # sort by score descending, ties by label ascending (pessimistic): stable sort on the tie-breaker first
    by_label = torch.argsort(labels, stable=True)
    order = by_label[torch.argsort(-scores[by_label].double(), stable=True)]
    dcg = (gains[order][:k] * discounts).sum()
    ideal = (gains.sort(descending=True).values[:k] * discounts).sum()
    return torch.where(ideal > 0, dcg / ideal.clamp_min(1e-12), torch.ones((), dtype=torch.float64)).float()


def score_alignment(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """GUESS of GroupRank's distributional reward (scalar in [0, 1]): ``1 − mean_d |ŝ_d − ℓ̂_d|``,
    with ``ŝ`` the scores min-max scaled to [0, 1] and ``ℓ̂`` the labels divided by their largest
    (Sun et al. 2025, arXiv:2511.11653: a term that makes score distributions comparable across
    groups; the paper's form is not ours). Shapes: ``scores, labels [D]``."""
    scores, labels = scores.double(), labels.double()
    spread = scores.max() - scores.min()
    scaled = (scores - scores.min()) / spread if spread > 0 else torch.zeros_like(scores)
    target = labels / labels.max() if labels.max() > 0 else torch.zeros_like(labels)
    return (1.0 - (scaled - target).abs().mean()).float()


def parse_scores(completion: str, documents: Sequence[str]) -> dict[str, float]:
    """The last score the completion gives each of ``documents`` (``id: score`` lines)."""
    wanted = set(documents)
    found: dict[str, float] = {}
    for name, value in SCORE_LINE.findall(completion):
        if name in wanted:
            found[name] = float(value)
    return found


@rewards.register("ndcg")
def ndcg_reward(
    completions: list[str],
    prompts: list[str],
    k: int | None = 10,
    alignment_weight: float = 0.0,
    relevance: Sequence[Any] | None = None,
    **columns: Any,
) -> list[float]:
    """GroupRank's groupwise ranking reward ``[B]`` in [0, 1] (Sun et al. 2025, "GroupRank: A
    Groupwise Reranking Paradigm Driven by Reinforcement Learning", arXiv:2511.11653): NDCG@k
    (:func:`ndcg_at_k`) of the completion's document scores against the row's ``relevance`` labels,
    mixed with the score-distribution alignment term (:func:`score_alignment`) as
    ``(ndcg + w·alignment) / (1 + w)``, ``w = alignment_weight`` (GUESS: 0, ranking only).

    A document the completion gives no score ranks below every scored one (worst label first among
    the unscored), so leaving documents out never helps; a completion that scores none gets 0."""
    if relevance is None:
        raise ValueError(
            "reward 'ndcg' reads each task row's 'relevance' column (document id -> graded label, e.g. "
            '{"d1": 3, "d2": 0}), which this task does not have: train on a task file with that column '
            "(a query and its documents in the prompt), or pass relevance=[...] when calling it directly"
        )
    labels_column = need_column("ndcg", "relevance", relevance, len(completions))
    out = []
    for completion, row_labels in zip(completions, labels_column, strict=True):
        if not isinstance(row_labels, dict) or not row_labels:
            raise ValueError(
                f"reward 'ndcg': the relevance column must map document ids to graded labels, got {row_labels!r}"
            )
        documents = [str(d) for d in row_labels]
        scores_found = parse_scores(completion, documents)
        if not scores_found:
            out.append(0.0)
            continue
        floor = min(scores_found.values()) - 1.0
        scores = torch.tensor([scores_found.get(d, floor) for d in documents], dtype=torch.float64)
        scored = torch.tensor([d in scores_found for d in documents])
        labels = torch.tensor([float(row_labels[d]) for d in row_labels], dtype=torch.float64)
        value = float(ndcg_at_k(scores, labels, k))
        if alignment_weight > 0:
            aligned = float(score_alignment(scores[scored], labels[scored])) if bool(scored.all()) else 0.0
            value = (value + alignment_weight * aligned) / (1.0 + alignment_weight)
        out.append(value if math.isfinite(value) else 0.0)
    return out
