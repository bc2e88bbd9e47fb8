"""FG-ExPO's Gaussian curriculum."""

import math
from collections import Counter

import pytest

from grpozoo.registry import selectors
from grpozoo.selectors.curriculum import gaussian_curriculum_weight


def test_weight_is_largest_at_one_half_and_symmetric():
    assert gaussian_curriculum_weight(0.5) == 1.0
    assert gaussian_curriculum_weight(0.3) == pytest.approx(math.exp(-0.5), rel=1e-12)  # 0.6065
    assert gaussian_curriculum_weight(0.7) == pytest.approx(gaussian_curriculum_weight(0.3), rel=1e-12)
    assert gaussian_curriculum_weight(0.1) == pytest.approx(math.exp(-2.0))  # 0.16 / (2·0.04)
    grid = [i / 100 for i in range(101)]
    assert max(grid, key=gaussian_curriculum_weight) == 0.5


def test_prompts_are_drawn_in_proportion_to_the_weight_of_their_latest_accuracy(groups_batch):
    selector = selectors.get("fg_expo")(4, seed=0, sigma=0.2)
    selector.update([], groups_batch({0: [1.0, 0.0], 1: [1.0, 0.0, 0.0, 0.0], 2: [0.0, 0.0]}))
    selector.update([], groups_batch({1: [1.0, 0.0, 1.0, 1.0]}))  # only the latest visit counts: 0.75
    weights = [1.0, math.exp(-(0.25**2) / 0.08), math.exp(-(0.5**2) / 0.08), 1.0]  # row 3 unseen: 0.5
    counts = Counter(selector.next(1)[0] for _ in range(20_000))
    observed = [counts[r] / 20_000 for r in range(4)]
    assert observed == pytest.approx([w / sum(weights) for w in weights], abs=0.01)


def test_fg_expo_rejects_a_non_positive_sigma():
    with pytest.raises(ValueError, match="sigma must be > 0"):
        selectors.get("fg_expo")(3, sigma=0.0)
