"""R²VPO (Luo et al. 2026, arXiv:2601.03320), LLDS (Deng et al. 2025, arXiv:2512.04220) and COPO
(Han et al. 2025, arXiv:2508.04138: its advantage estimator and blended loss), checked against
hand-computed values."""

import math

import pytest
import torch
from factories import batch_for, make_rollouts
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.advantages import AdvantageOutput
from grpozoo.algos.advantages.copo import answer_entropy_bits, copo_advantage, entropy_coefficient
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.algos.losses.regularized import copo_loss, llds_loss, r2vpo_loss
from grpozoo.registry import advantages, losses

R2VPO_AFTER_STEP = losses.spec("r2vpo").after_step


def _ctx_with_lambda(lam, n=1, t=2):
    return make_rollouts([0.0] * n, num_tokens=t, state={"r2vpo": {"lambda": lam}})


def test_registered():
    assert losses.get("r2vpo") is r2vpo_loss
    assert losses.get("llds") is llds_loss
    assert losses.get("copo") is copo_loss
    assert advantages.get("copo") is copo_advantage


# ----------------------------------------------------------------------------- R²VPO


def test_r2vpo_lambda_zero_is_the_unclipped_is_gradient():
    # ratios far outside any clip range keep their gradient −ρ·A; the penalty is off at λ = 0
    logp = torch.log(torch.tensor([[0.3, 1.0, 2.5]])).requires_grad_(True)
    ctx = make_rollouts([0.0], num_tokens=3, state={})  # no λ stored yet -> 0
    loss, diag = r2vpo_loss(logp, torch.zeros(1, 3), torch.tensor([2.0]), torch.ones(1, 3), ctx, delta=10.0)
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    torch.testing.assert_close(loss, torch.tensor([[-0.6, -2.0, -5.0]]))
    torch.testing.assert_close(grad, torch.tensor([[-0.6, -2.0, -5.0]]))
    torch.testing.assert_close(diag["ratio"], torch.tensor([[0.3, 1.0, 2.5]]))
    torch.testing.assert_close(diag["ratio_sq"], torch.tensor([[0.09, 1.0, 6.25]]))
    assert diag["r2vpo_lambda"].sum() == 0


def test_r2vpo_penalty_by_hand_and_no_token_gradient_zeroed():
    # ρ = [0.5, 1.5], μ = 1, A = 1, λ = 0.5, δ = 0.1: per token −ρ + λ((ρ − μ)² − δ)
    # gradient −ρ + 2λ(ρ − μ)ρ (the μ terms cancel): [−0.5 − 0.25, −1.5 + 0.75] = [−0.75, −0.75]
    logp = torch.log(torch.tensor([[0.5, 1.5]])).requires_grad_(True)
    loss, diag = r2vpo_loss(
        logp, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2), _ctx_with_lambda(0.5), delta=0.1
    )
    torch.testing.assert_close(loss, torch.tensor([[-0.5 + 0.5 * 0.15, -1.5 + 0.5 * 0.15]]))
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    torch.testing.assert_close(grad, torch.tensor([[-0.75, -0.75]]))
    assert (grad != 0).all()
    torch.testing.assert_close(diag["r2vpo_lambda"], torch.full((1, 2), 0.5))


def test_r2vpo_penalty_mean_is_lambda_times_variance_minus_delta():
    ratios = torch.tensor([[0.8, 1.1, 1.3], [0.9, 1.0, 1.0]])
    base, _ = r2vpo_loss(
        ratios.log(), torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3), _ctx_with_lambda(0.0)
    )
    pen, _ = r2vpo_loss(
        ratios.log(), torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3), _ctx_with_lambda(2.0), delta=0.01
    )
    variance = ratios.var(unbiased=False)
    torch.testing.assert_close((pen - base).mean(), 2.0 * (variance - 0.01))


def test_r2vpo_no_token_gradient_is_zeroed_for_extreme_ratios():
    logp = torch.log(torch.tensor([[0.1, 0.5, 1.7, 4.0]])).requires_grad_(True)
    loss, _ = r2vpo_loss(
        logp, torch.zeros(1, 4), torch.tensor([1.0]), torch.ones(1, 4), _ctx_with_lambda(0.3)
    )
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert (grad != 0).all()


def test_r2vpo_dual_update_by_hand():
    after = R2VPO_AFTER_STEP
    state = {}
    after(state, {"ratio": 1.0, "ratio_sq": 1.5}, delta=0.1, lambda_lr=1.0)  # Var = 0.5 > δ
    assert state["r2vpo"]["lambda"] == pytest.approx(0.4)
    after(state, {"ratio": 1.0, "ratio_sq": 1.0}, delta=0.1, lambda_lr=1.0)  # Var = 0 < δ
    assert state["r2vpo"]["lambda"] == pytest.approx(0.3)
    after(state, {"ratio": 1.0, "ratio_sq": 1.0}, delta=0.1, lambda_lr=10.0)
    assert state["r2vpo"]["lambda"] == 0.0  # projected on λ ≥ 0
    after(state, {"ratio": 2.0, "ratio_sq": 4.1}, delta=0.1, lambda_lr=1.0)  # Var = δ: unchanged
    assert state["r2vpo"]["lambda"] == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 5.0), st.floats(0.8, 1.2), st.floats(0.0, 2.0), st.floats(0.0, 1.0))
def test_property_r2vpo_lambda_increases_iff_variance_exceeds_delta(lam, mean, spread, delta):
    state = {"r2vpo": {"lambda": lam}}
    variance = spread**2
    R2VPO_AFTER_STEP(state, {"ratio": mean, "ratio_sq": variance + mean**2}, delta=delta, lambda_lr=1.0)
    new = state["r2vpo"]["lambda"]
    if variance > delta + 1e-9:
        assert new > lam
    elif variance < delta - 1e-9:
        assert new < lam or new == lam == 0.0
    assert new >= 0.0


def test_r2vpo_after_step_ignores_other_params_and_missing_metrics():
    state = {}
    R2VPO_AFTER_STEP(state, {"loss": 1.0})
    assert state == {}
    R2VPO_AFTER_STEP(state, {"ratio": 1.0, "ratio_sq": 1.0}, unrelated=3)
    assert state["r2vpo"]["lambda"] == 0.0


# ------------------------------------------------------------------------------ LLDS


def _llds_grad_of_term(logp, old, adv, mask, **params):
    """Loss and gradient of the LLDS term alone (llds minus its coef-0 base)."""
    with_term, diag = llds_loss(logp, old, adv, mask, None, **params)
    base, _ = llds_loss(logp, old, adv, mask, None, **{**params, "coef": 0.0})
    (grad,) = torch.autograd.grad((with_term - base).sum(), logp)
    return with_term - base, grad, diag


def test_llds_zero_when_no_likelihood_fell():
    # LLDS gates by sequence: row 0 rose on every token, row 1 overall (−0.2 + 0.5) though one token fell
    old = torch.tensor([[-1.0, -1.0], [-1.0, -1.0]])
    logp = (old + torch.tensor([[0.1, 0.3], [-0.2, 0.5]])).requires_grad_(True)
    term, grad, diag = _llds_grad_of_term(logp, old, torch.tensor([1.0, -1.0]), torch.ones(2, 2), coef=0.5)
    assert torch.equal(term, torch.zeros(2, 2)) and torch.equal(grad, torch.zeros(2, 2))
    assert diag["llds_active"].sum() == 0


def test_llds_penalty_by_hand_and_rising_tokens_get_no_gradient():
    # Δ = logp − old = [−0.5, +0.2, −0.1]: ℓ fell by 0.4 -> per token λ·max(0, −Δ) = λ·[0.5, 0, 0.1]
    old = torch.zeros(1, 3) - 1.0
    logp = (old + torch.tensor([[-0.5, 0.2, -0.1]])).requires_grad_(True)
    term, grad, diag = _llds_grad_of_term(logp, old, torch.tensor([1.0]), torch.ones(1, 3), coef=0.5)
    torch.testing.assert_close(term, torch.tensor([[0.25, 0.0, 0.05]]))
    torch.testing.assert_close(
        grad, torch.tensor([[-0.5, 0.0, -0.5]])
    )  # LLDS spares a rising token: it gets 0
    torch.testing.assert_close(diag["lld_delta"], torch.full((1, 3), -0.4))
    torch.testing.assert_close(diag["llds_active"], torch.ones(1, 3))
    # under sequence_mean this is λ·Σ_t max(0, l_old − l)/L_i = 0.5·0.6/3
    assert (term.sum() / 3).item() == pytest.approx(0.1)


def test_llds_only_positive_scope():
    old = torch.zeros(2, 2)
    logp = torch.full((2, 2), -0.3, requires_grad=True)  # both completions fell
    adv = torch.tensor([1.0, -1.0])
    term, _, diag = _llds_grad_of_term(logp, old, adv, torch.ones(2, 2), coef=1.0, only_positive=True)
    torch.testing.assert_close(term, torch.tensor([[0.3, 0.3], [0.0, 0.0]]))
    torch.testing.assert_close(diag["lld_delta_positive"], torch.tensor([[-0.6, -0.6], [0.0, 0.0]]))
    torch.testing.assert_close(diag["lld_positive_tokens"], torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    term_all, _, _ = _llds_grad_of_term(logp, old, adv, torch.ones(2, 2), coef=1.0)
    torch.testing.assert_close(term_all, torch.full((2, 2), 0.3))


def test_llds_base_is_ppo_clip():
    logp = torch.log(torch.tensor([[0.5, 1.5], [1.0, 1.3]]))
    adv = torch.tensor([1.0, -1.0])
    base, diag = llds_loss(
        logp, torch.zeros(2, 2), adv, torch.ones(2, 2), None, eps_low=0.2, eps_high=0.28, coef=0.0
    )
    expected, expected_diag = ppo_clip_loss(
        logp,
        torch.zeros(2, 2),
        adv,
        torch.ones(2, 2),
        batch_for(torch.ones(2, 2)),
        eps_low=0.2,
        eps_high=0.28,
    )
    torch.testing.assert_close(base, expected)
    torch.testing.assert_close(diag["clip_fraction"], expected_diag["clip_fraction"])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.data())
def test_property_llds_term_nonnegative_and_never_pushes_rising_tokens(b, t, data):
    # LLDS's penalty is ≥ 0 and spares every rising token, on random inputs
    old = torch.tensor(data.draw(st.lists(st.floats(-10, 0, width=32), min_size=b * t, max_size=b * t))).view(
        b, t
    )
    delta = torch.tensor(
        data.draw(st.lists(st.floats(-2, 2, width=32), min_size=b * t, max_size=b * t))
    ).view(b, t)
    logp = (old + delta).requires_grad_(True)
    adv = torch.tensor(data.draw(st.lists(st.floats(-2, 2, width=32), min_size=b, max_size=b)))
    term, grad, _ = _llds_grad_of_term(logp, old, adv, torch.ones(b, t), coef=0.7)
    assert (term >= 0).all()
    rose = (logp.detach() - old) >= 0
    assert (grad[rose] == 0).all()


# ------------------------------------------------------------------- COPO advantage


def test_copo_entropy_and_coefficient_by_hand():
    ids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    h = answer_entropy_bits(["a", "a", "a", "a", "a", "b", "c", "d"], ids)
    torch.testing.assert_close(h, torch.tensor([0.0] * 4 + [2.0] * 4))
    # λ = (1 − 1/4)/log2 4 = 0.375: coefficient 1 − 0.375·2 = 0.25 (= 1/G) for [a,b,c,d]
    torch.testing.assert_close(
        entropy_coefficient(h, torch.full((8,), 4.0)), torch.tensor([1.0] * 4 + [0.25] * 4)
    )


def test_copo_none_answers_clusters():
    ids = torch.zeros(4, dtype=torch.long)
    answers = [None, None, "7", " 7 "]  # whitespace-stripped: one "7" cluster
    assert answer_entropy_bits(answers, ids)[0].item() == pytest.approx(1.0)  # {None×2, 7×2}
    assert answer_entropy_bits(answers, ids, none_answers="singletons")[0].item() == pytest.approx(1.5)
    assert answer_entropy_bits(None, ids)[0].item() == 0.0  # no extraction: one cluster


def test_copo_advantage_numbers():
    # COPO with G = 4, answers [a,a,a,a] all correct -> H = 0, w ≈ 4.5e-5, local advantage 0,
    # global advantage non-zero because the other prompt differs
    ctx = make_rollouts(
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        group_ids=[0, 0, 0, 0, 1, 1, 1, 1],
        answers=["a", "a", "a", "a", "a", "b", "c", "d"],
    )
    out = copo_advantage(ctx.rewards, ctx.group_ids, ctx)
    assert isinstance(out, AdvantageOutput)
    assert torch.equal(out.advantages[:4], torch.zeros(4))
    w = out.extras["copo_weight"]
    assert w[0].item() == pytest.approx(4.54e-5, rel=1e-2)
    assert w[4].item() == pytest.approx(1 / (1 + math.exp(-30)))
    # g_0 = 1·1 = 1, g_1 = 0.25·0.25 = 0.0625: (g − mean)/std over 2 prompts = ±1/√2
    g = out.extras["copo_global_advantage"]
    torch.testing.assert_close(
        g, torch.tensor([1 / math.sqrt(2)] * 4 + [-1 / math.sqrt(2)] * 4), atol=1e-3, rtol=0
    )
    # without the entropy factor g_1 = 0.25: still ±1/√2 with two prompts; the sign is what matters
    plain = copo_advantage(ctx.rewards, ctx.group_ids, ctx, entropy_factor=False).extras[
        "copo_global_advantage"
    ]
    assert plain[0] > 0 > plain[4]


def test_copo_global_advantage_uses_the_consistency_factor():
    # three prompts, same pass rate 0.5; only their answer entropies differ
    ctx = make_rollouts(
        [1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        group_ids=[0, 0, 1, 1, 2, 2],
        answers=["x", "x", "x", "y", "x", "y"],
    )
    out = copo_advantage(ctx.rewards, ctx.group_ids, ctx)
    g = out.extras["copo_global_advantage"]
    # G = 2: λ = 0.5; g = [0.5, 0.25, 0.25]; mean 1/3, unbiased std √(1/48)
    std = math.sqrt(((1 / 6) ** 2 + 2 * (1 / 12) ** 2) / 2)
    expected = torch.tensor([1 / 6, -1 / 12, -1 / 12]) / (std + 1e-4)
    torch.testing.assert_close(g[::2], expected)


def test_copo_soft_with_forced_zeroes_the_weight_of_uniform_groups():
    ctx = make_rollouts([1.0, 1.0, 1.0, 0.0], group_ids=[0, 0, 1, 1], answers=["a", "b", "a", "b"])
    soft = copo_advantage(ctx.rewards, ctx.group_ids, ctx).extras["copo_weight"]
    forced = copo_advantage(ctx.rewards, ctx.group_ids, ctx, blend="soft_with_forced").extras["copo_weight"]
    assert soft[0].item() > 0.99  # H = 1 bit: diverse group, local loss
    torch.testing.assert_close(forced, torch.tensor([0.0, 0.0, soft[2].item(), soft[3].item()]))


def test_copo_single_prompt_and_single_member_groups_are_finite():
    ctx = make_rollouts([1.0], answers=[None])
    out = copo_advantage(ctx.rewards, ctx.group_ids, ctx)
    assert torch.equal(out.extras["copo_global_advantage"], torch.zeros(1))
    assert torch.isfinite(out.extras["copo_weight"]).all() and torch.equal(out.advantages, torch.zeros(1))


# ------------------------------------------------------------------------ COPO loss


def _copo_inputs(weight, global_adv):
    ctx = make_rollouts([1.0, 0.0], num_tokens=3)
    ctx.extras = {"copo_weight": torch.tensor(weight), "copo_global_advantage": torch.tensor(global_adv)}
    logp = torch.log(torch.tensor([[0.5, 1.0, 1.5], [0.7, 1.1, 1.4]]))
    return ctx, logp, torch.zeros(2, 3), torch.tensor([0.8, -0.8]), torch.ones(2, 3)


def test_copo_loss_blends_the_two_clipped_losses():
    ctx, logp, old, local, mask = _copo_inputs([0.25, 1.0], [2.0, -0.5])
    loss, diag = copo_loss(logp, old, local, mask, ctx, eps_low=0.2, eps_high=0.28)
    lo, _ = ppo_clip_loss(logp, old, local, mask, batch_for(mask), eps_low=0.2, eps_high=0.28)
    gl, _ = ppo_clip_loss(
        logp, old, torch.tensor([2.0, -0.5]), mask, batch_for(mask), eps_low=0.2, eps_high=0.28
    )
    torch.testing.assert_close(loss[0], 0.75 * gl[0] + 0.25 * lo[0])
    torch.testing.assert_close(loss[1], lo[1])
    torch.testing.assert_close(diag["copo_weight"], torch.tensor([[0.25] * 3, [1.0] * 3]))


def test_copo_loss_weight_zero_learns_from_the_global_advantage_only():
    # a consistent all-correct group: local advantage 0 but the global one still gives a gradient
    ctx, logp, old, _, mask = _copo_inputs([0.0, 0.0], [1.0, 1.0])
    logp.requires_grad_(True)
    loss, _ = copo_loss(logp, old, torch.zeros(2), mask, ctx)
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert (grad[:, :2] != 0).all()


def test_copo_loss_without_its_estimator_names_the_fix():
    ctx = make_rollouts([1.0, 0.0], num_tokens=2)
    logp = torch.log(torch.tensor([[0.5, 1.5], [1.2, 0.9]]))
    with pytest.raises(ValueError, match="algorithm.advantage.name=copo"):
        copo_loss(logp, torch.zeros(2, 2), torch.tensor([1.0, -1.0]), torch.ones(2, 2), ctx)


def test_copo_extras_follow_a_micro_batch_split():
    ctx, logp, old, local, mask = _copo_inputs([0.25, 0.6], [2.0, -0.5])
    whole, _ = copo_loss(logp, old, local, mask, ctx)
    for row in (0, 1):
        sub = ctx.select([row])
        part, _ = copo_loss(
            logp[row : row + 1], old[row : row + 1], local[row : row + 1], mask[row : row + 1], sub
        )
        torch.testing.assert_close(part, whole[row : row + 1])


# ------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("name", ["r2vpo", "llds", "copo"])
def test_padding_and_empty_rows(name):
    ctx = make_rollouts([1.0, 0.0, 0.0], lengths=[2, 0, 3], num_tokens=3, answers=["1", None, "2"], state={})
    ctx.state["r2vpo"] = {"lambda": 0.5}
    ctx.extras = copo_advantage(ctx.rewards, ctx.group_ids, ctx).extras
    mask = ctx.completion_mask.float()
    logp = torch.where(mask > 0, -torch.rand(3, 3), torch.full((3, 3), float("nan"))).requires_grad_(True)
    old = torch.where(mask > 0, -torch.rand(3, 3), torch.zeros(3, 3))
    loss, diag = losses.get(name)(logp, old, torch.tensor([1.0, -0.5, -0.5]), mask, ctx)
    assert torch.isfinite(loss).all() and (loss[mask == 0] == 0).all()
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert torch.isfinite(grad).all() and (grad[mask == 0] == 0).all()
    for value in diag.values():
        assert torch.isfinite(value).all() and (value[mask == 0] == 0).all()


def test_all_zero_mask():
    ctx = make_rollouts([1.0, 0.0], lengths=[0, 0], num_tokens=1, state={"r2vpo": {"lambda": 1.0}})
    mask = torch.zeros(2, 1)
    ctx.extras = {"copo_weight": torch.tensor([0.5, 0.5]), "copo_global_advantage": torch.tensor([1.0, -1.0])}
    for name in ("r2vpo", "llds", "copo"):
        logp = torch.zeros(2, 1, requires_grad=True)
        loss, _ = losses.get(name)(logp, torch.zeros(2, 1), torch.ones(2), mask, ctx)
        (grad,) = torch.autograd.grad(loss.sum(), logp)
        assert torch.equal(loss, torch.zeros(2, 1)) and torch.equal(grad, torch.zeros(2, 1))
