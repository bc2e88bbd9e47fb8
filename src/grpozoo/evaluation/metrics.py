"""Estimators over n samples per prompt: pass@k, pass^k, maj@k, calibration AUC, and summaries.

Every estimator here is exact for the n samples drawn: it is the expected value of the metric for
k samples drawn without replacement from those n (so it does not depend on their order).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def powers_of_two_up_to(n: int) -> list[int]:
    """The k at which pass@k, maj@k and pass^k are reported: 1, 2, 4, … ≤ n, and n itself."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    if n >= 1 and ks[-1] != n:
        ks.append(n)
    return ks


def _check_k(name: str, n: int, k: int) -> None:
    if k < 1:
        raise ValueError(f"{name}: k must be at least 1, got {k}")
    if k > n:
        raise ValueError(f"{name.replace('k', str(k))} needs at least {k} samples per prompt, got {n}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): the chance that at least one of k samples drawn without
    replacement from n, of which c are right, is right: ``1 − C(n−c, k) / C(n, k)``."""
    _check_k("pass@k", n, k)
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased pass^k (τ-bench, Yao et al. 2024): the chance that *all* k samples drawn without
    replacement from n, of which c are right, are right: ``C(c, k) / C(n, k)``. It measures
    reliability where pass@k measures coverage; pass^1 = pass@1 = c / n."""
    _check_k("pass^k", n, k)
    return math.comb(c, k) / math.comb(n, k)


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool | float], k: int) -> float:
    """Majority-vote accuracy maj@k of one prompt: the expected credit of the most frequent
    extracted answer among k samples drawn without replacement from the n given.

    ``answers[i]`` is sample i's extracted answer (``None``: no answer found, which casts no vote)
    and ``correct[i]`` its verifier verdict. The credit of an answer is the share of its samples
    the verifier judged right (1 or 0 when the verifier is consistent). A tie between the most
    frequent answers is broken uniformly at random (each tied answer gets an equal share), and a
    draw in which no sample has an answer earns 0. Computed exactly by counting draws, so it does
    not depend on the order of the samples; maj@1 is the accuracy over all samples when every
    right sample has an answer.
    """
    n = len(answers)
    if len(correct) != n:
        raise ValueError(f"maj@k: {n} answers but {len(correct)} verdicts")
    _check_k("maj@k", n, k)
    counts = Counter(a for a in answers if a is not None)
    credit = {
        a: sum(float(c) for x, c in zip(answers, correct, strict=True) if x == a) / m
        for a, m in counts.items()
    }
    classes = list(counts)
    abstain = n - sum(counts.values())
    total = 0.0
    for a in classes:
        if credit[a] == 0.0:
            continue
        others = [counts[b] for b in classes if b != a]
        for j in range(1, min(counts[a], k) + 1):
            # ways[s][t]: draws of s samples from the other answers and the abstentions in which
            # every other answer gets fewer than j votes, except t answers that get exactly j
            ways = _draws_below(others, abstain, k - j, j)
            wins = sum(w / (t + 1) for t, w in enumerate(ways))
            total += credit[a] * math.comb(counts[a], j) * wins
    return total / math.comb(n, k)


def _draws_below(others: list[int], abstain: int, size: int, j: int) -> list[float]:
    """``out[t]``: the number of ways to draw ``size`` samples from answer classes of sizes
    ``others`` and ``abstain`` answer-less samples such that no class gets more than ``j`` and
    exactly ``t`` classes get ``j``."""
    # table[s][t] over the classes seen so far
    table = [[0] * (len(others) + 1) for _ in range(size + 1)]
    for s in range(min(abstain, size) + 1):
        table[s][0] = math.comb(abstain, s)
    for m in others:
        new = [[0] * (len(others) + 1) for _ in range(size + 1)]
        for s in range(size + 1):
            for t in range(len(others) + 1):
                if table[s][t] == 0:
                    continue
                for i in range(0, min(m, j, size - s) + 1):
                    new[s + i][t + (i == j)] += table[s][t] * math.comb(m, i)
        table = new
    return [float(w) for w in table[size]]


def calibration_auc(confidences: Sequence[float], correct: Sequence[bool]) -> float:
    """How well a confidence separates right from wrong samples: the area under the ROC curve,
    i.e. the chance that a random right sample has a higher confidence than a random wrong one,
    ties counting 1/2 (Mann–Whitney U / (n_right · n_wrong)). 1 is perfect separation, 0.5 is
    chance. NaN when every sample is right or every sample is wrong (no pair to compare)."""
    if len(confidences) != len(correct):
        raise ValueError(f"calibration_auc: {len(confidences)} confidences but {len(correct)} verdicts")
    right = [float(x) for x, ok in zip(confidences, correct, strict=True) if ok]
    wrong = [float(x) for x, ok in zip(confidences, correct, strict=True) if not ok]
    if not right or not wrong:
        return math.nan
    # rank-sum with average ranks for ties: O(n log n)
    order = sorted([(x, 1) for x in right] + [(x, 0) for x in wrong])
    rank_sum, i = 0.0, 0
    while i < len(order):
        j = i
        while j < len(order) and order[j][0] == order[i][0]:
            j += 1
        average_rank = (i + 1 + j) / 2  # ranks i+1 … j
        rank_sum += average_rank * sum(label for _, label in order[i:j])
        i = j
    u = rank_sum - len(right) * (len(right) + 1) / 2
    return u / (len(right) * len(wrong))


def calibration_auc_within_groups(
    confidences: Sequence[float], correct: Sequence[bool], groups: Sequence[int]
) -> float:
    """:func:`calibration_auc` over (right, wrong) pairs of the *same* prompt only, so that prompt
    difficulty cannot make a model look calibrated (the pairing of CAPO, Wang et al. 2026,
    "Calibration-Aware Policy Optimization for Reasoning LLMs", arXiv:2604.12632): every
    such pair counts once, pooled over prompts. NaN when no prompt has both a right and a wrong
    sample."""
    by_group: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(int(g), []).append(i)
    wins = pairs = 0.0
    for members in by_group.values():
        right = [i for i in members if correct[i]]
        wrong = [i for i in members if not correct[i]]
        if right and wrong:
            auc = calibration_auc([confidences[i] for i in members], [bool(correct[i]) for i in members])
            wins += auc * len(right) * len(wrong)
            pairs += len(right) * len(wrong)
    return wins / pairs if pairs else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between order statistics
    (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def histogram(
    values: Sequence[float], bins: int = 10, upper: float | None = None
) -> dict[str, list[float] | list[int]]:
    """``{"edges": [bins + 1], "counts": [bins]}`` of equal-width bins from 0 to ``upper`` (default
    the largest value); the last bin includes its right edge."""
    top = float(upper if upper is not None else max(values, default=1.0))
    top = top if top > 0 else 1.0
    width = top / bins
    counts = [0] * bins
    for v in values:
        counts[min(int(v / width), bins - 1) if v >= 0 else 0] += 1
    return {"edges": [round(i * width, 6) for i in range(bins + 1)], "counts": counts}


def mean_and_stderr(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n))."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)
