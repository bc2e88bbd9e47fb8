"""REAL (Zhai et al. 2026, arXiv:2602.05630) and DisCO (Li et al. 2025, arXiv:2505.12366): group-level
discriminative losses, checked against hand-computed values, with whole-group aggregation and edge
cases."""

import math

import pytest
import torch
from factories import make_rollouts
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.aggregation import BatchTotals, per_prompt_mean, sequence_mean
from grpozoo.algos.losses.classification import disco_loss, real_bce_loss, real_loss
from grpozoo.registry import losses


def _per_prompt(loss, mask, ctx):
    return per_prompt_mean(loss, mask, ctx.group_ids, BatchTotals.of(mask, mask.shape[1], ctx.group_ids))


def _logp_with_scores(scores, length=1):
    """log-probs over old = 0 whose per-row mean log-ratio is ``scores`` (every token equal)."""
    return torch.tensor(scores).unsqueeze(1).repeat(1, length).requires_grad_(True)


def test_registered_and_whole_groups():
    assert losses.get("real") is real_loss
    assert losses.get("real_bce") is real_bce_loss
    assert losses.get("disco") is disco_loss
    for name in ("real", "real_bce", "disco"):
        assert losses.spec(name).whole_groups is True


# ------------------------------------------------------------------------------ REAL


@pytest.mark.parametrize("length", [1, 3])
def test_real_gradients_at_zero_score_by_hand(length):
    # REAL at s = 0, n_pos = 1, n_neg = 3, τ = 0.5: ∂L/∂s_pos = −(1/τ)/(1+1) = −1, ∂L/∂s_neg = (1/τ)/4 = 0.5
    ctx = make_rollouts([1.0, 0.0, 0.0, 0.0], num_tokens=length)
    mask = ctx.completion_mask.float()
    logp = torch.zeros(4, length, requires_grad=True)
    loss, diag = real_loss(logp, logp.detach(), torch.zeros(4), mask, ctx, tau=0.5)
    total = _per_prompt(loss, mask, ctx)
    # loss_q = log(1 + 3·e^0) + log(1 + e^0) = log 8, on every token of the group
    torch.testing.assert_close(total, torch.tensor(math.log(8.0)))
    torch.testing.assert_close(loss, torch.full((4, length), math.log(8.0)))
    total.backward()
    # s_i is a mean over L_i tokens: each token carries 1/L_i of ∂L/∂s_i
    expected = torch.tensor([-1.0, 0.5, 0.5, 0.5]).unsqueeze(1) / length
    torch.testing.assert_close(logp.grad, expected.expand(4, length))
    torch.testing.assert_close(diag["valid_group_fraction"], torch.ones(4, length))


def test_real_loss_values_at_nonzero_scores_by_hand():
    # s = [1, −0.5, 0.2] with labels [+, −, −], τ = 1: log(1 + e^−0.5 + e^0.2) + log(1 + e^−1)
    ctx = make_rollouts([1.0, 0.0, 0.0], num_tokens=1)
    logp = _logp_with_scores([1.0, -0.5, 0.2])
    loss, _ = real_loss(logp, torch.zeros(3, 1), torch.zeros(3), torch.ones(3, 1), ctx, tau=1.0)
    expected = math.log(1 + math.exp(-0.5) + math.exp(0.2)) + math.log(1 + math.exp(-1.0))
    torch.testing.assert_close(loss, torch.full((3, 1), expected))


def test_real_positive_gradient_weight_is_monotone_and_bounded():
    # one positive: ∂L/∂s = −(1/τ)·σ(−s/τ), decreasing in magnitude with s and never above 1/τ
    tau = 0.5
    magnitudes = []
    for s in [-4.0, -1.0, 0.0, 1.0, 4.0]:
        ctx = make_rollouts([1.0, 0.0], num_tokens=1)
        logp = _logp_with_scores([s, -20.0])  # the negative sits far below: its term ≈ 0
        loss, _ = real_loss(logp, torch.zeros(2, 1), torch.zeros(2), torch.ones(2, 1), ctx, tau=tau)
        loss[0, 0].backward()
        grad = logp.grad[0, 0].item()
        assert grad == pytest.approx(-(1 / tau) * (1 / (1 + math.exp(s / tau))), rel=1e-5)
        assert abs(grad) <= 1 / tau
        magnitudes.append(abs(grad))
    assert magnitudes == sorted(magnitudes, reverse=True) and magnitudes[0] > magnitudes[-1]


@pytest.mark.parametrize("rewards", [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.5]])
def test_real_uniform_and_single_member_groups_give_zero(rewards):
    n = len(rewards)
    ctx = make_rollouts(rewards, num_tokens=2)
    logp = torch.randn(n, 2, requires_grad=True)
    for fn in (real_loss, real_bce_loss):
        loss, diag = fn(logp, torch.zeros(n, 2), torch.zeros(n), torch.ones(n, 2), ctx)
        assert torch.equal(loss, torch.zeros(n, 2))
        (grad,) = torch.autograd.grad(loss.sum(), logp)
        assert torch.equal(grad, torch.zeros(n, 2))
        assert diag["valid_group_fraction"].sum() == 0


def test_real_groups_are_independent_and_labels_are_the_group_best():
    # group 0: rewards [0.2, 0.7] -> 0.7 is the positive; group 1 all equal -> 0
    ctx = make_rollouts([0.2, 0.7, 1.0, 1.0], group_ids=[0, 0, 5, 5], num_tokens=1)
    logp = torch.zeros(4, 1, requires_grad=True)
    loss, _ = real_loss(logp, logp.detach(), torch.zeros(4), torch.ones(4, 1), ctx, tau=0.5)
    torch.testing.assert_close(loss[:, 0], torch.tensor([2 * math.log(2.0)] * 2 + [0.0, 0.0]))
    total = _per_prompt(loss, torch.ones(4, 1), ctx)  # Σ_q loss_q / #questions (both questions count)
    torch.testing.assert_close(total, torch.tensor(math.log(2.0)))
    total.backward()
    # ∂loss_q/∂s = ±(1/τ)·σ(0) = ±1, halved by the mean over the two questions
    torch.testing.assert_close(logp.grad[:, 0], torch.tensor([0.5, -0.5, 0.0, 0.0]))


def test_real_bce_by_hand():
    # s = [0.5, −0.25], labels [1, 0], τ = 0.5: BCE(1, 1) = log(1 + e^−1), BCE(−0.5, 0) = log(1 + e^−0.5)
    ctx = make_rollouts([1.0, 0.0], num_tokens=2)
    logp = _logp_with_scores([0.5, -0.25], length=2)
    mask = torch.ones(2, 2)
    loss, _ = real_bce_loss(logp, torch.zeros(2, 2), torch.zeros(2), mask, ctx, tau=0.5)
    torch.testing.assert_close(
        loss[:, 0], torch.tensor([math.log(1 + math.exp(-1)), math.log(1 + math.exp(-0.5))])
    )
    total = sequence_mean(loss, mask, ctx.group_ids, BatchTotals.of(mask, 2, ctx.group_ids))
    total.backward()
    # ∂BCE/∂s = (σ(s/τ) − y)/τ, split over the 2 tokens, halved by the mean over 2 sequences
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = torch.tensor([(sig(1.0) - 1) / 0.5, sig(-0.5) / 0.5]) / 2 / 2
    torch.testing.assert_close(logp.grad, expected.unsqueeze(1).expand(2, 2))


# ----------------------------------------------------------------------------- DisCO


def _disco_batch():
    """One group: positives with mean log-prob −1 and −2, negatives −3 and −5 (two tokens each)."""
    ctx = make_rollouts([1.0, 1.0, 0.0, 0.0], num_tokens=2)
    logp = torch.tensor([[-0.5, -1.5], [-2.0, -2.0], [-3.0, -3.0], [-4.0, -6.0]], requires_grad=True)
    return ctx, logp, torch.ones(4, 2)


def test_disco_basic_is_the_score_difference():
    ctx, logp, mask = _disco_batch()
    loss, diag = disco_loss(logp, logp.detach(), torch.zeros(4), mask, ctx, objective="basic")
    # mean_pos s − mean_neg s = −1.5 − (−4) = 2.5, maximised -> loss −2.5 on every token
    torch.testing.assert_close(loss, torch.full((4, 2), -2.5))
    torch.testing.assert_close(diag["score"][:, 0], torch.tensor([-1.0, -2.0, -3.0, -5.0]))
    _per_prompt(loss, mask, ctx).backward()
    # ∂/∂logp: positives −1/(2 pos · 2 tokens), negatives +1/(2 · 2)
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.25] * 2] * 2 + [[0.25] * 2] * 2))


def test_disco_dro_value_by_hand():
    ctx, logp, mask = _disco_batch()
    loss, _ = disco_loss(logp, logp.detach(), torch.zeros(4), mask, ctx, objective="dro", tau=1.0)
    # τ·log mean_neg exp(s/τ) = log((e^−3 + e^−5)/2)
    neg_term = math.log((math.exp(-3.0) + math.exp(-5.0)) / 2)
    torch.testing.assert_close(loss, torch.full((4, 2), -(-1.5 - neg_term)))


def test_disco_dro_tends_to_the_hardest_negative_as_tau_vanishes():
    ctx, logp, mask = _disco_batch()
    loss, _ = disco_loss(logp, logp.detach(), torch.zeros(4), mask, ctx, objective="dro", tau=1e-3)
    # −(mean_pos s − max_neg s) = −(−1.5 + 3) = −1.5 (up to τ·log 2 ≈ 7e-4)
    assert loss[0, 0].item() == pytest.approx(-1.5, abs=1e-3)
    (grad,) = torch.autograd.grad(_per_prompt(loss, mask, ctx), logp)
    # only the hardest negative (s = −3) is pushed down
    torch.testing.assert_close(grad[2:], torch.tensor([[0.5, 0.5], [0.0, 0.0]]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("objective", ["dro", "basic"])
@pytest.mark.parametrize("score", ["logL", "Lratio"])
def test_disco_gradient_signs(objective, score):
    # DisCO: raising a positive's log-prob lowers the loss, raising a negative's raises it
    ctx, logp, mask = _disco_batch()
    old = logp.detach() + 0.01
    loss, _ = disco_loss(logp, old, torch.zeros(4), mask, ctx, score=score, objective=objective, beta=0.0)
    (grad,) = torch.autograd.grad(_per_prompt(loss, mask, ctx), logp)
    assert (grad[:2] < 0).all() and (grad[2:] > 0).all()


def test_disco_kl_below_delta_adds_no_gradient():
    # DisCO below its trust region: log ρ = 0.005 per token -> k3 ≈ 1.25e-5 < δ = 1e-4
    ctx, logp, mask = _disco_batch()
    old = logp.detach() - 0.005
    with_c, _ = disco_loss(logp, old, torch.zeros(4), mask, ctx, delta=1e-4, beta=1e3)
    without, _ = disco_loss(logp, old, torch.zeros(4), mask, ctx, delta=1e-4, beta=0.0)
    g1 = torch.autograd.grad(_per_prompt(with_c, mask, ctx), logp)[0]
    g2 = torch.autograd.grad(_per_prompt(without, mask, ctx), logp)[0]
    torch.testing.assert_close(with_c, without)
    assert torch.equal(g1, g2)


def test_disco_kl_above_delta_penalty_by_hand():
    # log ρ = 0.1 on every token: k3 = e^0.1 − 1 − 0.1; penalty = β·(KL − δ)·KL
    ctx, logp, mask = _disco_batch()
    old = logp.detach() - 0.1
    with_c, diag = disco_loss(logp, old, torch.zeros(4), mask, ctx, score="logL", delta=1e-4, beta=1e3)
    without, _ = disco_loss(logp, old, torch.zeros(4), mask, ctx, score="logL", delta=1e-4, beta=0.0)
    kl = math.exp(0.1) - 1.1
    torch.testing.assert_close(with_c - without, torch.full((4, 2), 1e3 * (kl - 1e-4) * kl))
    assert diag["kl_constraint_active"].sum() == 8
    # its gradient is sg(β(KL−δ))·∇KL = β(KL−δ)·(ρ − 1)/8 per token (KL is the mean over 8 tokens)
    g1 = torch.autograd.grad(_per_prompt(with_c, mask, ctx), logp)[0]
    g2 = torch.autograd.grad(_per_prompt(without, mask, ctx), logp)[0]
    torch.testing.assert_close(g1 - g2, torch.full((4, 2), 1e3 * (kl - 1e-4) * (math.exp(0.1) - 1) / 8))


def test_disco_all_correct_group_gives_zero_loss_and_gradient():
    # DisCO at the old policy: the KL constraint is inactive
    ctx = make_rollouts([1.0, 1.0, 1.0], num_tokens=2)
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.1], [-3.0, -1.0]], requires_grad=True)
    for objective in ("dro", "basic"):
        loss, _ = disco_loss(logp, logp.detach(), torch.zeros(3), torch.ones(3, 2), ctx, objective=objective)
        assert torch.equal(loss, torch.zeros(3, 2))
        (grad,) = torch.autograd.grad(loss.sum(), logp)
        assert torch.equal(grad, torch.zeros(3, 2))


def test_grpo_binary_advantages_with_population_std():
    # DisCO's side remark: GRPO with population std gives A+ = √((1−p)/p), A− = −√(p/(1−p)) for binary rewards
    from grpozoo.algos.groups import group_mean, group_std

    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    g = torch.zeros(4, dtype=torch.long)
    adv = (r - group_mean(r, g)) / group_std(r, g, unbiased=False)
    p = 0.25
    torch.testing.assert_close(adv, torch.tensor([math.sqrt((1 - p) / p)] + [-math.sqrt(p / (1 - p))] * 3))


# ------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("name", ["real", "real_bce", "disco"])
def test_padding_and_empty_rows(name):
    fn = losses.get(name)
    ctx = make_rollouts([1.0, 0.0, 0.0, 1.0], group_ids=[0, 0, 0, 1], lengths=[2, 0, 3, 0], num_tokens=3)
    mask = ctx.completion_mask.float()
    logp = torch.where(mask > 0, -torch.rand(4, 3), torch.full((4, 3), float("nan"))).requires_grad_(True)
    old = torch.where(mask > 0, -torch.rand(4, 3), torch.zeros(4, 3))
    loss, diag = fn(logp, old, torch.zeros(4), mask, ctx)
    assert torch.isfinite(loss).all() and (loss[mask == 0] == 0).all()
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert torch.isfinite(grad).all() and (grad[mask == 0] == 0).all()
    for value in diag.values():
        assert torch.isfinite(value).all() and (value[mask == 0] == 0).all()


def test_without_rewards_the_advantage_sign_labels():
    ctx = make_rollouts([0.0, 0.0], num_tokens=1)
    ctx.rewards = None
    logp = torch.zeros(2, 1, requires_grad=True)
    loss, _ = real_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), torch.ones(2, 1), ctx, tau=0.5)
    torch.testing.assert_close(loss, torch.full((2, 1), 2 * math.log(2.0)))


def test_split_into_whole_groups_gives_the_same_total():
    # whole-group micro-batches: the per-prompt-mean total does not depend on the split
    ctx = make_rollouts(
        [1.0, 0.0, 0.0, 1.0, 1.0, 0.0], group_ids=[0, 0, 0, 1, 1, 1], lengths=[2, 3, 1, 3, 2, 2]
    )
    mask = ctx.completion_mask.float()
    logp = -torch.rand(6, 3)
    old = -torch.rand(6, 3)
    totals = BatchTotals.of(mask, 3, ctx.group_ids)
    for fn in (real_loss, disco_loss):
        whole, _ = fn(logp, old, torch.zeros(6), mask, ctx)
        full = per_prompt_mean(whole, mask, ctx.group_ids, totals)
        parts = 0.0
        for rows in ([0, 1, 2], [3, 4, 5]):
            sub = ctx.select(rows)
            part, _ = fn(logp[rows], old[rows], torch.zeros(3), mask[rows], sub)
            parts = parts + per_prompt_mean(part, mask[rows], sub.group_ids, totals)
        torch.testing.assert_close(parts, full)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=6), st.data())
def test_property_finite_value_and_gradient(rewards, data):
    b = len(rewards)
    group_ids = data.draw(st.lists(st.integers(0, 2), min_size=b, max_size=b))
    lengths = data.draw(st.lists(st.integers(0, 3), min_size=b, max_size=b))
    ctx = make_rollouts(rewards, group_ids=group_ids, lengths=lengths, num_tokens=3)
    mask = ctx.completion_mask.float()
    logp = (
        torch.tensor(data.draw(st.lists(st.floats(-30, 0, width=32), min_size=3 * b, max_size=3 * b)))
    ).view(b, 3)
    logp.requires_grad_(True)
    old = logp.detach() + torch.tensor(
        data.draw(st.lists(st.floats(-5, 5, width=32), min_size=3 * b, max_size=3 * b))
    ).view(b, 3)
    for fn in (real_loss, real_bce_loss, disco_loss):
        loss, _ = fn(logp, old, torch.zeros(b), mask, ctx)
        (grad,) = torch.autograd.grad(loss.sum(), logp)
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
        assert (loss[mask == 0] == 0).all()
