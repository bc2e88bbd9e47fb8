"""Group-similarity reward: a completion is paid for agreeing with the completions of the other
paraphrases of its query (PS-GRPO), so the policy learns to answer the same question the same way
however it is asked. No gold answer is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import torch

from grpozoo.registry import rewards
from grpozoo.rewards.common import need_column
from grpozoo.rewards.label_free import same_answer

WORD = re.compile(r"\w+")


def cross_paraphrase_similarity(
    similarity: torch.Tensor,
    paraphrase_ids: torch.Tensor,
    query_ids: torch.Tensor,
    max_comparisons: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PS-GRPO's group similarity reward ``[B]`` (Hamman et al. 2025, "Improving Consistency in
    Retrieval-Augmented Systems with Group Similarity Rewards", arXiv:2510.04392): completion ``i``,
    an answer to paraphrase ``paraphrase_ids[i]`` of query ``query_ids[i]``, gets the mean of
    ``similarity[i, j] [B, B]`` over the completions ``j`` of the *other* paraphrases of the same query.

    ``max_comparisons``: the paper's scalable approximation, a uniform random subset of at most that
    many of those completions (``generator`` draws it). GUESS: a query with a single paraphrase (no
    other paraphrase to compare with) compares its completion with the other completions of the same
    paraphrase instead; a completion with nothing to compare with gets NaN (no opinion).

    Identical completions everywhere give every completion the largest similarity; relabelling or
    reordering the paraphrases of a query permutes the rewards with the rows."""
    size = similarity.shape[0]
    same_query = query_ids.unsqueeze(0) == query_ids.unsqueeze(1)
    other_paraphrase = same_query & (paraphrase_ids.unsqueeze(0) != paraphrase_ids.unsqueeze(1))
    not_self = ~torch.eye(size, dtype=torch.bool, device=similarity.device)
    has_other = other_paraphrase.any(dim=1, keepdim=True)
    compare = torch.where(has_other, other_paraphrase, same_query & not_self)
    if max_comparisons is not None:
        keys = torch.rand(size, size, generator=generator).to(similarity.device)
        keys = torch.where(compare, keys, torch.full_like(keys, 2.0))  # 2 > any key: never picked
        order = keys.argsort(dim=1).argsort(dim=1)  # rank of each candidate in a random order
        compare = compare & (order < max_comparisons)
    counts = compare.sum(dim=1)
    total = (similarity * compare).sum(dim=1)
    return torch.where(counts > 0, total / counts.clamp_min(1), torch.full_like(total, float("nan")))


def word_jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' sets of lower-cased words (1 for two empty texts)."""
    left, right = set(WORD.findall(a.lower())), set(WORD.findall(b.lower()))
    return 1.0 if not left and not right else len(left & right) / len(left | right)


def similarity_matrix(
    completions: Sequence[str], answers: Sequence[str | None] | None, metric: str
) -> torch.Tensor:
    """``[B, B]`` pairwise similarity: ``"words"``, :func:`word_jaccard` of the texts; ``"answer"``, 1
    when both final answers are found and equal (math equivalence), else 0."""
    size = len(completions)
    out = torch.zeros(size, size)
    for i in range(size):
        for j in range(i, size):
            if metric == "words":
                value = word_jaccard(completions[i], completions[j])
            else:
                a, b = answers[i], answers[j]  # type: ignore[index]
                value = float(a is not None and b is not None and same_answer(str(a), str(b)))
            out[i, j] = out[j, i] = value
    return out


@rewards.register("group_similarity")
def group_similarity_reward(
    completions: list[str],
    prompts: list[str],
    metric: Literal["words", "answer"] = "words",
    query_column: str = "query_id",
    max_comparisons: int | None = None,
    seed: int = 0,
    group_id: Sequence[Any] | None = None,
    extracted_answer: Sequence[str | None] | None = None,
    step: Sequence[int] | None = None,
    **columns: Any,
) -> list[float | None]:
    """PS-GRPO group similarity reward ``[B]`` in [0, 1] (Hamman et al. 2025, "Improving Consistency
    in Retrieval-Augmented Systems with Group Similarity Rewards", arXiv:2510.04392): the mean
    similarity of a completion to the completions of the other paraphrases of its query
    (:func:`cross_paraphrase_similarity`).

    Each prompt of the step is one paraphrase (its ``group_id``); the task's ``query_column`` says
    which prompts are paraphrases of one query (rows without it, or a task without the column, are
    each their own query, compared within their group). ``metric`` (GUESS: the paper leaves it open):
    ``"words"`` (word-set Jaccard) or ``"answer"`` (same final answer). ``max_comparisons`` with
    ``seed`` subsamples the comparison set (the paper's approximation), drawn anew every step."""
    size = len(completions)
    groups = need_column("group_similarity", "group_id", group_id, size)
    queries = columns.get(query_column)
    if metric == "answer":
        need_column("group_similarity", "extracted_answer", extracted_answer, size)
    labels: dict[Any, int] = {}
    query_ids = torch.tensor([
        labels.setdefault(("query", queries[i]) if queries is not None and queries[i] is not None
                          else ("group", groups[i]), len(labels))
        for i in range(size)
    ])
    paraphrase_ids = torch.tensor([labels.setdefault(("paraphrase", g), len(labels)) for g in groups])
    generator = torch.Generator().manual_seed(seed * 1_000_003 + (int(step[0]) if step else 0))
    similarity = similarity_matrix(completions, extracted_answer, metric)
    rewards_ = cross_paraphrase_similarity(similarity, paraphrase_ids, query_ids, max_comparisons, generator)
    return [None if r.isnan() else float(r) for r in rewards_]
