"""RiskPO (Ren et al. 2025): risk-measure advantages, bundling and the online quantile tracker, by hand."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.advantages.risk import (
    cvar_advantage,
    mvar_advantage,
    paper_ids_and_scores,
    riskpo_advantage,
    rvar_advantage,
    update_quantile,
)
from grpozoo.registry import advantages
from tests.factories import make_rollouts

# a worked case: q_d=1, q_u=4, alpha=.2, beta=.8, w=1.5
Q_LOW, Q_HIGH, ALPHA, BETA, W = 1.0, 4.0, 0.2, 0.8, 1.5
SCORES = torch.tensor([5.0, 4.0, 2.0, 0.0])
# RVaR = [max(S-1,0) - max(S-4,0) + 1 - 4] / 0.6: S=5 -> (4-1-3)/.6 = 0, S=4 -> (3-0-3)/.6 = 0,
# S=2 -> (1-3)/.6 = -3.333, S=0 -> -3/.6 = -5
RVAR = [0.0, 0.0, -2 / 0.6, -5.0]
# CVaR = -max(1-S, 0)/0.2: only S=0 is below q_d -> -5
CVAR = [0.0, 0.0, 0.0, -5.0]
# MVaR = (1.5 CVaR + RVaR)/2.5: S=2 -> -3.333/2.5 = -1.333, S=0 -> (-7.5 - 5)/2.5 = -5
MVAR = [0.0, 0.0, -4 / 3, -5.0]


def test_riskpo_is_registered():
    assert advantages.get("riskpo") is riskpo_advantage


def test_risk_measures_match_the_entry_numbers():
    torch.testing.assert_close(rvar_advantage(SCORES, Q_LOW, Q_HIGH, ALPHA, BETA), torch.tensor(RVAR))
    torch.testing.assert_close(cvar_advantage(SCORES, Q_LOW, ALPHA), torch.tensor(CVAR))
    torch.testing.assert_close(mvar_advantage(SCORES, Q_LOW, Q_HIGH, ALPHA, BETA, W), torch.tensor(MVAR))


@settings(max_examples=50, deadline=None)
@given(
    q=st.tuples(st.floats(-5, 5), st.floats(0, 5)),
    scores=st.lists(st.floats(-10, 10), min_size=2, max_size=20),
    weight=st.floats(0, 5),
)
def test_advantages_are_non_decreasing_in_the_score(q, scores, weight):
    q_low, q_high = q[0], q[0] + q[1]
    s = torch.tensor(sorted(scores), dtype=torch.float64)
    for out in (
        mvar_advantage(s, q_low, q_high, ALPHA, BETA, weight),
        rvar_advantage(s, q_low, q_high, ALPHA, BETA),
        cvar_advantage(s, q_low, ALPHA),
    ):
        assert (out.diff() >= -1e-9).all()
        assert (out <= 1e-12).all()  # papers above q_u get nothing, never a positive push


def test_quantile_tracker_converges_to_the_empirical_quantile():
    gen = torch.Generator().manual_seed(0)
    seen = []
    q_low, q_high = 3.0, -3.0  # start on the wrong side of each other
    for _ in range(400):
        batch = torch.randn(200, generator=gen, dtype=torch.float64)
        seen.append(batch)
        q_low = update_quantile(q_low, batch, 0.2, lr=0.1)
        q_high = update_quantile(q_high, batch, 0.8, lr=0.1)
    pooled = torch.cat(seen)
    assert q_low == pytest.approx(torch.quantile(pooled, 0.2).item(), abs=0.05)
    assert q_high == pytest.approx(torch.quantile(pooled, 0.8).item(), abs=0.05)


def test_quantile_step_by_hand():
    # 1 of 4 scores below q=1: q + 0.1 (0.2 - 0.25) = 0.995
    assert update_quantile(1.0, SCORES, 0.2, lr=0.1) == pytest.approx(0.995)


def test_bundling_by_hand():
    # groups g0=[1,0], g1=[1,1] form bundle 0; g2=[0,1] is a smaller last bundle (rescaled x2)
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    papers, scores = paper_ids_and_scores(rewards, groups, bundle_size=2)
    # paper (bundle 0, k=0) = 1 + 1, (0, k=1) = 0 + 1, (1, k=0) = 2 x 0, (1, k=1) = 2 x 1
    torch.testing.assert_close(scores, torch.tensor([2.0, 1.0, 2.0, 1.0, 0.0, 2.0], dtype=torch.float64))
    assert papers[0] == papers[2] and papers[1] == papers[3] and len(set(papers.tolist())) == 4


def _five_groups():
    # the k-th completion of each of 5 prompts forms paper k with scores 5, 4, 2, 0
    per_group = [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0]]
    rewards = torch.tensor([float(r) for g in per_group for r in g])
    groups = torch.arange(5).repeat_interleave(4)
    return rewards, groups


def test_estimator_gives_each_completion_its_papers_advantage():
    rewards, groups = _five_groups()
    ctx = make_rollouts(rewards, groups, state={"riskpo": {"q_low": Q_LOW, "q_high": Q_HIGH, "updates": 3}})
    out = riskpo_advantage(rewards, groups, ctx, bundle_size=5, quantile_lr=0.0)
    torch.testing.assert_close(out, torch.tensor(MVAR).repeat(5))
    rvar = riskpo_advantage(rewards, groups, ctx, bundle_size=5, quantile_lr=0.0, mode="rvar")
    torch.testing.assert_close(rvar, torch.tensor(RVAR).repeat(5))


def test_estimator_updates_the_tracker_once_per_call():
    rewards, groups = _five_groups()
    ctx = make_rollouts(rewards, groups, state={"riskpo": {"q_low": Q_LOW, "q_high": Q_HIGH, "updates": 0}})
    riskpo_advantage(rewards, groups, ctx, bundle_size=5, quantile_lr=0.1)
    # scores 5,4,2,0: 1/4 below 1 -> 1 + .1 (.2 - .25) = 0.995; 2/4 below 4 -> 4 + .1 (.8 - .5) = 4.03
    state = ctx.state["riskpo"]
    assert state["q_low"] == pytest.approx(0.995)
    assert state["q_high"] == pytest.approx(4.03)
    assert state["updates"] == 1
    assert all(isinstance(state[k], float) for k in ("q_low", "q_high"))


def test_first_call_starts_from_the_batch_quantiles():
    rewards, groups = _five_groups()
    ctx = make_rollouts(rewards, groups)
    riskpo_advantage(rewards, groups, ctx, bundle_size=5)
    # torch.quantile of [0, 2, 4, 5] (linear): 0.2 -> 0.6 x 2 = 1.2; 0.8 -> 4 + 0.4 x 1 = 4.4
    assert ctx.state["riskpo"]["q_low"] == pytest.approx(1.2)
    assert ctx.state["riskpo"]["q_high"] == pytest.approx(4.4)


def test_degenerate_batches_are_finite():
    for rewards, groups in [
        (torch.ones(6), torch.tensor([0, 0, 1, 1, 2, 2])),
        (torch.tensor([0.3]), torch.tensor([0])),
        (torch.tensor([1.0, 0.0, 1.0]), torch.tensor([4, 9, 9])),
    ]:
        ctx = make_rollouts(rewards, groups)
        for _ in range(2):
            out = riskpo_advantage(rewards, groups, ctx)
            assert out.shape == rewards.shape and torch.isfinite(out).all()


def test_bad_parameters_are_rejected():
    rewards, groups = _five_groups()
    with pytest.raises(ValueError, match="alpha"):
        riskpo_advantage(rewards, groups, None, alpha=0.9, beta=0.8)
    with pytest.raises(ValueError, match="mode"):
        riskpo_advantage(rewards, groups, None, mode="var")
