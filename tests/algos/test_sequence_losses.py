"""Sequence-, segment- and prefix-ratio losses (GSPO, GSPO-token, GMPO, DHPO, SSPO, MinPRO): values and
gradients by hand, and the limits where each coincides with the token- or sequence-level loss."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.algos.losses.sequence import (
    dhpo_loss,
    gmpo_loss,
    gspo_loss,
    gspo_token_loss,
    minpro_loss,
    prefix_min_ratio,
    segment_mean,
    sequence_advantages,
    sspo_loss,
    subsentence_ids,
)
from tests.factories import batch_for, make_rollouts

small = st.floats(-3.0, 3.0, allow_nan=False, width=32)


def _grad(fn, logp, *args, aggregate=None, **kwargs):
    """(loss, d aggregate / d logp) for a loss called as fn(logp, *args, **kwargs); without a ctx in
    ``args`` (old_logp, advantages, mask), one of the mask's shape."""
    if len(args) == 3:
        args = (*args, batch_for(args[2]))
    x = logp.detach().clone().requires_grad_(True)
    loss, diag = fn(x, *args, **kwargs)
    (loss.sum() if aggregate is None else aggregate(loss)).backward()
    return loss.detach(), x.grad, diag


def _sequence_mean(mask):
    return lambda loss: ((loss * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


# ----------------------------------------------------------------------------------------------------
# GSPO


def test_gspo_by_hand():
    log_ratios = torch.tensor(
        [
            [math.log(2.0), -math.log(2.0)],  # s = 1
            [0.0006, 0.0],  # s = e^0.0003 < 1.0004: inside
            [0.002, 0.002],  # s = e^0.002 > 1.0004: clipped (A > 0)
            [-0.002, 0.0],  # s = e^-0.001 < 0.9997: clipped (A < 0)
            [math.log(2.0), 100.0],  # s = 2 over the one real token: clipped; padding ignored
        ]
    )
    mask = torch.tensor([[1.0, 1], [1, 1], [1, 1], [1, 1], [1, 0]])
    adv = torch.tensor([2.0, 1.0, 1.0, -1.0, 1.0])
    loss, grad, diag = _grad(gspo_loss, log_ratios, torch.zeros(5, 2), adv, mask)
    s1 = math.exp(0.0003)
    expected = torch.tensor([[-2.0, -2.0], [-s1, -s1], [-1.0004, -1.0004], [0.9997, 0.9997], [-1.0004, 0.0]])
    torch.testing.assert_close(loss, expected)
    # the row's loss n·(−s·A) has d/dlogp_t = −s·A (s = exp(mean)), 0 where the sequence is clipped
    torch.testing.assert_close(grad, torch.tensor([[-2.0, -2.0], [-s1, -s1], [0, 0], [0, 0], [0, 0]]))
    torch.testing.assert_close(diag["clip_fraction_high"][:, 0], torch.tensor([0.0, 0, 1, 0, 1]))
    torch.testing.assert_close(diag["clip_fraction_low"][:, 0], torch.tensor([0.0, 0, 0, 1, 0]))
    torch.testing.assert_close(
        diag["sequence_ratio"][:, 0], torch.tensor([1.0, s1, math.exp(0.002), math.exp(-0.001), 2.0])
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(small, min_size=4, max_size=4), st.lists(st.floats(-5, 5, width=32), min_size=4, max_size=4))
def test_property_gspo_with_one_token_is_the_token_ratio(log_ratios, adv):
    logp, adv = torch.tensor(log_ratios).view(4, 1), torch.tensor(adv)
    args = (torch.zeros(4, 1), adv, torch.ones(4, 1))
    gspo, gspo_grad, _ = _grad(gspo_loss, logp, *args, eps_low=0.2, eps_high=0.28)
    ppo, ppo_grad, _ = _grad(ppo_clip_loss, logp, *args, eps_low=0.2, eps_high=0.28)
    torch.testing.assert_close(gspo, ppo)
    torch.testing.assert_close(gspo_grad, ppo_grad)


def test_gspo_averages_token_advantages_per_row():
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert sequence_advantages(torch.tensor([[1.0, 3.0, 50.0]]), mask).tolist() == [2.0]
    logp = torch.tensor([[0.1, -0.2, 0.0]])
    seq, _ = gspo_loss(logp, torch.zeros(1, 3), torch.tensor([2.0]), mask, batch_for(mask))
    tok, _ = gspo_loss(logp, torch.zeros(1, 3), torch.tensor([[1.0, 3.0, 50.0]]), mask, batch_for(mask))
    torch.testing.assert_close(seq, tok)


# ----------------------------------------------------------------------------------------------------
# GSPO-token


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-0.01, 0.01), min_size=12, max_size=12),
    st.lists(st.floats(-3, 3, width=32), min_size=3, max_size=3),
)
def test_property_gspo_token_equals_gspo_for_sequence_advantages(log_ratios, adv):
    logp, adv = torch.tensor(log_ratios).view(3, 4), torch.tensor(adv)
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    args = (torch.zeros(3, 4), adv, mask)
    for aggregate in (None, _sequence_mean(mask)):
        seq, seq_grad, seq_diag = _grad(gspo_loss, logp, *args, aggregate=aggregate)
        tok, tok_grad, tok_diag = _grad(gspo_token_loss, logp, *args, aggregate=aggregate)
        torch.testing.assert_close(tok, seq)
        torch.testing.assert_close(tok_grad, seq_grad)
        torch.testing.assert_close(tok_diag["clip_fraction"], seq_diag["clip_fraction"])


def test_gspo_token_gives_each_token_its_own_advantage():
    logp = torch.log(torch.tensor([[2.0, 0.5]]))  # s = 1
    loss, grad, _ = _grad(
        gspo_token_loss, logp, torch.zeros(1, 2), torch.tensor([[1.0, -3.0]]), torch.ones(1, 2)
    )
    torch.testing.assert_close(loss, torch.tensor([[-1.0, 3.0]]))
    torch.testing.assert_close(grad, torch.tensor([[-1.0, 3.0]]))  # −s·A_t on token t alone


def test_gspo_token_clips_the_whole_sequence_together():
    logp = torch.log(torch.tensor([[2.0, 1.0]]))  # s = √2: clipped for A > 0
    loss, grad, diag = _grad(
        gspo_token_loss, logp, torch.zeros(1, 2), torch.tensor([[1.0, 5.0]]), torch.ones(1, 2)
    )
    torch.testing.assert_close(loss, torch.tensor([[-1.0004, -5.002]]))
    assert torch.equal(grad, torch.zeros(1, 2))
    assert diag["clip_fraction"].sum() == 2


# ----------------------------------------------------------------------------------------------------
# GMPO


def test_gmpo_by_hand():
    log_ratios = torch.tensor([[0.6, -0.2], [0.6, -0.6]])
    loss, grad, diag = _grad(
        gmpo_loss, log_ratios, torch.zeros(2, 2), torch.tensor([1.0, -1.0]), torch.ones(2, 2)
    )
    # A = +1: only the upper clip binds, [0.6, -0.2] -> [0.4, -0.2], mean 0.1
    # A = -1: only the lower clip binds, [0.6, -0.6] -> [0.6, -0.4], mean 0.1
    r = math.exp(0.1)
    torch.testing.assert_close(loss, torch.tensor([[-r, -r], [r, r]]))
    # the row's loss 2·(−A·r) has d/dℓ_t = −A·r on unclipped tokens, 0 on clipped ones
    torch.testing.assert_close(grad, torch.tensor([[0.0, -r], [r, 0.0]]))
    torch.testing.assert_close(diag["clip_fraction_high"], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    torch.testing.assert_close(diag["clip_fraction_low"], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))


def test_gmpo_geometric_mean_damps_an_outlier_token():
    # arithmetic mean of token ratios [e^0.3, 1, 1, 1] is 1.087; GMPO's geometric mean is e^0.075 = 1.078
    logp = torch.tensor([[0.3, 0.0, 0.0, 0.0]])
    loss, _ = gmpo_loss(
        logp, torch.zeros(1, 4), torch.tensor([1.0]), torch.ones(1, 4), batch_for(torch.ones(1, 4))
    )
    torch.testing.assert_close(loss, torch.full((1, 4), -math.exp(0.075)))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5, width=32), min_size=3, max_size=3))
def test_property_gmpo_on_policy_gradient_is_grpo(adv):
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0], [1, 0, 0]])
    logp, adv = torch.full((3, 3), -1.0), torch.tensor(adv)
    args = (logp.clone(), adv, mask)
    _, gmpo_grad, _ = _grad(gmpo_loss, logp, *args, aggregate=_sequence_mean(mask))
    _, ppo_grad, _ = _grad(ppo_clip_loss, logp, *args, aggregate=_sequence_mean(mask))
    torch.testing.assert_close(gmpo_grad, ppo_grad)


# ----------------------------------------------------------------------------------------------------
# DHPO (Min et al. 2026, arXiv:2601.05607)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(small, min_size=12, max_size=12), st.lists(st.floats(-3, 3, width=32), min_size=3, max_size=3)
)
def test_property_dhpo_token_weight_one_is_grpo_and_zero_is_gspo(log_ratios, adv):
    logp, adv = torch.tensor(log_ratios).view(3, 4), torch.tensor(adv)
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    args = (torch.zeros(3, 4), adv, mask)
    token, token_grad, _ = _grad(dhpo_loss, logp, *args, token_weight=1.0)
    ppo, ppo_grad, _ = _grad(ppo_clip_loss, logp, *args, eps_low=0.2, eps_high=0.28)
    torch.testing.assert_close(token, ppo)
    torch.testing.assert_close(token_grad, ppo_grad)
    seq, seq_grad, _ = _grad(dhpo_loss, logp, *args, token_weight=0.0)
    gspo, gspo_grad, _ = _grad(gspo_loss, logp, *args)
    torch.testing.assert_close(seq, gspo)
    torch.testing.assert_close(seq_grad, gspo_grad)


@pytest.mark.parametrize(
    "params", [{"token_weight": 0.0}, {"token_weight": 0.3}, {"token_weight": 1.0}, {"mix": "entropy"}]
)
def test_dhpo_on_policy_value_is_minus_a(params):
    ctx = make_rollouts([1.0, 0.0], num_tokens=3, entropies=torch.tensor([[0.1, 2.0, 0.5], [1.0, 0.2, 3.0]]))
    logp = torch.randn(2, 3)
    loss, _ = dhpo_loss(logp, logp, torch.tensor([1.5, -0.5]), torch.ones(2, 3), ctx, **params)
    torch.testing.assert_close(loss, torch.tensor([[-1.5] * 3, [0.5] * 3]))


def test_dhpo_outlier_token_moves_the_mix_by_at_most_its_clip_range():
    logp = torch.log(torch.tensor([[1.0, 1.0, 10.0, 1.0, 1.0]]))
    loss, _ = dhpo_loss(
        logp, torch.zeros(1, 5), torch.tensor([1.0]), torch.ones(1, 5), batch_for(torch.ones(1, 5))
    )
    # s = 10^(1/5) clips to 1.0004; the outlier's token branch clips to 1.28; w = 0.5
    torch.testing.assert_close(loss, torch.tensor([[-1.0002, -1.0002, -1.1402, -1.0002, -1.0002]]))
    assert (-loss - 1.0).max() <= 0.5 * 0.28 + 0.5 * 4e-4 + 1e-6


def test_dhpo_entropy_guided_weights_by_hand():
    ctx = make_rollouts([1.0], num_tokens=2, entropies=torch.tensor([[1.0, 3.0]]))  # standardised: [-1, 1]
    _, diag = dhpo_loss(
        torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2), ctx, mix="entropy"
    )
    torch.testing.assert_close(diag["mix_weight"], torch.sigmoid(torch.tensor([[-1.0, 1.0]])))


def test_dhpo_rejects_unknown_mix():
    with pytest.raises(ValueError, match="mix='geometric'"):
        dhpo_loss(
            torch.zeros(1, 1),
            torch.zeros(1, 1),
            torch.ones(1),
            torch.ones(1, 1),
            batch_for(torch.ones(1, 1)),
            mix="geometric",
        )


# ----------------------------------------------------------------------------------------------------
# SSPO (Yang et al. 2025, arXiv:2511.04256)


def test_subsentence_ids_by_hand():
    texts = [["Hi", ",", " there", ".\n", "x", " y"], ["3.5", " .", "z"]]
    ids = subsentence_ids(texts, 6)
    torch.testing.assert_close(ids, torch.tensor([[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1]]))
    assert subsentence_ids([["a;", "b.", "c"]], 3, delimiters=";").tolist() == [[0, 1, 1]]


def test_segment_mean_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    ids = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])  # same labels in different rows are different segments
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 1, 1, 1]])
    torch.testing.assert_close(
        segment_mean(values, ids, mask), torch.tensor([[1.5, 1.5, 3.0, 0.0], [5.5, 5.5, 7.5, 7.5]])
    )


def _sspo_ctx(texts, entropies=None):
    b, t = len(texts), max(len(row) for row in texts)
    entropies = torch.full((b, t), 0.7) if entropies is None else entropies
    return make_rollouts(
        [1.0] * b,
        lengths=[len(r) for r in texts],
        num_tokens=t,
        completion_token_texts=texts,
        entropies=entropies,
    )


@settings(max_examples=30, deadline=None)
@given(st.lists(small, min_size=8, max_size=8), st.lists(st.floats(-3, 3, width=32), min_size=2, max_size=2))
def test_property_sspo_limits_are_gspo_and_grpo(log_ratios, adv):
    logp, adv = torch.tensor(log_ratios).view(2, 4), torch.tensor(adv)
    args = (torch.zeros(2, 4), adv, torch.ones(2, 4))
    one_segment = _sspo_ctx([["a", "b", "c", "d"], ["e", "f", "g", "h"]])  # no delimiter anywhere
    sspo, sspo_grad, _ = _grad(sspo_loss, logp, *args, one_segment)
    gspo, gspo_grad, _ = _grad(gspo_loss, logp, *args, eps_low=0.2, eps_high=0.2)
    torch.testing.assert_close(sspo, gspo)
    torch.testing.assert_close(sspo_grad, gspo_grad)
    one_token_each = _sspo_ctx([["a.", "b.", "c.", "d."], ["e,", "f;", "g!", "h?"]])
    sspo, sspo_grad, _ = _grad(sspo_loss, logp, *args, one_token_each)
    ppo, ppo_grad, _ = _grad(ppo_clip_loss, logp, *args)
    torch.testing.assert_close(sspo, ppo)
    torch.testing.assert_close(sspo_grad, ppo_grad)


def test_sspo_extreme_token_only_affects_its_own_segment():
    ctx = _sspo_ctx([["a", "b.", "c", "d"]])  # segments [0, 0, 1, 1]
    logp = torch.tensor([[0.0, 0.0, 5.0, 0.0]])
    args = (torch.zeros(1, 4), torch.tensor([1.0]), torch.ones(1, 4))
    loss, grad, diag = _grad(sspo_loss, logp, *args, ctx)
    torch.testing.assert_close(
        diag["segment_ratio"], torch.tensor([[1.0, 1.0, math.exp(2.5), math.exp(2.5)]])
    )
    torch.testing.assert_close(diag["clip_fraction"], torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    torch.testing.assert_close(grad, torch.tensor([[-1.0, -1.0, 0.0, 0.0]]))
    _, _, gspo_diag = _grad(gspo_loss, logp, *args)
    assert gspo_diag["clip_fraction"].sum() == 4  # GSPO discards the whole response


def test_sspo_entropy_scale_by_hand():
    # segments [0, 0, 1, 1, 2, 2] with mean entropies 0.5, 1, 2: batch mean 7/6; one ε per segment
    ctx = _sspo_ctx([["a", "b.", "c", "d.", "e", "f"]], torch.tensor([[0.25, 0.75, 1.0, 1.0, 1.5, 2.5]]))
    _, diag = sspo_loss(torch.zeros(1, 6), torch.zeros(1, 6), torch.tensor([1.0]), torch.ones(1, 6), ctx)
    torch.testing.assert_close(diag["eps_scale"], torch.tensor([[0.5, 0.5, 6 / 7, 6 / 7, 12 / 7, 12 / 7]]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 5.0, width=32), min_size=4, max_size=4))
def test_property_sspo_eps_is_monotone_in_segment_entropy(segment_entropies):
    ctx = _sspo_ctx(
        [["a", "b.", "c", "d.", "e", "f.", "g", "h"]],
        torch.tensor([segment_entropies]).repeat_interleave(2, dim=1),
    )
    _, diag = sspo_loss(torch.zeros(1, 8), torch.zeros(1, 8), torch.tensor([1.0]), torch.ones(1, 8), ctx)
    scale = diag["eps_scale"][0, ::2]
    for i in range(4):
        for j in range(4):
            if segment_entropies[i] < segment_entropies[j]:
                assert scale[i] <= scale[j]


def test_sspo_needs_token_texts():
    ctx = make_rollouts([1.0], num_tokens=2, completion_token_texts=None)
    with pytest.raises(ValueError, match="completion_token_texts"):
        sspo_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2), ctx)


# ----------------------------------------------------------------------------------------------------
# MinPRO (Lei et al. 2026, arXiv:2601.22718)


def test_prefix_min_ratio_by_hand():
    log_ratios = torch.log(torch.tensor([[1.0, 1.0, 0.1, 2.0, 1.0]]))
    torch.testing.assert_close(
        prefix_min_ratio(log_ratios, torch.ones(1, 5)), torch.tensor([[1.0, 1.0, 1.0, 0.1, 0.1]])
    )


def test_prefix_min_ratio_ignores_padding_holes():
    log_ratios = torch.log(torch.tensor([[1.0, 0.01, 1.0]]))
    torch.testing.assert_close(
        prefix_min_ratio(log_ratios, torch.tensor([[1.0, 0.0, 1.0]])), torch.ones(1, 3)
    )


def test_minpro_by_hand():
    logp = torch.log(torch.tensor([[1.0, 1.0, 0.1, 2.0, 1.0]]))
    loss, grad, diag = _grad(minpro_loss, logp, torch.zeros(1, 5), torch.tensor([1.0]), torch.ones(1, 5))
    # −w·min(ρ, clip(ρ, 0.8, 1.2)) with w = [1, 1, 1, 0.1, 0.1]; ρ = 2 clips at 1.2
    torch.testing.assert_close(loss, torch.tensor([[-1.0, -1.0, -0.1, -0.12, -0.1]]))
    torch.testing.assert_close(grad, torch.tensor([[-1.0, -1.0, -0.1, 0.0, -0.1]]))
    torch.testing.assert_close(diag["prefix_weight"], torch.tensor([[1.0, 1.0, 1.0, 0.1, 0.1]]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5, width=32), min_size=6, max_size=6))
def test_property_minpro_on_policy_is_grpo(adv):
    logp, adv = torch.full((2, 3), -0.5), torch.tensor(adv).view(2, 3)
    args = (logp.clone(), adv, torch.ones(2, 3))
    minpro, minpro_grad, _ = _grad(minpro_loss, logp, *args)
    ppo, ppo_grad, _ = _grad(ppo_clip_loss, logp, *args)
    torch.testing.assert_close(minpro, ppo)
    torch.testing.assert_close(minpro_grad, ppo_grad)


@settings(max_examples=40, deadline=None)
@given(st.lists(small, min_size=6, max_size=6), st.lists(small, min_size=6, max_size=6), st.integers(0, 5))
def test_property_prefix_weight_is_causal_and_non_increasing(first, second, k):
    a = torch.tensor([first])
    b = torch.cat([a[:, :k], torch.tensor([second])[:, k:]], dim=1)  # equal before position k
    mask = torch.ones(1, 6)
    wa, wb = prefix_min_ratio(a, mask), prefix_min_ratio(b, mask)
    torch.testing.assert_close(wa[:, : k + 1], wb[:, : k + 1])  # w_t reads only tokens < t
    assert (wa[0, 2:] <= wa[0, 1:-1]).all()  # non-increasing once a ratio has been seen
    _, _, capped = _grad(minpro_loss, a, torch.zeros(1, 6), torch.ones(1), mask, max_weight=1.0)
    w = capped["prefix_weight"][0]
    assert (w[1:] <= w[:-1]).all() and (w <= 1).all()
