"""The shared per-prompt statistics: SPO's Beta tracker, counts and sums, observations from a batch."""

import math

import pytest
import torch

from grpozoo.selectors.trackers import BetaTracker, PromptStats, Selector, group_observations, weighted_sample


def test_beta_tracker_with_rho_one_is_the_beta_posterior_count_update():
    tracker = BetaTracker(3, prior_alpha=0.5, prior_beta=0.5)
    tracker.observe(1, [1.0, 1.0, 1.0, 0.0], rho=1.0)
    assert tracker.alpha.tolist() == [0.5, 3.5, 0.5] and tracker.beta.tolist() == [0.5, 1.5, 0.5]
    assert tracker.mean()[1].item() == pytest.approx(3.5 / 5.0)


def test_beta_tracker_discounts_every_observation_like_spo():
    tracker = BetaTracker(1, 0.5, 0.5)
    tracker.observe(0, [1.0, 0.0], rho=0.96)
    # α: 0.5 → 0.96·0.5 + 1 = 1.48 → 0.96·1.48 + 0 = 1.4208; β: 0.5 → 0.48 → 0.4608 + 1 = 1.4608
    assert tracker.alpha.item() == pytest.approx(1.4208) and tracker.beta.item() == pytest.approx(1.4608)


def test_toward_prior_decay_returns_to_the_prior_and_once_discounts_per_visit():
    tracker = BetaTracker(1, 1.0, 1.0, toward_prior=True)
    tracker.observe(0, [1.0] * 5, rho=0.9, once=True)  # evidence 0 → 0.9·0 + 5 successes
    assert (tracker.alpha.item(), tracker.beta.item()) == (6.0, 1.0)
    tracker.observe(0, [0.0, 0.0], rho=0.9, once=True)  # evidence (5, 0) → (4.5, 0) + (0, 2)
    assert tracker.alpha.item() == pytest.approx(5.5) and tracker.beta.item() == pytest.approx(3.0)
    for _ in range(1000):
        tracker.decay(0.99)
    assert tracker.mean().item() == pytest.approx(0.5, abs=1e-3)


def test_prompt_stats_counts_sums_std_and_latest():
    stats = PromptStats(2)
    stats.observe(0, [1.0, 0.0])
    stats.observe(0, [1.0, 1.0])
    assert stats.count.tolist() == [4, 0]
    assert stats.latest[0].item() == 1.0 and math.isnan(stats.latest[1].item())
    assert stats.std()[0].item() == pytest.approx(torch.tensor([1.0, 0.0, 1.0, 1.0]).std().item())
    assert math.isnan(stats.std()[1].item())


def test_group_observations_follow_the_row_ids_and_drop_missing_rewards(groups_batch):
    batch = groups_batch([(7, [1.0, 0.0]), (3, [0.5, 2.0])])
    batch.task_scores[3] = float("nan")
    seen = list(group_observations(batch, "task_score", clamp=True))
    assert [(row, values) for row, values, _ in seen] == [(7, [1.0, 0.0]), (3, [0.5])]
    raw = list(group_observations(batch, "reward", clamp=False))
    assert raw[1][1] == [0.5, 2.0]
    batch.task_scores[2] = float("nan")
    assert [row for row, _, _ in group_observations(batch, "task_score", clamp=True)] == [7]


def test_weighted_sample_is_distinct_and_seeded():
    weights = torch.tensor([1.0, 0.0, 3.0, 2.0])
    a = weighted_sample(weights, 3, torch.Generator().manual_seed(1))
    b = weighted_sample(weights, 3, torch.Generator().manual_seed(1))
    assert a == b and sorted(a) == [0, 2, 3]


def test_restoring_state_for_another_number_of_rows_names_the_fix():
    small, big = BetaTracker(3, 0.5, 0.5), BetaTracker(4, 0.5, 0.5)
    with pytest.raises(ValueError, match="task.train_size"):
        big.load_state_dict(small.state_dict())


def test_a_selector_must_implement_observe(groups_batch):
    class Forgetful(Selector):
        def next(self, k):
            return list(range(k))

    with pytest.raises(TypeError, match="observe"):
        Forgetful(4)

    class Recording(Forgetful):
        def observe(self, row, values, indices, batch):
            self.seen.append((row, values, indices.tolist()))

        def after_update(self, batch):
            self.seen.append("done")

    selector = Recording(4)
    selector.seen = []
    selector.update([2, 0], groups_batch({2: [1.0, 0.0], 0: [0.5]}))
    assert selector.seen == [(2, [1.0, 0.0], [0, 1]), (0, [0.5], [2]), "done"]
