"""Single-stream SPO: the per-prompt Beta tracker, its forgetting factor and the global
normalisation, by hand."""

import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.advantages.trackers import (
    beta_tracker_update,
    rho_from_divergence,
    spo_tracker_advantage,
)
from grpozoo.registry import advantages
from tests.factories import make_rollouts


def _step(rewards, rows, state, **params):
    ctx = make_rollouts(rewards, group_ids=list(range(len(rewards))), row_ids=torch.tensor(rows), state=state)
    return spo_tracker_advantage(ctx.rewards, ctx.group_ids, ctx, **params)


def test_spo_tracker_is_registered():
    assert advantages.get("spo_tracker") is spo_tracker_advantage


def test_zero_divergence_gives_rho_096():
    assert rho_from_divergence(0.0) == pytest.approx(0.96)
    torch.testing.assert_close(rho_from_divergence(torch.tensor([0.0])), torch.tensor([0.96]))


def test_rho_halves_every_d_half_and_is_clipped():
    # 2^(-0.06/0.06) = 0.5, 2^(-0.12/0.06) = 0.25 inside wide clips; a huge D hits rho_min
    assert rho_from_divergence(0.06, d_half=0.06, rho_min=0.1, rho_max=1.0) == pytest.approx(0.5)
    assert rho_from_divergence(0.12, d_half=0.06, rho_min=0.1, rho_max=1.0) == pytest.approx(0.25)
    assert rho_from_divergence(10.0, rho_min=0.875) == pytest.approx(0.875)


def test_rho_one_is_the_beta_posterior_count_update():
    alpha, beta = 0.5, 0.5
    for r in [1.0, 0.0, 1.0, 1.0]:
        alpha, beta = beta_tracker_update(alpha, beta, r, rho=1.0)
    assert (alpha, beta) == (3.5, 1.5)  # prior + 3 successes, prior + 1 failure


def test_tracker_in_state_with_rho_one_counts_successes_across_steps():
    state = {}
    for r in [1.0, 0.0, 1.0, 1.0]:
        _step([r], [7], state, rho=1.0)
    assert state["spo_tracker"]["alpha"][7] == 3.5
    assert state["spo_tracker"]["beta"][7] == 1.5


def test_default_rho_discounts_old_counts():
    state = {}
    _step([1.0], [3], state)
    # 0.96 x 0.5 + 1 = 1.48, 0.96 x 0.5 + 0 = 0.48
    assert state["spo_tracker"]["alpha"][3] == pytest.approx(1.48)
    assert state["spo_tracker"]["beta"][3] == pytest.approx(0.48)


def test_baseline_is_the_estimate_before_this_observation():
    state = {}
    _step([1.0, 0.0], [0, 1], state, rho=1.0)  # prompt 0: (1.5, 0.5) -> p=0.75; prompt 1: p=0.25
    out = _step([1.0, 0.0, 1.0], [0, 1, 2], state, rho=1.0)
    # A_raw = r - p_before = [1 - .75, 0 - .25, 1 - .5] = [.25, -.25, .5]; mean 1/6,
    # centred [1/12, -5/12, 4/12], unbiased var (1 + 25 + 16)/144/2 = 42/288
    std = math.sqrt(42 / 288)
    torch.testing.assert_close(out, torch.tensor([1 / 12, -5 / 12, 4 / 12]) / std)
    # had the current reward leaked into p (p = 2.5/3), row 0 would get a smaller value
    assert state["spo_tracker"]["alpha"][0] == 2.5


def test_repeated_prompt_in_one_batch_uses_the_same_pre_update_baseline():
    state = {}
    out = _step([1.0, 0.0], [5, 5], state, rho=1.0)
    # both rows see p = 0.5: A_raw = [.5, -.5] -> normalised [0.7071, -0.7071]
    torch.testing.assert_close(out, torch.tensor([1.0, -1.0]) / math.sqrt(2))
    assert (state["spo_tracker"]["alpha"][5], state["spo_tracker"]["beta"][5]) == (1.5, 1.5)


@settings(max_examples=50, deadline=None)
@given(
    rewards=st.lists(st.sampled_from([0.0, 1.0]), min_size=2, max_size=16),
    rows=st.lists(st.integers(0, 5), min_size=16, max_size=16),
)
def test_globally_normalised_mean_zero_std_one(rewards, rows):
    state = {}
    _step(rewards, rows[: len(rewards)], state)
    out = _step(rewards, rows[: len(rewards)], state)
    assert torch.isfinite(out).all()
    assert out.mean().item() == pytest.approx(0.0, abs=1e-5)
    if out.abs().max() > 1e-3:  # otherwise every baseline-centred reward was equal (up to rounding)
        assert out.std().item() == pytest.approx(1.0, abs=1e-4)


def test_single_row_and_ctx_free_call_are_finite():
    assert _step([1.0], [0], {}).tolist() == [0.0]
    out = spo_tracker_advantage(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0, 1, 2]))
    assert torch.isfinite(out).all()


def test_state_survives_a_weights_only_checkpoint():
    state = {}
    _step([1.0, 0.0], [0, 1], state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True) == state
