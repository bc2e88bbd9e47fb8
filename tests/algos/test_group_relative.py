"""Group-relative advantage estimators beyond GRPO, checked against hand-computed values, the
properties their papers state, and the limits where they coincide with GRPO."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.advantages import AdvantageOutput
from grpozoo.algos.advantages.group_relative import (
    bnpo_advantage,
    dgpo_advantage,
    gdpo_advantage,
    gpg_advantage,
    grpo_advantage,
    maxrl_advantage,
    mc_grpo_advantage,
    ngrpo_advantage,
    opo_advantage,
    pass_at_k_advantage,
    rloo_advantage,
    stratified_grpo_advantage,
)
from grpozoo.registry import advantages
from tests.factories import make_rollouts

NAMES = {
    "rloo": rloo_advantage,
    "opo": opo_advantage,
    "gpg": gpg_advantage,
    "maxrl": maxrl_advantage,
    "pass_at_k": pass_at_k_advantage,
    "gdpo": gdpo_advantage,
    "ngrpo": ngrpo_advantage,
    "bnpo": bnpo_advantage,
    "dgpo": dgpo_advantage,
    "stratified_grpo": stratified_grpo_advantage,
    "mc_grpo": mc_grpo_advantage,
}


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def ids(*values):
    return torch.tensor(values)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_registered_under_paper_name(name):
    assert advantages.get(name) is NAMES[name]


# ---------------------------------------------------------------- RLOO


def test_rloo_by_hand():
    out = rloo_advantage(t(1, 0, 0, 1, 3, 1, 2, 0.4), ids(0, 0, 0, 0, 1, 1, 1, 2))
    # [1,0,0,1]: 1 − 1/3, 0 − 2/3; [3,1,2]: 3 − 1.5, 1 − 2.5, 2 − 2; a single member gets 0
    expected = t(2 / 3, -2 / 3, -2 / 3, 2 / 3, 1.5, -1.5, 0.0, 0.0)
    torch.testing.assert_close(out, expected)
    assert out[7].item() == 0.0


def test_rloo_is_n_over_n_minus_1_times_dr_grpo():
    rewards, groups = t(0.2, 0.9, 0.4, 0.0, 1.0), ids(0, 0, 0, 0, 0)
    torch.testing.assert_close(
        rloo_advantage(rewards, groups), 5 / 4 * grpo_advantage(rewards, groups, scale="none")
    )


# ---------------------------------------------------------------- OPO


def test_opo_length_weighted_baseline_by_hand():
    ctx = make_rollouts([1.0, 0.0, 0.5], lengths=[3, 1, 4])
    # b = (3·1 + 1·0 + 4·0.5) / 8 = 5/8
    out = opo_advantage(ctx.rewards, ctx.group_ids, ctx)
    torch.testing.assert_close(out, t(0.375, -0.625, -0.125))


def test_opo_with_equal_lengths_is_the_group_mean_baseline():
    rewards, groups = t(1, 0, 0, 1, 0.3, 0.9), ids(0, 0, 0, 0, 1, 1)
    ctx = make_rollouts(rewards, groups, num_tokens=5)
    torch.testing.assert_close(
        opo_advantage(rewards, groups, ctx), grpo_advantage(rewards, groups, scale="none")
    )


def test_opo_all_empty_group_falls_back_to_mean_and_stays_finite():
    ctx = make_rollouts([1.0, 0.0, 1.0, 0.0], [0, 0, 1, 1], lengths=[0, 0, 2, 5])
    out = opo_advantage(ctx.rewards, ctx.group_ids, ctx)
    # group 0 has no tokens: plain mean 0.5; group 1: b = 2/7
    torch.testing.assert_close(out, t(0.5, -0.5, 5 / 7, -2 / 7))


# ---------------------------------------------------------------- GPG


def test_gpg_valid_sample_correction_by_hand():
    out = gpg_advantage(t(1, 0, 0, 0, 1, 1, 1, 1), ids(0, 0, 0, 0, 1, 1, 1, 1))
    # B = 8, M = 4 samples in the zero-variance group: alpha = 8 / 4 = 2, no std division
    torch.testing.assert_close(out, t(1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0))


def test_gpg_without_degenerate_groups_is_dr_grpo():
    rewards, groups = t(1, 0, 0.5, 0.2), ids(0, 0, 1, 1)
    torch.testing.assert_close(gpg_advantage(rewards, groups), grpo_advantage(rewards, groups, scale="none"))


def test_gpg_all_degenerate_is_zero():
    assert torch.equal(gpg_advantage(t(1, 1, 0, 0), ids(0, 0, 1, 1)), torch.zeros(4))


# ---------------------------------------------------------------- MaxRL


def test_maxrl_by_hand():
    out = maxrl_advantage(t(1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1), ids(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3))
    # p = 1/4: (1 − 1/4)/(1/4) = 3, −1; p = 1/2: ±1; all-zero group 0; all-one group 0
    torch.testing.assert_close(out, t(3, -1, -1, -1, 1, 1, -1, -1, 0, 0, 0, 0), atol=1e-4, rtol=0)
    assert torch.equal(out[8:], torch.zeros(4))


def test_maxrl_divides_grpo_centring_by_pass_rate():
    rewards, groups = t(1, 0, 0, 0, 0, 0, 0, 0), ids(*[0] * 8)
    out = maxrl_advantage(rewards, groups, eps=0.0)
    torch.testing.assert_close(out, grpo_advantage(rewards, groups, scale="none") / 0.125)


# ---------------------------------------------------------------- pass@k


def test_pass_at_k_by_hand():
    # n=4, c=1, k=2: R̄ = 1 − C(3,2)/C(4,2) = 1/2, σ = 1/2; A+ = 1; A− = (1/2 − C(2,1)/C(3,1))/(1/2) = −1/3
    out = pass_at_k_advantage(t(1, 0, 0, 0), ids(0, 0, 0, 0), k=2)
    torch.testing.assert_close(out, t(1, -1 / 3, -1 / 3, -1 / 3))
    # n=4, c=2, k=2: R̄ = 5/6, σ = sqrt(5)/6; A± = ±1/sqrt(5)
    out = pass_at_k_advantage(t(1, 1, 0, 0), ids(0, 0, 0, 0), k=2)
    s = 1 / math.sqrt(5)
    torch.testing.assert_close(out, t(s, s, -s, -s))
    # n=8, c=1, k=4: R̄ = 1 − 35/70 = 1/2; A+ = 1; A− = (1/2 − C(6,3)/C(7,3))/(1/2) = −1/7
    out = pass_at_k_advantage(t(0, 0, 0, 1, 0, 0, 0, 0), ids(*[0] * 8), k=4)
    torch.testing.assert_close(out, t(-1 / 7, -1 / 7, -1 / 7, 1, -1 / 7, -1 / 7, -1 / 7, -1 / 7))


def test_pass_at_k_saturated_groups_are_zero():
    # n=4, c=3, k=2: every 2-subset holds a correct sample, R̄ = 1, σ = 0; all-wrong: R̄ = 0
    out = pass_at_k_advantage(t(1, 1, 1, 0, 0, 0, 0, 0), ids(0, 0, 0, 0, 1, 1, 1, 1), k=2)
    assert torch.equal(out, torch.zeros(8))


def test_pass_at_k_threshold_and_small_groups():
    out = pass_at_k_advantage(t(0.7, 0.2, 0.1, 0.4), ids(0, 0, 0, 0), k=2, threshold=0.5)
    torch.testing.assert_close(out, t(1, -1 / 3, -1 / 3, -1 / 3))
    # a group smaller than k uses k = n: n = 2 < 4, c = 1 -> R̄ = 1, σ = 0
    assert torch.equal(pass_at_k_advantage(t(1, 0), ids(0, 0), k=4), torch.zeros(2))
    with pytest.raises(ValueError, match="k=0"):
        pass_at_k_advantage(t(1, 0), ids(0, 0), k=0)


@st.composite
def binary_groups(draw, max_size=8):
    sizes = draw(st.lists(st.integers(1, max_size), min_size=1, max_size=5))
    rewards = [draw(st.sampled_from([0.0, 1.0])) for _ in range(sum(sizes))]
    groups = [g for g, size in enumerate(sizes) for _ in range(size)]
    return torch.tensor(rewards, dtype=torch.float64), torch.tensor(groups)


@settings(max_examples=40, deadline=None)
@given(binary_groups())
def test_pass_at_1_is_grpo_with_population_std(data):
    rewards, groups = data
    out = pass_at_k_advantage(rewards, groups, k=1)
    for g in groups.unique():
        r = rewards[groups == g]
        p = r.mean()
        sigma = math.sqrt(p * (1 - p))
        expected = (r - p) / sigma if sigma > 0 else torch.zeros_like(r)
        torch.testing.assert_close(out[groups == g], expected)


# ---------------------------------------------------------------- GDPO

BIG = t(1000, 0, 1000, 0)
SMALL = t(1, 1, 0, 0)


def test_gdpo_by_hand():
    ctx = make_rollouts(SMALL + BIG, reward_parts={"correct": SMALL, "length": BIG})
    out = gdpo_advantage(ctx.rewards, ctx.group_ids, ctx, whiten="sequence")
    # each part normalised in its group: ±0.5/(sqrt(1/3) + 1e-4) and ±500/(1000·sqrt(1/3) + 1e-4),
    # summed, then whitened over the batch's completions with the unbiased std
    zs = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    zb = 500 / (1000 * math.sqrt(1 / 3) + 1e-4)
    summed = torch.tensor([zs + zb, zs - zb, zb - zs, -zs - zb], dtype=torch.float64)
    std = math.sqrt(2 * ((zs + zb) ** 2 + (zs - zb) ** 2) / 3)
    torch.testing.assert_close(out, (summed / (std + 1e-4)).float())
    assert out[0].item() == pytest.approx(math.sqrt(1.5), abs=1e-3)


def test_gdpo_large_scale_part_no_longer_dominates():
    ctx = make_rollouts(SMALL + BIG, reward_parts={"correct": SMALL, "length": BIG})
    summed = grpo_advantage(ctx.rewards, ctx.group_ids)
    decoupled = gdpo_advantage(ctx.rewards, ctx.group_ids, ctx)
    # rows 0 and 2 differ only in the small part: normalising the sum barely separates them
    assert abs(summed[0] - summed[2]).item() < 0.01
    assert (decoupled[0] - decoupled[2]).item() > 1.0
    # and rows 1, 2 (one part each) tie, where the summed reward ranks row 2 far above row 1
    assert decoupled[1].item() == pytest.approx(decoupled[2].item(), abs=1e-3)
    assert (summed[2] - summed[1]).item() > 1.0


def test_gdpo_weights_rank_parts():
    ctx = make_rollouts(SMALL + BIG, reward_parts={"correct": SMALL, "length": BIG})
    out = gdpo_advantage(ctx.rewards, ctx.group_ids, ctx, weights={"correct": 2.0})
    assert out[1] > out[2]  # correct-only now beats length-only
    with pytest.raises(ValueError, match="'corect'"):
        gdpo_advantage(ctx.rewards, ctx.group_ids, ctx, weights={"corect": 1.0})


def test_gdpo_missing_values_are_left_out():
    part = t(1, 0, float("nan"), 1)
    ctx = make_rollouts(t(1, 0, 0, 1), reward_parts={"judge": part})
    out = gdpo_advantage(ctx.rewards, ctx.group_ids, ctx, whiten="sequence")
    # present [1, 0, 1]: mean 2/3, unbiased std sqrt(1/3); the NaN row contributes 0
    s = math.sqrt(1 / 3) + 1e-4
    v = torch.tensor([1 / 3 / s, -2 / 3 / s, 0.0, 1 / 3 / s], dtype=torch.float64)
    expected = (v - v.mean()) / (v.std() + 1e-4)
    torch.testing.assert_close(out, expected.float())
    assert torch.isfinite(out).all()


def test_gdpo_without_parts_is_grpo_then_whitening():
    rewards, groups = t(1, 0, 0, 1, 0.5, 0.7), ids(0, 0, 0, 0, 1, 1)
    ctx = make_rollouts(rewards, groups)
    g = grpo_advantage(rewards, groups).double()
    expected = (g - g.mean()) / (g.std() + 1e-4)
    torch.testing.assert_close(gdpo_advantage(rewards, groups, ctx, whiten="sequence"), expected.float())


def test_gdpo_whitens_over_the_tokens_by_default():
    # one part, two groups of two: the group-normalised sums are ±0.5/(sqrt(1/2) + 1e-4) = ±z
    rewards, groups = t(1, 0, 1, 0), ids(0, 0, 1, 1)
    ctx = make_rollouts(rewards, groups, lengths=[3, 1, 1, 1])
    z = 0.5 / (math.sqrt(0.5) + 1e-4)
    # tokens [z, z, z, −z, z, −z]: mean z/3, unbiased std over the 6 tokens
    tokens = torch.tensor([z, z, z, -z, z, -z], dtype=torch.float64)
    per_row = torch.tensor([z, -z, z, -z], dtype=torch.float64)
    expected = (per_row - tokens.mean()) / (tokens.std() + 1e-4)
    torch.testing.assert_close(gdpo_advantage(rewards, groups, ctx), expected.float())
    # per completion the long completion no longer weighs more: rows 0 and 2 tie again
    per_completion = gdpo_advantage(rewards, groups, ctx, whiten="sequence")
    torch.testing.assert_close(per_completion, (per_row / (per_row.std() + 1e-4)).float())


# ---------------------------------------------------------------- NGRPO


def test_ngrpo_all_wrong_group_is_uniformly_negative():
    out = ngrpo_advantage(torch.zeros(8), torch.zeros(8, dtype=torch.long))
    # μ' = 1/9, σ' = sqrt((8/81 + 64/81)/8) = 1/3: A = −(1/9)/(1/3) = −1/3
    torch.testing.assert_close(out, torch.full((8,), -1 / 3), atol=1e-5, rtol=0)


def test_ngrpo_all_correct_group_is_zero():
    assert torch.equal(ngrpo_advantage(torch.ones(8), torch.zeros(8, dtype=torch.long)), torch.zeros(8))


def test_ngrpo_mixed_group_shifts_both_signs_down():
    rewards, groups = t(1, 0, 0, 0), ids(0, 0, 0, 0)
    out = ngrpo_advantage(rewards, groups)
    # with the virtual 1: [1,1,0,0,0], μ' = 0.4, unbiased σ' = sqrt(1.2/4)
    s = math.sqrt(0.3)
    torch.testing.assert_close(out, t(0.6 / s, -0.4 / s, -0.4 / s, -0.4 / s))
    grpo = grpo_advantage(rewards, groups)  # 1.5 and −0.5
    assert out[0] < grpo[0] and (out[1:] < grpo[1:]).all()


# ---------------------------------------------------------------- BNPO


def test_bnpo_alpha_beta_one_is_reinforce_with_group_mean():
    rewards, groups = t(1, 0, 0, 0, 1, 1, 0, 1), ids(0, 0, 0, 0, 1, 1, 1, 1)
    out = bnpo_advantage(rewards, groups, alpha=1.0, beta=1.0)
    torch.testing.assert_close(out, t(0.75, -0.25, -0.25, -0.25, 0.25, 0.25, -0.75, 0.25))


def test_bnpo_alpha_beta_three_halves_is_pi_over_8_grpo_population_std():
    rewards, groups = t(1, 0, 0, 0, 1, 1, 0, 1), ids(0, 0, 0, 0, 1, 1, 1, 1)
    out = bnpo_advantage(rewards, groups, alpha=1.5, beta=1.5)
    # pdf(p) = (8/π) sqrt(p(1−p)); p = 1/4 and 3/4 both give sqrt(3/16)
    s = math.sqrt(3 / 16)
    expected = math.pi / 8 * t(0.75, -0.25, -0.25, -0.25, 0.25, 0.25, -0.75, 0.25) / s
    torch.testing.assert_close(out, expected)


def test_bnpo_method_of_moments_fit_by_hand():
    rewards = t(1, 0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 0)
    groups = ids(*[g for g in range(4) for _ in range(4)])
    # p = [1/4, 3/4, 1/4, 3/4]: m = 1/2, unbiased v = 1/12, m(1−m)/v − 1 = 2, a = b = 1, α = β = 4/3
    a = 4 / 3
    beta_fn = math.gamma(a) ** 2 / math.gamma(2 * a)
    pdf = (0.25 * 0.75) ** (a - 1) / beta_fn
    out = bnpo_advantage(rewards, groups)
    torch.testing.assert_close(out[:4], t(0.75, -0.25, -0.25, -0.25) / pdf)
    torch.testing.assert_close(out[4:8], t(0.25, 0.25, 0.25, -0.75) / pdf)


def test_bnpo_maps_rewards_to_unit_interval_and_degenerate_fit_uses_uniform():
    # one prompt: no spread to fit, α = β = 1; rewards in [−1, 1] mapped to [0, 1]
    out = bnpo_advantage(t(1, -1, -1, -1), ids(0, 0, 0, 0), reward_min=-1.0)
    torch.testing.assert_close(out, t(0.75, -0.25, -0.25, -0.25))
    with pytest.raises(ValueError, match="reward_max"):
        bnpo_advantage(t(1, 0), ids(0, 0), reward_min=1.0)


def test_bnpo_solved_and_failed_groups_are_zero_despite_clamped_weight():
    rewards = t(1, 1, 0, 0, 0, 0, 1, 0)
    groups = ids(0, 0, 1, 1, 2, 2, 3, 3)
    out = bnpo_advantage(rewards, groups, alpha=2.0, beta=2.0)  # pdf(0) = pdf(1) = 0
    assert torch.isfinite(out).all()
    assert torch.equal(out[:4], torch.zeros(4))


def test_bnpo_decomposition_averages_per_part_advantages():
    parts = {"correct": t(1, 0, 0, 0), "format": t(1, 1, 0, float("nan"))}
    ctx = make_rollouts(t(2, 1, 0, 0), reward_parts=parts)
    out = bnpo_advantage(ctx.rewards, ctx.group_ids, ctx, alpha=1.0, beta=1.0, decompose=True)
    # correct: r − 1/4; format over present [1, 1, 0]: r − 2/3, absent row 0; mean of the two
    expected = t((0.75 + 1 / 3) / 2, (-0.25 + 1 / 3) / 2, (-0.25 - 2 / 3) / 2, -0.25 / 2)
    torch.testing.assert_close(out, expected)


# ---------------------------------------------------------------- DGPO


@pytest.mark.parametrize(
    ("rewards", "expected"),
    [((1, 0, 0, 0), (2, -2 / 3, -2 / 3, -2 / 3)), ((1, 1, 0, 0), (1, 1, -1, -1))],
)
def test_dgpo_mad_normalisation_by_hand(rewards, expected):
    out = dgpo_advantage(t(*rewards), ids(0, 0, 0, 0), question_weighting=False)
    torch.testing.assert_close(out, t(*expected), atol=1e-3, rtol=0)
    assert out.abs().sum().item() == pytest.approx(4.0, abs=1e-3)  # Σ|A| = G at any difficulty


def test_dgpo_balances_update_magnitude_where_grpo_does_not():
    hard = grpo_advantage(t(1, 0, 0, 0), ids(0, 0, 0, 0), scale="group").abs().sum()
    even = grpo_advantage(t(1, 1, 0, 0), ids(0, 0, 0, 0), scale="group").abs().sum()
    assert hard < even  # GRPO: smaller total update for the harder group
    hard_d = dgpo_advantage(t(1, 0, 0, 0), ids(0, 0, 0, 0), question_weighting=False).abs().sum()
    even_d = dgpo_advantage(t(1, 1, 0, 0), ids(0, 0, 0, 0), question_weighting=False).abs().sum()
    assert hard_d.item() == pytest.approx(even_d.item(), abs=1e-3)


def test_dgpo_question_weights_by_hand():
    rewards = t(1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1)
    groups = ids(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2)
    out = dgpo_advantage(rewards, groups)
    # acc [0.25, 0.75], T = 2: w = 2·softmax([−0.125, −0.375]) ≈ [1.124, 0.876]; group 2 is invalid
    w0 = 2 / (1 + math.exp(-0.25))
    w1 = 2 - w0
    assert w0 == pytest.approx(1.124, abs=1e-3) and w1 == pytest.approx(0.876, abs=1e-3)
    expected = t(2 * w0, *[-2 / 3 * w0] * 3, *[2 / 3 * w1] * 3, -2 * w1, 0, 0, 0, 0)
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=0)


def test_dgpo_degenerate_groups_are_zero():
    out = dgpo_advantage(t(1, 1, 0, 0, 5), ids(0, 0, 1, 1, 2))
    assert torch.equal(out, torch.zeros(5))


# ---------------------------------------------------------------- Stratified GRPO


def _searches(*counts):
    return [" ".join(["<search>"] * c) + " answer" for c in counts]


def test_stratified_single_stratum_is_grpo():
    rewards, groups = t(1, 0, 0, 1, 0.2, 0.9, 0.4), ids(0, 0, 0, 0, 1, 1, 1)
    ctx = make_rollouts(rewards, groups, completions=_searches(2, 2, 2, 2, 0, 0, 0))
    for alpha in (1.0, 0.5):
        out = stratified_grpo_advantage(rewards, groups, ctx, alpha=alpha)
        torch.testing.assert_close(out, grpo_advantage(rewards, groups))


def test_stratified_by_hand_and_zero_mean_in_each_stratum():
    rewards = t(1, 0, 0, 1, 1, 0)
    ctx = make_rollouts(rewards, completions=_searches(0, 0, 0, 1, 1, 1))
    san = stratified_grpo_advantage(rewards, ctx.group_ids, ctx, alpha=1.0)
    # each stratum is [1, 0, 0] or [1, 1, 0]: mean 1/3 or 2/3, unbiased std sqrt(1/3)
    s = math.sqrt(1 / 3) + 1e-4
    torch.testing.assert_close(san, t(2 / 3 / s, -1 / 3 / s, -1 / 3 / s, 1 / 3 / s, 1 / 3 / s, -2 / 3 / s))
    assert san[:3].sum().item() == pytest.approx(0.0, abs=1e-6)
    assert san[3:].sum().item() == pytest.approx(0.0, abs=1e-6)
    blended = stratified_grpo_advantage(rewards, ctx.group_ids, ctx, alpha=0.25)
    gn = (rewards - 0.5) / (math.sqrt(0.3) + 1e-4)  # the whole group: mean 1/2, unbiased var 0.3
    torch.testing.assert_close(blended, 0.25 * san + 0.75 * gn)


def test_stratified_offset_in_one_stratum_changes_gn_not_san():
    rewards = t(1, 0, 0, 1, 1, 0)
    ctx = make_rollouts(rewards, completions=_searches(0, 0, 0, 1, 1, 1))
    shifted = rewards + t(0, 0, 0, 3, 3, 3)
    san = stratified_grpo_advantage(rewards, ctx.group_ids, ctx, alpha=1.0)
    san_shifted = stratified_grpo_advantage(shifted, ctx.group_ids, ctx, alpha=1.0)
    torch.testing.assert_close(san, san_shifted)
    gn = stratified_grpo_advantage(rewards, ctx.group_ids, ctx, alpha=0.0)
    gn_shifted = stratified_grpo_advantage(shifted, ctx.group_ids, ctx, alpha=0.0)
    assert (gn - gn_shifted).abs().max() > 0.5


def test_stratified_key_from_reward_part_and_batch_scope():
    rewards, groups = t(1, 0, 1, 0), ids(0, 0, 1, 1)
    ctx = make_rollouts(rewards, groups, reward_parts={"calls": t(0, 0, 1, 1)})
    out = stratified_grpo_advantage(rewards, groups, ctx, alpha=1.0, stratum_part="calls", scope="batch")
    # batch scope: strata {0, 1} and {2, 3} coincide with the groups here
    torch.testing.assert_close(out, grpo_advantage(rewards, groups))
    with pytest.raises(ValueError, match="'tools'"):
        stratified_grpo_advantage(rewards, groups, ctx, stratum_part="tools")
    with pytest.raises(ValueError, match="'prompt'"):
        stratified_grpo_advantage(rewards, groups, ctx, scope="prompt")


# ---------------------------------------------------------------- MC-GRPO


def test_mc_grpo_one_correct_of_three():
    out = mc_grpo_advantage(t(1, 0, 0), ids(0, 0, 0))
    assert isinstance(out, AdvantageOutput)
    # median 0; one 0 is the pivot (dropped), the other 0 has A = 0, the 1 has A > 0
    assert int(out.keep.sum()) == 2
    kept = out.advantages[out.keep]
    assert sorted(kept.tolist()) == [0.0, 1.0]
    assert out.advantages[0].item() == 1.0
    assert bool(out.keep[0])


def test_mc_grpo_two_correct_of_three():
    out = mc_grpo_advantage(t(1, 1, 0), ids(0, 0, 0))
    assert int(out.keep.sum()) == 2
    assert out.advantages[2].item() == -1.0 and bool(out.keep[2])
    kept_ones = out.advantages[:2][out.keep[:2]]
    assert kept_ones.tolist() == [0.0]


def test_mc_grpo_scales_by_hand():
    rewards, groups = t(0, 1, 3), ids(0, 0, 0)
    # median 1 (the pivot, row 1); MAD = median(|[−1, 0, 2]|) = 1
    mad = mc_grpo_advantage(rewards, groups, scale="mad")
    torch.testing.assert_close(mad.advantages, t(-1 / 1.001, 0, 2 / 1.001))
    assert mad.keep.tolist() == [True, False, True]
    std = math.sqrt(42 / 18)  # unbiased std of [0, 1, 3]
    torch.testing.assert_close(
        mc_grpo_advantage(rewards, groups, scale="std").advantages, t(-1, 0, 2) / (std + 1e-3)
    )
    # binary odd groups have MAD 0: the authors' scale multiplies A by 1/eps
    assert mc_grpo_advantage(t(1, 0, 0), ids(0, 0, 0), scale="mad").advantages[0].item() == pytest.approx(
        1000.0
    )
    with pytest.raises(ValueError, match="'iqr'"):
        mc_grpo_advantage(rewards, groups, scale="iqr")


@st.composite
def odd_binary_groups(draw):
    sizes = draw(st.lists(st.sampled_from([1, 3, 5, 7]), min_size=1, max_size=5))
    rewards = [draw(st.sampled_from([0.0, 1.0])) for _ in range(sum(sizes))]
    groups = [g for g, size in enumerate(sizes) for _ in range(size)]
    order = draw(st.permutations(range(len(groups))))
    return torch.tensor([rewards[i] for i in order]), torch.tensor([groups[i] for i in order])


@settings(max_examples=40, deadline=None)
@given(odd_binary_groups())
def test_mc_grpo_one_pivot_per_group_and_only_minority_learns(data):
    rewards, groups = data
    out = mc_grpo_advantage(rewards, groups)
    for g in groups.unique():
        members = groups == g
        assert int((~out.keep[members]).sum()) == 1  # exactly one pivot, even under ties
        r = rewards[members]
        majority = float(r.sum() * 2 > r.numel())
        adv = out.advantages[members]
        assert torch.equal(adv[r == majority], torch.zeros(int((r == majority).sum())))
        assert (adv[r != majority] != 0).all()


# ---------------------------------------------------------------- every estimator, default parameters


@st.composite
def random_batches(draw):
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=5))
    binary = draw(st.booleans())
    element = st.sampled_from([0.0, 1.0]) if binary else st.floats(-5, 5, allow_nan=False, width=32)
    rewards = [draw(element) for _ in range(sum(sizes))]
    groups = [g for g, size in enumerate(sizes) for _ in range(size)]
    lengths = [draw(st.integers(0, 5)) for _ in groups]
    return rewards, groups, lengths


@settings(max_examples=30, deadline=None)
@given(random_batches(), st.sampled_from(sorted(NAMES)))
def test_defaults_give_finite_values_of_batch_shape(batch, name):
    rewards, groups, lengths = batch
    parts = {
        "a": torch.tensor(rewards),
        "b": torch.tensor([r if i % 2 else float("nan") for i, r in enumerate(rewards)]),
    }
    ctx = make_rollouts(rewards, groups, lengths=lengths, num_tokens=5, reward_parts=parts)
    out = NAMES[name](ctx.rewards, ctx.group_ids, ctx)
    adv = out.advantages if isinstance(out, AdvantageOutput) else out
    assert adv.shape == (len(rewards),)
    assert torch.isfinite(adv).all()
