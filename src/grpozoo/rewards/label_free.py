"""Label-free rewards: the group's own answers stand in for the gold answer.

Each reads the ``group_id`` and ``extracted_answer`` columns (the task's extraction of each
completion's final answer, ``None`` when none was found) and scores a completion against the other
members of its group. Answers are clustered by equivalence first: with ``equivalence="math"`` two
answers are the same when their normalised text matches or math-verify finds them equivalent
(``1/2`` and ``0.5`` vote together); ``"exact"`` compares the stripped text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from grpozoo.registry import rewards
from grpozoo.rewards.common import groups_of, need_column
from grpozoo.rewards.math import math_equal, normalize_answer

EQUIVALENCES = ("math", "exact")


def same_answer(a: str, b: str, equivalence: str = "math") -> bool:
    """Whether two extracted answers are the same for voting (see the module doc)."""
    if equivalence == "exact":
        return a.strip() == b.strip()
    if normalize_answer(a) == normalize_answer(b):
        return True
    try:
        return math_equal(a, b)
    except ValueError:  # ``b`` is no mathematical expression: only the text comparison applies
        return False


def cluster_answers(answers: Sequence[str | None], equivalence: str = "math") -> list[int | None]:
    """A cluster label per answer (0, 1, … in order of first appearance; ``None`` for no answer).

    An answer joins the first cluster whose first member it equals (``same_answer``).
    """
    if equivalence not in EQUIVALENCES:
        raise ValueError(f"equivalence={equivalence!r} is not one of {', '.join(EQUIVALENCES)}")
    representatives: list[str] = []
    labels: list[int | None] = []
    for answer in answers:
        if answer is None or not str(answer).strip():
            labels.append(None)
            continue
        text = str(answer)
        label = next(
            (k for k, rep in enumerate(representatives) if same_answer(text, rep, equivalence)), None
        )
        if label is None:
            label = len(representatives)
            representatives.append(text)
        labels.append(label)
    return labels


def majority_cluster(labels: Sequence[int | None]) -> int | None:
    """The most frequent label; a tie goes to the label seen first (TTRL's ``Counter.most_common``)."""
    counts = Counter(label for label in labels if label is not None)
    return counts.most_common(1)[0][0] if counts else None


def _group_labels(reward: str, group_id, extracted_answer, size: int, equivalence: str):
    groups = groups_of(need_column(reward, "group_id", group_id, size))
    answers = need_column(reward, "extracted_answer", extracted_answer, size)
    for indices in groups.values():
        yield indices, cluster_answers([answers[i] for i in indices], equivalence)


@rewards.register("ttrl")
def ttrl_reward(
    completions: list[str],
    prompts: list[str],
    group_id: Sequence[Any] | None = None,
    extracted_answer: Sequence[str | None] | None = None,
    equivalence: str = "math",
    **columns: Any,
) -> list[float]:
    """TTRL majority vote (Zuo et al. 2025, *TTRL: Test-Time Reinforcement Learning*, arXiv:2504.16084).

    ``[B]``: 1.0 when the completion's answer equals its group's majority answer, else 0.0; a
    completion without an answer gets 0 and does not vote. A tie between answers goes to the one
    that appears first in the group. No gold answer is read.
    """
    out = [0.0] * len(completions)
    for indices, labels in _group_labels("ttrl", group_id, extracted_answer, len(completions), equivalence):
        majority = majority_cluster(labels)
        for index, label in zip(indices, labels, strict=True):
            out[index] = float(label is not None and label == majority)
    return out


@rewards.register("empo")
def empo_reward(
    completions: list[str],
    prompts: list[str],
    group_id: Sequence[Any] | None = None,
    extracted_answer: Sequence[str | None] | None = None,
    equivalence: str = "math",
    max_entropy_ratio: float | None = None,
    **columns: Any,
) -> list[float | None]:
    """EMPO semantic-cluster frequency (Zhang et al. 2025, *Right Question is Already Half the Answer:
    Fully Unsupervised LLM Reasoning Incentivization*, arXiv:2504.05812).

    ``[B]``: ``r_i = |C(i)| / G``, the share of the group (size ``G``, answerless members included)
    whose answer is in the completion's cluster; answers ``[a, a, b, c]`` give ``[.5, .5, .25, .25]``.
    A completion without an answer gets 0. Maximising it minimises the group's semantic entropy.

    GUESS: ``max_entropy_ratio`` — when set, a group whose semantic entropy
    ``−Σ_k p_k log p_k`` (over its answer clusters) exceeds ``max_entropy_ratio · log G`` is too
    uncertain to learn from: its members get ``None`` (no opinion), hence zero advantage. Off by default.
    """
    out: list[float | None] = [0.0] * len(completions)
    for indices, labels in _group_labels("empo", group_id, extracted_answer, len(completions), equivalence):
        size = len(indices)
        counts = Counter(label for label in labels if label is not None)
        if max_entropy_ratio is not None and size > 1 and counts:
            total = sum(counts.values())
            entropy = -sum(c / total * math.log(c / total) for c in counts.values())
            if entropy > max_entropy_ratio * math.log(size):
                for index in indices:
                    out[index] = None
                continue
        for index, label in zip(indices, labels, strict=True):
            out[index] = 0.0 if label is None else counts[label] / size
    return out


def char_ngram_tfidf(texts: Sequence[str], n: int = 3) -> list[dict[str, float]]:
    """L2-normalised TF-IDF vectors over character ``n``-grams, the IDF taken within ``texts``.

    A cheap, offline text embedding: cosine similarity of two vectors is their dot product.
    """
    grams = [Counter(_ngrams(text, n)) for text in texts]
    document_frequency = Counter(gram for counts in grams for gram in counts)
    size = len(texts)
    vectors = []
    for counts in grams:
        vector = {
            g: c * (math.log((1 + size) / (1 + document_frequency[g])) + 1.0) for g, c in counts.items()
        }
        norm = math.sqrt(sum(v * v for v in vector.values()))
        vectors.append({g: v / norm for g, v in vector.items()} if norm > 0 else {})
    return vectors


def _ngrams(text: str, n: int) -> list[str]:
    text = re.sub(r"\s+", " ", text.strip().lower())
    if len(text) < n:
        return [text] if text else []
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(b) < len(a):
        a, b = b, a
    return sum(v * b.get(g, 0.0) for g, v in a.items())


def novelty_scores(texts: Sequence[str], classes: Sequence[int | None], ngram: int = 3) -> list[float]:
    """EVOL-RL novelty ``u_i = 1 − (½·mean sim to the others of its class + ½·max sim to all others)``,
    cosine similarities clipped to [0, 1]. Members with class ``None`` only serve as "others"."""
    vectors = char_ngram_tfidf(texts, ngram)
    size = len(texts)
    sims = [[min(max(cosine(vectors[i], vectors[j]), 0.0), 1.0) for j in range(size)] for i in range(size)]
    out = []
    for i in range(size):
        others = [j for j in range(size) if j != i]
        same = [sims[i][j] for j in others if classes[j] == classes[i]]
        mean_same = sum(same) / len(same) if same else 0.0
        max_all = max((sims[i][j] for j in others), default=0.0)
        out.append(1.0 - (0.5 * mean_same + 0.5 * max_all))
    return out


@rewards.register("evol_rl")
def evol_rl_reward(
    completions: list[str],
    prompts: list[str],
    group_id: Sequence[Any] | None = None,
    extracted_answer: Sequence[str | None] | None = None,
    equivalence: str = "math",
    ngram: int = 3,
    think_end: str | None = "</think>",
    **columns: Any,
) -> list[float]:
    """EVOL-RL majority plus novelty (Zhou et al. 2025, *Evolving Language Models without Labels:
    Majority Drives Selection, Novelty Promotes Variation*, arXiv:2509.15194).

    ``[B]``: the group's majority answer (TTRL vote) marks each completion with an answer as
    majority or minority; one without an answer gets −1. Within each class the novelty
    ``u`` (``novelty_scores``) is min-max normalised to ``ũ``; a majority member gets
    ``0.5 + 0.5·ũ`` ∈ [0.5, 1], a minority member ``−1 + 0.5·ũ`` ∈ [−1, −0.5]. A class of one
    gets 1.0 (majority) or −0.5 (minority); a class whose novelties are all equal gets its
    midpoint (0.75 or −0.75).

    GUESS: the paper embeds each response (the text after ``think_end``, when present) with a
    neural embedding model; here character ``ngram``-gram TF-IDF vectors computed within the group
    stand in for it, so the reward needs nothing beyond the completions.
    """
    out = [0.0] * len(completions)
    for indices, labels in _group_labels(
        "evol_rl", group_id, extracted_answer, len(completions), equivalence
    ):
        majority = majority_cluster(labels)
        classes = [None if label is None else int(label == majority) for label in labels]
        texts = [_after_thinking(completions[i], think_end) for i in indices]
        novelty = novelty_scores(texts, classes, ngram)
        for cls in (1, 0):
            members = [k for k, c in enumerate(classes) if c == cls]
            base, singleton = (0.5, 1.0) if cls == 1 else (-1.0, -0.5)
            if len(members) == 1:
                out[indices[members[0]]] = singleton
                continue
            values = [novelty[k] for k in members]
            low, high = min(values, default=0.0), max(values, default=0.0)
            for k in members:
                scaled = 0.5 if high - low < 1e-12 else (novelty[k] - low) / (high - low)
                out[indices[k]] = base + 0.5 * scaled
        for k, label_class in enumerate(classes):
            if label_class is None:
                out[indices[k]] = -1.0
    return out


def _after_thinking(text: str, marker: str | None) -> str:
    if marker and marker in text:
        return text.rsplit(marker, 1)[1]
    return text
