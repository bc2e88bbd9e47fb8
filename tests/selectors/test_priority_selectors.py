"""SPO priority, VADE Thompson sampling and MMR1 variance-aware sampling."""

from collections import Counter

import pytest
import torch

from grpozoo.algos.advantages.trackers import spo_tracker_advantage
from grpozoo.registry import selectors
from grpozoo.selectors.priority import outcome_variance, spo_priority_weight, trajectory_diversity


def frequencies(draw, n: int, num_rows: int) -> list[float]:
    counts = Counter(row for _ in range(n) for row in draw())
    return [counts[r] / n for r in range(num_rows)]


# ----------------------------------------------------------------------------- SPO
def test_spo_weight_is_largest_at_one_half_and_never_below_the_floor():
    assert spo_priority_weight(0.5) == pytest.approx(0.55)
    assert spo_priority_weight(0.0) == spo_priority_weight(1.0) == pytest.approx(0.05)
    assert spo_priority_weight(0.2) == pytest.approx(0.4 + 0.05)  # √(0.2·0.8) = 0.4
    grid = torch.linspace(0, 1, 101, dtype=torch.float64)
    weights = spo_priority_weight(grid)
    assert int(weights.argmax()) == 50 and float(weights.min()) >= 0.05


def test_spo_tracker_with_rho_one_counts_successes_and_failures(groups_batch):
    selector = selectors.get("spo_priority")(4, rho=1.0)
    selector.update([2], groups_batch({2: [1.0, 1.0, 1.0, 0.0]}))
    assert selector.tracker.alpha[2].item() == 3.5 and selector.tracker.beta[2].item() == 1.5


def test_spo_selector_tracks_exactly_what_the_spo_advantage_tracks(groups_batch):
    """With signal="reward" the selector's Beta tracker and the spo_tracker advantage's agree."""
    batch = groups_batch([(3, [1.0]), (0, [0.0]), (3, [0.0]), (5, [1.0])], state={})
    selector = selectors.get("spo_priority")(6, rho=0.96, signal="reward")
    for _ in range(3):
        spo_tracker_advantage(batch.rewards, batch.group_ids, batch, rho=0.96)
        selector.update([], batch)
    state = batch.state["spo_tracker"]
    for row in (0, 3, 5):
        assert selector.tracker.alpha[row].item() == pytest.approx(state["alpha"][row])
        assert selector.tracker.beta[row].item() == pytest.approx(state["beta"][row])


def test_spo_sampling_frequency_is_proportional_to_the_weight(groups_batch):
    selector = selectors.get("spo_priority")(3, rho=1.0, seed=0)
    selector.update([], groups_batch({1: [1.0] * 30, 2: [1.0] * 3 + [0.0]}))
    weights = selector.weights()
    expected = (weights / weights.sum()).tolist()
    observed = frequencies(lambda: selector.next(1), 20_000, 3)
    assert observed == pytest.approx(expected, abs=0.01)
    assert expected[0] > expected[2] > expected[1]  # p̂ = 0.5 > 0.78 > 0.98


# ----------------------------------------------------------------------------- VADE
def test_vade_rarely_selects_a_prompt_that_always_succeeds(groups_batch):
    selector = selectors.get("vade")(10, seed=0, pool_factor=0, global_decay=1.0)
    selector.update([], groups_batch({0: [1.0] * 20, 1: [1.0] * 10 + [0.0] * 10}))
    observed = frequencies(lambda: selector.next(1), 2000, 10)
    assert observed[0] < 0.01  # 0.1 under uniform sampling
    assert observed[1] > 0.1  # a well-explored 50/50 prompt beats the uncertain unseen ones


def test_vade_decay_moves_an_unobserved_posterior_back_to_the_prior(groups_batch):
    selector = selectors.get("vade")(3, prior_alpha=1.0, prior_beta=1.0, local_decay=0.9, global_decay=0.99)
    selector.update([], groups_batch({0: [1.0] * 5}))
    assert selector.tracker.mean()[0].item() == pytest.approx(6 / 7)
    means = []
    for _ in range(100):
        selector.update([], groups_batch({1: [1.0, 0.0]}))  # prompt 0 is not observed
        means.append(selector.tracker.mean()[0].item())
    assert all(a > b > 0.5 for a, b in zip(means, means[1:], strict=False))
    alpha = 1 + 5 * 0.99**100  # the evidence above the prior shrinks by 0.99 per step
    assert means[-1] == pytest.approx(alpha / (alpha + 1.0))
    assert means[-1] == pytest.approx(0.738914, abs=1e-6)  # 2.83016 / 3.83016


def test_vade_fast_decay_discounts_old_evidence_when_a_prompt_is_seen_again(groups_batch):
    selector = selectors.get("vade")(2, local_decay=0.9, global_decay=1.0)
    selector.update([], groups_batch({0: [1.0] * 5}))
    selector.update([], groups_batch({0: [0.0, 0.0]}))
    assert selector.tracker.alpha[0].item() == pytest.approx(1 + 0.9 * 5)
    assert selector.tracker.beta[0].item() == pytest.approx(1 + 2)


def test_vade_is_seeded_and_deterministic(groups_batch):
    batch = groups_batch({0: [1.0, 0.0], 3: [1.0, 1.0], 7: [0.0, 0.0]})
    picks = []
    for seed in (5, 5, 6):
        selector = selectors.get("vade")(20, seed=seed)
        selector.update([], batch)
        picks.append([selector.next(4) for _ in range(5)])
    assert picks[0] == picks[1] and picks[0] != picks[2]
    assert all(len(set(p)) == 4 for p in picks[0])


def test_vade_candidate_pool_is_pool_factor_times_k():
    selector = selectors.get("vade")(100, seed=0, pool_factor=2)
    generator = torch.Generator().manual_seed(0)
    pool = set(torch.randperm(100, generator=generator)[:6].tolist())
    assert set(selector.next(3)) <= pool


# ----------------------------------------------------------------------------- MMR1
def test_outcome_variance_is_largest_at_one_half_and_zero_at_the_ends():
    assert outcome_variance(0.5) == 0.25 and outcome_variance(0.0) == 0 and outcome_variance(1.0) == 0
    assert outcome_variance(0.3) == pytest.approx(0.21)
    grid = torch.linspace(0, 1, 11)
    assert int(outcome_variance(grid).argmax()) == 5


def test_trajectory_diversity_is_the_mean_pairwise_token_set_distance():
    ids = torch.tensor([[1, 2, 3], [1, 2, 4], [7, 8, 9]])
    mask = torch.ones_like(ids)
    # {1,2,3} vs {1,2,4}: 1 − 2/4 = 0.5; each vs {7,8,9}: 1
    assert trajectory_diversity(ids, mask) == pytest.approx((0.5 + 1 + 1) / 3)
    assert trajectory_diversity(ids[:1].repeat(3, 1), mask) == 0.0
    assert trajectory_diversity(ids[:1], mask[:1]) == 0.0  # a group of one
    padded = torch.tensor([[1, 2, 0], [1, 2, 5]])
    assert trajectory_diversity(padded, torch.tensor([[1, 1, 0], [1, 1, 0]])) == 0.0  # padding ignored


def mmr1_with_zero_scores(batch_of, fraction: float, seed: int = 0):
    """Rows 0-4 seen with all-correct identical completions (VPS = 0); rows 5-9 unseen (largest VPS)."""
    selector = selectors.get("mmr1_vas")(10, seed=seed, fraction=fraction)
    selector.update([], batch_of({row: [1.0, 1.0] for row in range(5)}))
    assert selector.scores()[:5].tolist() == [0.0] * 5 and selector.scores()[5:].tolist() == [0.5] * 5
    return selector


def test_mmr1_with_lambda_zero_samples_uniformly(groups_batch):
    selector = mmr1_with_zero_scores(groups_batch, fraction=0.0)
    observed = frequencies(lambda: selector.next(2), 3000, 10)
    assert observed == pytest.approx([0.2] * 10, abs=0.03)


def test_mmr1_zero_vps_prompt_appears_only_through_the_uniform_share(groups_batch):
    never = mmr1_with_zero_scores(groups_batch, fraction=1.0)
    assert not any(row < 5 for _ in range(500) for row in never.next(2))
    mixed = mmr1_with_zero_scores(groups_batch, fraction=0.5)
    assert any(row < 5 for _ in range(500) for row in mixed.next(2))


def test_mmr1_expected_share_drawn_by_vps_is_lambda(groups_batch):
    selector = mmr1_with_zero_scores(groups_batch, fraction=0.3)
    shares = []
    for _ in range(4000):
        rows = selector.next(4)
        assert len(set(rows)) == 4
        shares.append(selector.last_vps_count / 4)
    assert sum(shares) / len(shares) == pytest.approx(0.3, abs=0.01)


def test_mmr1_scores_are_refreshed_every_refresh_every_steps(groups_batch):
    selector = selectors.get("mmr1_vas")(4, fraction=1.0, refresh_every=3)
    selector.next(1)  # snapshot taken: every row unseen
    selector.update([], groups_batch({0: [1.0, 1.0]}))  # row 0 now has VPS 0
    selector.next(1), selector.next(1)
    assert selector.snapshot[0].item() == 0.5  # still the stale snapshot
    selector.next(1)
    assert selector.snapshot[0].item() == 0.0


def test_mmr1_rejects_a_fraction_outside_zero_one():
    with pytest.raises(ValueError, match="fraction"):
        selectors.get("mmr1_vas")(4, fraction=1.5)


def test_sampling_selectors_need_enough_rows():
    with pytest.raises(ValueError, match="prompts_per_step=5 exceeds the task's 3 train rows"):
        selectors.get("spo_priority")(3).next(5)


def test_unknown_signal_is_rejected():
    with pytest.raises(ValueError, match="signal='score'"):
        selectors.get("vade")(3, signal="score")
