"""Token weights: entropy top quantile, EARL, D³S tokens, GTPO conflict tokens, rollout correction,
checked against hand-computed masks and weights."""

import math

import pytest
import torch
from factories import make_rollouts
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.token_weights import (
    d3s_token_weights,
    earl_weights,
    entropy_top_quantile,
    gtpo_conflict_weights,
    rollout_correction,
    scheduled_ratio,
)
from grpozoo.registry import token_weights


def test_registered_names():
    assert token_weights.get("entropy_top_quantile") is entropy_top_quantile
    assert token_weights.get("earl") is earl_weights
    assert token_weights.get("d3s_tokens") is d3s_token_weights
    assert token_weights.get("gtpo_conflict") is gtpo_conflict_weights
    assert token_weights.get("rollout_correction") is rollout_correction
    assert token_weights.spec("rollout_correction").needs == {"old_logprobs"}


# ---------------------------------------------------------------- entropy top quantile / EARL

# row 0 has 4 real tokens, row 1 has 3; the padding entropy (5.0) is the largest value and must be ignored
ENTROPIES = torch.tensor([[0.1, 0.9, 0.3, 0.5], [0.8, 0.2, 0.05, 5.0]])


def _entropy_batch(entropies=ENTROPIES, lengths=(4, 3)):
    return make_rollouts(
        [1.0, 0.0], lengths=list(lengths), num_tokens=entropies.shape[1], entropies=entropies
    )


def test_top_quantile_batch_by_hand():
    ctx = _entropy_batch()
    # N_valid = 7; fraction 0.2 -> ceil(1.4) = 2 tokens: 0.9 (row 0) and 0.8 (row 1)
    expected = torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0]])
    torch.testing.assert_close(entropy_top_quantile(ctx), expected)
    # fraction 0.5 -> ceil(3.5) = 4 tokens: 0.9, 0.8, 0.5, 0.3
    expected = torch.tensor([[0.0, 1, 1, 1], [1, 0, 0, 0]])
    torch.testing.assert_close(entropy_top_quantile(ctx, fraction=0.5), expected)


def test_top_quantile_sequence_scope_by_hand():
    ctx = _entropy_batch()
    # fraction 0.5 per row: row 0 keeps ceil(2.0) = 2 (0.9, 0.5), row 1 keeps ceil(1.5) = 2 (0.8, 0.2)
    expected = torch.tensor([[0.0, 1, 0, 1], [1, 1, 0, 0]])
    torch.testing.assert_close(entropy_top_quantile(ctx, fraction=0.5, scope="sequence"), expected)


def test_top_quantile_fraction_one_is_the_base_loss():
    ctx = _entropy_batch()
    mask = ctx.completion_mask.float()
    torch.testing.assert_close(entropy_top_quantile(ctx, fraction=1.0), mask)
    torch.testing.assert_close(earl_weights(ctx, rho=1.0), mask)
    torch.testing.assert_close(entropy_top_quantile(ctx, fraction=1.0, scope="sequence"), mask)


def test_top_quantile_ties_keep_the_exact_count():
    ctx = make_rollouts([1.0, 0.0], num_tokens=5, entropies=torch.full((2, 5), 0.3))
    out = entropy_top_quantile(ctx, fraction=0.3)  # ceil(3.0) = 3 of 10 equal entropies
    assert out.sum().item() == 3.0


def test_top_quantile_is_computed_without_gradient():
    entropies = ENTROPIES.clone().requires_grad_(True)
    out = entropy_top_quantile(_entropy_batch(entropies))
    assert not out.requires_grad


def test_top_quantile_empty_rows_and_bad_params():
    ctx = make_rollouts([1.0, 0.0], lengths=[0, 0], num_tokens=3, entropies=torch.ones(2, 3))
    assert torch.equal(entropy_top_quantile(ctx), torch.zeros(2, 3))
    with pytest.raises(ValueError):
        entropy_top_quantile(_entropy_batch(), fraction=1.5)
    with pytest.raises(ValueError):
        entropy_top_quantile(_entropy_batch(), scope="group")


def test_earl_keeps_ceil_rho_n_highest_entropy_tokens():
    ctx = _entropy_batch()
    # rho 0.2 of 7 real tokens -> 2, the two highest entropies, as the 80/20 mask
    torch.testing.assert_close(earl_weights(ctx), torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0]]))
    torch.testing.assert_close(earl_weights(ctx, rho=0.5), entropy_top_quantile(ctx, fraction=0.5))


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 6),
    st.data(),
    st.floats(0.0, 1.0),
    st.sampled_from(["batch", "sequence"]),
)
def test_property_exact_count_and_highest_scores(b, t, data, fraction, scope):
    lengths = data.draw(st.lists(st.integers(0, t), min_size=b, max_size=b))
    # few distinct values, so ties are common
    values = data.draw(st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.7, 2.0]), min_size=b * t, max_size=b * t))
    entropies = torch.tensor(values).view(b, t)
    ctx = make_rollouts([0.0] * b, lengths=lengths, num_tokens=t, entropies=entropies)
    out = entropy_top_quantile(ctx, fraction=fraction, scope=scope)
    mask = ctx.completion_mask.bool()
    assert out.shape == (b, t)
    assert ((out == 0) | (out == 1)).all()
    assert (out[~mask] == 0).all()
    rows = [slice(None)] if scope == "batch" else [slice(i, i + 1) for i in range(b)]
    for r in rows:
        n = int(mask[r].sum())
        assert int(out[r].sum()) == math.ceil(round(fraction * n, 9))
        kept = entropies[r][out[r].bool()]
        dropped = entropies[r][mask[r] & ~out[r].bool()]
        if kept.numel() and dropped.numel():
            assert kept.min() >= dropped.max()


# ---------------------------------------------------------------- D³S tokens

# scores |A|·H with A = [1, -2]:
#   row 0: H [0.5, 0.4, 0.1, 0.25] -> [0.5, 0.4, 0.1, 0.25]
#   row 1: H [0.3, 0.1, 0.15, 0.05] -> [0.6, 0.2, 0.3, 0.1]
# ranking: 0.6 (1,0) > 0.5 (0,0) > 0.4 (0,1) > 0.3 (1,2) > 0.25 (0,3) > 0.2 (1,1) > 0.1, 0.1
D3S_ENTROPIES = torch.tensor([[0.5, 0.4, 0.1, 0.25], [0.3, 0.1, 0.15, 0.05]])


def _d3s_batch(step, total_steps=11, advantages=None):
    adv = torch.tensor([1.0, -2.0]) if advantages is None else advantages
    return make_rollouts(
        [1.0, 0.0], entropies=D3S_ENTROPIES, advantages=adv, step=step, total_steps=total_steps
    )


def test_d3s_keeps_top_abs_advantage_times_entropy():
    # first step: rho = 0.25 -> ceil(0.25 * 8) = 2 tokens: 0.6 and 0.5
    out = d3s_token_weights(_d3s_batch(step=1), rho_start=0.25)
    torch.testing.assert_close(out, torch.tensor([[1.0, 0, 0, 0], [1, 0, 0, 0]]))


def test_d3s_linear_and_cosine_schedules_by_hand():
    # step 6 of 11: progress 0.5, both schedules give rho = 0.25 + 0.75 * 0.5 = 0.625 -> 5 tokens
    five = torch.tensor([[1.0, 1, 0, 1], [1, 0, 1, 0]])
    for schedule in ("linear", "cosine"):
        out = d3s_token_weights(_d3s_batch(step=6), rho_start=0.25, schedule=schedule)
        torch.testing.assert_close(out, five)
    # step 3 of 11: progress 0.2; linear rho = 0.4 -> ceil(3.2) = 4 tokens,
    # cosine rho = 0.25 + 0.75 * (1 - cos(0.2 pi)) / 2 = 0.3216 -> ceil(2.57) = 3 tokens
    linear = d3s_token_weights(_d3s_batch(step=3), rho_start=0.25)
    cosine = d3s_token_weights(_d3s_batch(step=3), rho_start=0.25, schedule="cosine")
    torch.testing.assert_close(linear, torch.tensor([[1.0, 1, 0, 0], [1, 0, 1, 0]]))
    torch.testing.assert_close(cosine, torch.tensor([[1.0, 1, 0, 0], [1, 0, 0, 0]]))
    # last step: rho = 1 keeps every real token
    torch.testing.assert_close(d3s_token_weights(_d3s_batch(step=11), rho_start=0.25), torch.ones(2, 4))


def test_scheduled_ratio_by_hand():
    assert scheduled_ratio(1, 11, 0.2, 1.0) == pytest.approx(0.2)
    assert scheduled_ratio(11, 11, 0.2, 1.0) == pytest.approx(1.0)
    assert scheduled_ratio(6, 11, 0.2, 1.0, "cosine") == pytest.approx(0.6)
    assert scheduled_ratio(9, 11, 0.2, 1.0, "constant") == pytest.approx(0.2)
    assert scheduled_ratio(1, 1, 0.2, 1.0) == pytest.approx(1.0)  # a one-step run is at its end


def test_d3s_ratio_one_is_a_no_op():
    ctx = make_rollouts(
        [1.0, 0.0], lengths=[4, 2], entropies=D3S_ENTROPIES, advantages=torch.tensor([1.0, -2.0])
    )
    out = d3s_token_weights(ctx, rho_start=1.0, rho_end=1.0)
    torch.testing.assert_close(out, ctx.completion_mask.float())


def test_d3s_uses_token_level_advantages():
    # token advantages flip the ranking of row 0: |A| = [0.1, 4, 1, 1] -> scores [0.05, 1.6, 0.1, 0.25]
    adv = torch.tensor([[0.1, -4.0, 1.0, 1.0], [-2.0, -2.0, -2.0, -2.0]])
    out = d3s_token_weights(_d3s_batch(step=1, advantages=adv), rho_start=0.25)  # 2 tokens: 1.6 and 0.6
    torch.testing.assert_close(out, torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0]]))


# ---------------------------------------------------------------- GTPO conflict tokens

A, B, C, D, X, Y, Z = 1, 2, 3, 4, 5, 6, 7


def _gtpo_batch(ids, advantages, lengths=None, group_ids=None, extras=None):
    ids = torch.tensor(ids)
    b, t = ids.shape
    ctx = make_rollouts(
        [0.0] * b,
        group_ids=group_ids,
        lengths=lengths,
        num_tokens=t,
        advantages=torch.tensor(advantages),
        extras=extras or {},
    )
    ctx.completion_ids = ids * ctx.completion_mask
    return ctx


def test_gtpo_shared_prefix_example_from_the_entry():
    # positive "ABCx", negative "ABDy": shared prefix "AB"
    ctx = _gtpo_batch([[A, B, C, X], [A, B, D, Y]], [1.0, -1.0])
    expected = torch.tensor([[2.0, 2, 1, 1], [0, 0, 1, 1]])
    torch.testing.assert_close(gtpo_conflict_weights(ctx), expected)
    torch.testing.assert_close(
        gtpo_conflict_weights(ctx, weight=3.0), torch.tensor([[3.0, 3, 1, 1], [0, 0, 1, 1]])
    )


def test_gtpo_shared_suffix_is_right_aligned():
    # positive "xAB" (padded to 4), negative "yzAB": the last two tokens match from the end
    ctx = _gtpo_batch([[X, A, B, 0], [Y, Z, A, B]], [1.0, -1.0], lengths=[3, 4])
    expected = torch.tensor([[1.0, 2, 2, 0], [1, 1, 0, 0]])
    torch.testing.assert_close(gtpo_conflict_weights(ctx), expected)


def test_gtpo_only_the_leading_run_counts():
    # position 2 holds B in both, but position 1 differs, so only position 0 is a conflict token
    ctx = _gtpo_batch([[A, C, B, X], [A, D, B, Y]], [1.0, -1.0])
    torch.testing.assert_close(gtpo_conflict_weights(ctx), torch.tensor([[2.0, 1, 1, 1], [0, 1, 1, 1]]))


def test_gtpo_needs_a_positive_and_a_negative_in_the_same_group():
    # two positives sharing a prefix: no conflict
    ctx = _gtpo_batch([[A, B, X], [A, B, Y]], [1.0, 0.5])
    torch.testing.assert_close(gtpo_conflict_weights(ctx), torch.ones(2, 3))
    # a positive and a negative in different groups: no conflict
    ctx = _gtpo_batch([[A, B, X], [A, B, Y]], [1.0, -1.0], group_ids=[0, 1])
    torch.testing.assert_close(gtpo_conflict_weights(ctx), torch.ones(2, 3))


def test_gtpo_zero_advantage_completions_are_neither_side():
    # positive "ABx", negative "ACy", zero "ABz": only A is shared by a positive and a negative
    ctx = _gtpo_batch([[A, B, X], [A, C, Y], [A, B, Z]], [1.0, -1.0, 0.0])
    expected = torch.tensor([[2.0, 1, 1], [0, 1, 1], [1, 1, 1]])
    torch.testing.assert_close(gtpo_conflict_weights(ctx), expected)


def test_gtpo_divide_by_conflict_count_option():
    # repository detail: each completion divided by its conflict count (2 here); a row without
    # conflicts (the zero-advantage one) is divided by 1
    ctx = _gtpo_batch([[A, B, C, X], [A, B, D, Y], [Z, Z, Z, Z]], [1.0, -1.0, 0.0])
    expected = torch.tensor([[1.0, 1, 0.5, 0.5], [0, 0, 0.5, 0.5], [1, 1, 1, 1]])
    torch.testing.assert_close(gtpo_conflict_weights(ctx, divide_by_conflict_count=True), expected)


def test_gtpo_signs_come_from_the_unshaped_advantage_when_handed_on():
    # after GTPO's entropy shaping both advantages are negative, but the GRPO signs are + and -
    extras = {"gtpo_unshaped_advantage": torch.tensor([1.0, -1.0])}
    ctx = _gtpo_batch([[A, B, C, X], [A, B, D, Y]], [-0.05, -1.05], extras=extras)
    torch.testing.assert_close(gtpo_conflict_weights(ctx), torch.tensor([[2.0, 2, 1, 1], [0, 0, 1, 1]]))


def test_gtpo_token_level_advantages_and_padding():
    ctx = _gtpo_batch([[A, B, C, 0], [A, B, D, Y]], [[1.0, 1.0, 1.0, 0.0], [-1.0] * 4], lengths=[3, 4])
    torch.testing.assert_close(gtpo_conflict_weights(ctx), torch.tensor([[2.0, 2, 1, 0], [0, 0, 1, 1]]))


# ---------------------------------------------------------------- rollout correction

MODES = ["token_tis", "token_mis", "sequence_tis", "sequence_mis"]


def _correction_batch(log_ratio, lengths=None):
    log_ratio = torch.as_tensor(log_ratio, dtype=torch.float32)
    b, t = log_ratio.shape
    sampling = torch.full((b, t), -1.5)
    return make_rollouts(
        [0.0] * b,
        lengths=lengths,
        num_tokens=t,
        sampling_logprobs=sampling,
        old_logprobs=sampling + log_ratio,
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geometric", [False, True])
def test_identical_logprobs_give_weight_one(mode, geometric):
    ctx = _correction_batch(torch.zeros(2, 4), lengths=[4, 2])
    out = rollout_correction(ctx, mode=mode, geometric=geometric)
    torch.testing.assert_close(out, ctx.completion_mask.float())


# token ratios 0.5, 1.5, 3, 10 against cap 2
TOKEN_LOG_RATIOS = [[math.log(0.5), math.log(1.5), math.log(3.0), math.log(10.0)]]


def test_token_tis_truncates_at_the_cap():
    out = rollout_correction(_correction_batch(TOKEN_LOG_RATIOS), mode="token_tis", cap=2.0)
    torch.testing.assert_close(out, torch.tensor([[0.5, 1.5, 2.0, 2.0]]))


def test_token_mis_masks_above_the_cap():
    ctx = _correction_batch(TOKEN_LOG_RATIOS)
    torch.testing.assert_close(
        rollout_correction(ctx, mode="token_mis"), torch.tensor([[0.5, 1.5, 0.0, 0.0]])
    )
    out = rollout_correction(ctx, mode="token_mis", mis_weight="indicator")
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.0, 0.0, 0.0]]))
    out = rollout_correction(ctx, mode="token_mis", cap_low=0.6)
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.5, 0.0, 0.0]]))


# row 0: token ratios 2, 1.5, 1 (+ padding with a wild value) -> sequence ratio 3, geometric 3^(1/3)
# row 1: token ratios 0.5, 1, 1, 1 -> sequence ratio 0.5, geometric 0.5^(1/4)
SEQ_LOG_RATIOS = [[math.log(2.0), math.log(1.5), 0.0, 50.0], [math.log(0.5), 0.0, 0.0, 0.0]]


def test_sequence_modes_by_hand():
    ctx = _correction_batch(SEQ_LOG_RATIOS, lengths=[3, 4])
    mask = ctx.completion_mask.float()
    col = lambda a, b: torch.tensor([[a], [b]]) * mask  # noqa: E731
    torch.testing.assert_close(rollout_correction(ctx, mode="sequence_tis"), col(2.0, 0.5))
    torch.testing.assert_close(rollout_correction(ctx, mode="sequence_mis"), col(0.0, 0.5))
    g0, g1 = 3.0 ** (1 / 3), 0.5**0.25
    torch.testing.assert_close(rollout_correction(ctx, mode="sequence_tis", geometric=True), col(g0, g1))
    torch.testing.assert_close(rollout_correction(ctx, mode="sequence_mis", geometric=True), col(g0, g1))
    out = rollout_correction(ctx, mode="sequence_mis", mis_weight="indicator", cap_low=0.6)
    torch.testing.assert_close(out, col(0.0, 0.0))


@pytest.mark.parametrize("mode", ["sequence_tis", "sequence_mis"])
def test_sequence_weight_is_constant_within_a_sequence(mode):
    torch.manual_seed(0)
    ctx = _correction_batch(torch.randn(3, 5) * 0.3, lengths=[5, 3, 1])
    out = rollout_correction(ctx, mode=mode, cap=5.0)
    for row, n in enumerate([5, 3, 1]):
        assert torch.allclose(out[row, :n], out[row, 0].expand(n))
        assert (out[row, n:] == 0).all()


def test_rollout_correction_is_detached_finite_and_checked():
    log_ratio = torch.tensor([[1000.0, -1000.0, 0.3]], requires_grad=True)
    ctx = _correction_batch(log_ratio.detach())
    ctx.old_logprobs = ctx.sampling_logprobs + log_ratio
    for mode in MODES:
        out = rollout_correction(ctx, mode=mode)
        assert not out.requires_grad
        assert torch.isfinite(out).all()
    torch.testing.assert_close(
        rollout_correction(ctx, mode="token_tis"), torch.tensor([[2.0, 0.0, math.exp(0.3)]])
    )
    torch.testing.assert_close(
        rollout_correction(ctx, mode="token_mis"), torch.tensor([[0.0, 0.0, math.exp(0.3)]])
    )
    ctx.old_logprobs = None
    with pytest.raises(ValueError, match="old_logprobs"):
        rollout_correction(ctx)
    with pytest.raises(ValueError):
        rollout_correction(_correction_batch(TOKEN_LOG_RATIOS), mode="group_tis")
