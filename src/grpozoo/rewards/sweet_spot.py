"""Tiered ("sweet spot") rewards: a solution's quality mapped onto a few progressively amplified
tiers instead of a binary verdict (Wu et al. 2026, "SSL: Sweet Spot Learning for Differentiated
Guidance in Agentic Optimization", arXiv:2601.22491).

The quality of a completion is a number in [0, 1] (1: the target itself); ``sweet_spot_tier``
maps it onto ``tiers`` by ``thresholds``. Both are monotone, so the tiers keep the order of any
two outcomes (equal qualities share a tier, a better one never gets a lower tier) and the best
solution gets the top tier.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Literal

from grpozoo.registry import rewards
from grpozoo.rewards.common import correct_flags, need_column

_BELOW_ONE = math.nextafter(1.0, 0.0)
_FRACTION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_number(text: Any) -> float | None:
    """A plain number (``"1,234.5"``, ``"-3"``, ``"3/4"``) as a float; ``None`` for anything else."""
    if text is None:
        return None
    value = str(text).strip().replace(",", "").rstrip(".")
    fraction = _FRACTION.match(value)
    try:
        if fraction:
            denominator = float(fraction.group(2))
            return None if denominator == 0 else float(fraction.group(1)) / denominator
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def distance_quality(predicted: float, target: float, width: float = 0.1) -> float:
    """Closeness in [0, 1] of a numeric answer to its target: a Gaussian zone
    ``exp(−½ (d / width)²)`` of the relative distance ``d = |pred − target| / max(|target|, 1)``;
    1 exactly on target, falling with the distance."""
    distance = abs(predicted - target) / max(abs(target), 1.0)
    return math.exp(-0.5 * (distance / width) ** 2)


def sweet_spot_tier(quality: float, thresholds: Sequence[float], tiers: Sequence[float]) -> float:
    """The tier of a quality in [0, 1]: ``tiers[k]`` with ``k`` the number of ``thresholds`` it
    reaches (``quality >= threshold``). ``thresholds`` increase and ``tiers`` (one more than the
    thresholds) do not decrease, so the map is monotone in quality."""
    return float(tiers[sum(quality >= t for t in thresholds)])


def check_tiers(reward: str, thresholds: Sequence[float], tiers: Sequence[float]) -> None:
    if len(tiers) != len(thresholds) + 1:
        raise ValueError(
            f"reward {reward!r}: {len(tiers)} tiers need {len(tiers) - 1} thresholds, got {len(thresholds)}"
        )
    if any(b <= a for a, b in zip(thresholds, thresholds[1:], strict=False)):
        raise ValueError(f"reward {reward!r}: thresholds={list(thresholds)} must increase")
    if any(b < a for a, b in zip(tiers, tiers[1:], strict=False)):
        raise ValueError(f"reward {reward!r}: tiers={list(tiers)} must not decrease (the order of outcomes)")


@rewards.register("ssl")
def ssl_reward(
    completions: list[str],
    prompts: list[str],
    task_score: Sequence[float] | None = None,
    answer: Sequence[Any] | None = None,
    extracted_answer: Sequence[str | None] | None = None,
    quality: Literal["distance", "task_score"] = "distance",
    tiers: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
    thresholds: Sequence[float] = (0.5, 0.9, 1.0),
    width: float = 0.1,
    correct_threshold: float = 1.0,
    **columns: Any,
) -> list[float]:
    """SSL tiered sweet-spot reward (Wu et al. 2026, "SSL: Sweet Spot Learning for Differentiated
    Guidance in Agentic Optimization", arXiv:2601.22491).

    ``[B]``: ``sweet_spot_tier(q_i)``, the tier of each completion's quality ``q_i`` in [0, 1].
    ``quality="distance"`` (the paper's distance-tiered zones, here for numeric answers): ``q`` is
    the Gaussian closeness (``distance_quality``, ``width``) of the extracted answer to the
    ``answer`` column; a completion the task marks correct (``task_score >= correct_threshold``)
    has ``q = 1``; one without a numeric answer, or whose gold is not numeric, has ``q = 1`` when
    correct and 0 otherwise; a wrong answer's ``q`` stays below 1. ``quality="task_score"`` (milestones): ``q`` is the task's own partial
    score, clipped to [0, 1]. Only ``q = 1`` reaches the top tier while the last threshold is 1.

    GUESS: the tiers ``[0, .25, .5, 1]`` and thresholds ``[.5, .9, 1]`` (the paper's K = 4 zones,
    boundaries not given in the abstract), the Gaussian ``width`` 0.1 of the relative distance.
    """
    check_tiers("ssl", thresholds, tiers)
    size = len(completions)
    correct = correct_flags("ssl", task_score, size, correct_threshold)
    if quality == "task_score":
        scores = need_column("ssl", "task_score", task_score, size)
        qualities = [min(max(float(s), 0.0), 1.0) for s in scores]
    elif quality == "distance":
        golds = need_column("ssl", "answer", answer, size)
        predicted = need_column("ssl", "extracted_answer", extracted_answer, size)
        qualities = []
        for i in range(size):
            guess, gold = parse_number(predicted[i]), parse_number(golds[i])
            if correct[i] or guess is None or gold is None:
                qualities.append(float(correct[i]))
            else:
                # the top of the scale is the verifier's: a wrong answer stays below it
                qualities.append(min(distance_quality(guess, gold, width), _BELOW_ONE))
    else:
        raise ValueError(f"reward 'ssl': quality={quality!r} is not one of distance, task_score")
    return [sweet_spot_tier(q, thresholds, tiers) for q in qualities]
