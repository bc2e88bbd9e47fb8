"""Preference and pairwise objectives over a group: TRPA (Su et al. 2025, arXiv:2504.04524), CoPG
(Flet-Berliac et al. 2024, arXiv:2406.19185), POWER-DL (Rashidinejad & Tian 2024, arXiv:2412.09544),
VerIPO's best-vs-worst DPO (Li et al. 2025, arXiv:2505.19000) and Rank-GRPO (Zhu et al. 2025,
arXiv:2510.20150), checked on hand-made tensors against the properties that define them."""

import math

import pytest
import torch
from factories import make_rollouts
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.advantages.ranked_lists import (
    causal_rank_rewards,
    item_relevance,
    normalise_item,
    rank_grpo_advantage,
)
from grpozoo.algos.aggregation import BatchTotals, per_prompt_mean
from grpozoo.algos.losses.preference import (
    best_worst_dpo_loss,
    copg_loss,
    power_dl_loss,
    power_pair_logits,
    preference_pairs,
    rank_grpo_loss,
    trpa_loss,
)
from grpozoo.algos.losses.sequence import sspo_loss
from grpozoo.registry import losses

PAIRWISE = {"trpa": {"ref_logprobs"}, "copg": {"ref_logprobs"}, "power_dl": set(), "best_worst_dpo": {"ref_logprobs"}}


def _per_prompt(loss, mask, ctx):
    return per_prompt_mean(loss, mask, ctx.group_ids, BatchTotals.of(mask, mask.shape[1], ctx.group_ids))


def _dense(group_ids):
    return torch.unique(torch.as_tensor(group_ids), return_inverse=True)[1]


def test_pairwise_losses_keep_groups_whole_and_ask_for_what_they_read():
    for name, needs in PAIRWISE.items():
        assert losses.spec(name).whole_groups is True
        assert losses.spec(name).needs == needs
    assert losses.spec("rank_grpo").whole_groups is False  # its ratio compares no rows


# ------------------------------------------------------------------------------ pairs


def test_trpa_pairs_are_only_formed_across_different_levels():
    rewards = torch.tensor([1.0, 1.0, 0.5, 0.0, 0.5, 1.0, 1.0, 0.0])
    group_ids = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    pairs = preference_pairs(rewards, _dense(group_ids), "cross_level")
    found = {(int(w), int(lo)) for w, lo in zip(pairs.winner, pairs.loser, strict=True)}
    # group 0: levels {1: rows 0,1; 0.5: rows 2,4; 0: row 3}; group 1: {1: rows 5,6; 0: row 7}
    expected = {(0, 2), (0, 4), (0, 3), (1, 2), (1, 4), (1, 3), (2, 3), (4, 3), (5, 7), (6, 7)}
    assert found == expected
    assert (rewards[pairs.winner] > rewards[pairs.loser]).all()
    assert (group_ids[pairs.winner] == group_ids[pairs.loser]).all()


@settings(max_examples=50, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 6)),
                  min_size=1, max_size=12)
)
def test_best_worst_pairs_never_pair_two_completions_with_the_same_verdict(data):
    group_ids = torch.tensor([g for g, _, _ in data])
    rewards = torch.tensor([r for _, r, _ in data])
    lengths = torch.tensor([n for _, _, n in data])
    pairs = preference_pairs(rewards, _dense(group_ids), "best_worst", lengths)
    assert (rewards[pairs.winner] > rewards[pairs.loser]).all()
    for g in group_ids.unique():
        members = group_ids == g
        in_group = group_ids[pairs.winner] == g
        mixed = rewards[members].max() > rewards[members].min()
        assert int(in_group.sum()) == int(mixed)  # one pair per group with two verdicts, none otherwise
        if mixed:
            w, lo = int(pairs.winner[in_group]), int(pairs.loser[in_group])
            assert rewards[w] == rewards[members].max() and rewards[lo] == rewards[members].min()
            best = members & (rewards == rewards[members].max())
            assert lengths[w] == lengths[best].max()  # among tied best, the longest is chosen


# ------------------------------------------------------------------------------ TRPA


def test_trpa_swapping_winner_and_loser_flips_the_sign_of_the_logit():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.5]])
    ref = torch.tensor([[-1.5, -1.5], [-1.0, -0.2]])
    mask = torch.ones(2, 2)
    margins = []
    for rewards in ([1.0, 0.0], [0.0, 1.0]):
        ctx = make_rollouts(rewards, num_tokens=2, ref_logprobs=ref)
        _, diag = trpa_loss(logp, logp, torch.zeros(2), mask, ctx, beta=0.1, anisotropy=2.5)
        margins.append(diag["pair_margin"][0, 0])
    # s = mean(logp − ref) = [0, 0.1]: h = 0.1·2.5·(s_w − s_l), the winner at the top level both times
    torch.testing.assert_close(margins[0], torch.tensor(-0.025))
    torch.testing.assert_close(margins[1], -margins[0])


def test_trpa_loss_by_hand_with_the_top_level_weight_and_the_trust_region():
    # one group at three levels: pairs (0,1), (0,2) with the winner at the top level (×2.5), (1,2)
    ctx = make_rollouts([1.0, 0.5, 0.0], num_tokens=1, ref_logprobs=torch.zeros(3, 1))
    mask = torch.ones(3, 1)
    logp = torch.tensor([[0.4], [0.0], [-0.4]], requires_grad=True)
    loss, _ = trpa_loss(logp, logp.detach(), torch.zeros(3), mask, ctx, beta=0.5, anisotropy=2.5)
    h = torch.tensor([0.5 * 2.5 * 0.4, 0.5 * 2.5 * 0.8, 0.5 * 0.4])
    expected = torch.nn.functional.softplus(-h).mean()
    torch.testing.assert_close(loss, expected.expand(3, 1))  # on every token of the group; KL(old) = 0
    # away from the old policy the trust region adds coef·k3 with π_old as the reference, per token
    old = torch.tensor([[0.0], [0.0], [0.0]])
    moved, diag = trpa_loss(logp, old, torch.zeros(3), mask, ctx, beta=0.5, trust_region_coef=0.1)
    k3 = torch.exp(old - logp) - 1 - (old - logp)
    torch.testing.assert_close(moved, expected + 0.1 * k3)
    torch.testing.assert_close(diag["kl_old"], k3.detach())


def test_trpa_single_level_group_has_no_pair():
    ctx = make_rollouts([1.0, 1.0, 0.0, 1.0], group_ids=[0, 0, 1, 1], num_tokens=2, ref_logprobs=torch.zeros(4, 2))
    logp = -torch.rand(4, 2)
    loss, diag = trpa_loss(logp, logp, torch.zeros(4), torch.ones(4, 2), ctx)
    assert (loss[:2] == 0).all() and (loss[2:] > 0).all()
    torch.testing.assert_close(diag["paired_fraction"][:, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]))


# ------------------------------------------------------------------------------ CoPG


def test_copg_loss_is_zero_at_the_analytic_optimum_of_a_toy_bandit():
    # a 4-armed bandit, one completion per arm: the minimiser is π* ∝ π_ref·exp(R/β)
    beta = 0.5
    rewards = torch.tensor([1.0, 0.2, -0.5, 0.0])
    ref_logits = torch.tensor([0.3, -0.2, 0.1, 0.0])
    ref = torch.log_softmax(ref_logits, 0).unsqueeze(1)
    ctx = make_rollouts(rewards, num_tokens=1, ref_logprobs=ref)
    mask = torch.ones(4, 1)
    optimum = torch.log_softmax(ref_logits + rewards / beta, 0).unsqueeze(1).requires_grad_(True)
    loss, diag = copg_loss(optimum, optimum.detach(), torch.zeros(4), mask, ctx, beta=beta)
    torch.testing.assert_close(loss, torch.zeros(4, 1), atol=1e-10, rtol=0)
    _per_prompt(loss, mask, ctx).backward()
    torch.testing.assert_close(optimum.grad, torch.zeros(4, 1), atol=1e-6, rtol=0)
    # and gradient descent on the loss from the uniform policy finds that optimum
    logits = torch.zeros(4, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=3.0)
    for _ in range(60):
        opt.zero_grad()
        logp = torch.log_softmax(logits, 0).unsqueeze(1)
        _per_prompt(copg_loss(logp, logp.detach(), torch.zeros(4), mask, ctx, beta=beta)[0], mask, ctx).backward()
        opt.step()
    torch.testing.assert_close(torch.softmax(logits, 0), torch.exp(optimum.detach()).squeeze(1), atol=1e-4, rtol=0)


def test_copg_is_symmetric_under_swapping_the_two_responses():
    logp = torch.tensor([[-1.0, -2.0, -0.1], [-0.5, -0.3, -0.9]])
    ref = torch.tensor([[-1.2, -1.0, -0.4], [-0.6, -0.6, -0.6]])
    mask = torch.ones(2, 3)
    swap = [1, 0]
    a = logp.clone().requires_grad_(True)
    b = logp[swap].clone().requires_grad_(True)
    ctx = make_rollouts([1.0, 0.25], num_tokens=3, ref_logprobs=ref)
    swapped = make_rollouts([0.25, 1.0], num_tokens=3, ref_logprobs=ref[swap])
    loss_a, _ = copg_loss(a, a.detach(), torch.zeros(2), mask, ctx, beta=0.2)
    loss_b, _ = copg_loss(b, b.detach(), torch.zeros(2), mask, swapped, beta=0.2)
    torch.testing.assert_close(loss_a, loss_b[swap])
    # δ = (1 − 0.25) − 0.2·((−3.1 + 2.6) − (−1.7 + 1.8)) = 0.75 + 0.12
    torch.testing.assert_close(loss_a[0, 0], torch.tensor(0.87**2))
    loss_a.sum().backward()
    loss_b.sum().backward()
    torch.testing.assert_close(a.grad, b.grad[swap])


# ------------------------------------------------------------------------------ POWER-DL


def test_power_logit_is_the_length_weighted_entropy_reward_gap():
    logp = torch.tensor([[-1.0, -1.0, 0.0, 0.0], [-0.5, -0.5, -0.5, -0.5]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    pairs = preference_pairs(torch.tensor([1.0, 0.0]), torch.tensor([0, 0]), "best_worst")
    # r(y) = β·(log π(y) + 1)/|y|: winner (−2 + 1)/2 = −0.5, loser (−2 + 1)/4 = −0.25
    torch.testing.assert_close(power_pair_logits(logp, mask, pairs, beta=2.0), torch.tensor([2.0 * (-0.5 + 0.25)]))


def test_power_dl_gradient_vanishes_at_the_dynamic_label_not_at_certainty():
    beta, rate = 1.0, 0.3
    mask = torch.ones(2, 1)
    ctx = make_rollouts([1.0, 0.0], num_tokens=1)
    old = torch.tensor([[-1.0], [0.0]])  # the old policy prefers the loser: h_old = β·((−1+1) − (0+1)) = −1
    label = (1 - rate) + rate * torch.sigmoid(torch.tensor(-1.0))
    # move the winner so that σ(h) equals the label: h = logit(label)
    h = torch.log(label / (1 - label))
    logp = torch.tensor([[h.item() / beta], [0.0]], requires_grad=True)  # h = β·((logp_w + 1) − (0 + 1))
    loss, diag = power_dl_loss(logp, old, torch.zeros(2), mask, ctx, beta=beta, label_rate=rate)
    torch.testing.assert_close(diag["label"][:, 0], label.expand(2))
    _per_prompt(loss, mask, ctx).backward()
    torch.testing.assert_close(logp.grad, torch.zeros(2, 1), atol=1e-6, rtol=0)
    # with fixed hard labels (plain POWER) the same point is still pushed toward certainty
    hard = logp.detach().clone().requires_grad_(True)
    loss, _ = power_dl_loss(hard, old, torch.zeros(2), mask, ctx, beta=beta, label_rate=0.0)
    _per_prompt(loss, mask, ctx).backward()
    assert hard.grad[0, 0] < -0.05 and hard.grad[1, 0] > 0.05


# ------------------------------------------------------------------------------ VerIPO DPO


def test_dpo_loss_is_log_2_when_the_policy_equals_the_reference():
    logp = -torch.rand(6, 4)
    ctx = make_rollouts([1.0, 0.0, 0.0, 1.0, 1.0, 0.5], group_ids=[0, 0, 0, 1, 1, 1], num_tokens=4, ref_logprobs=logp)
    mask = ctx.completion_mask.float()
    loss, diag = best_worst_dpo_loss(logp, logp, torch.zeros(6), mask, ctx)
    torch.testing.assert_close(loss, torch.full((6, 4), math.log(2.0)))
    torch.testing.assert_close(diag["pair_margin"], torch.zeros(6, 4))


def test_dpo_pushes_the_chosen_up_and_the_rejected_down_and_ignores_the_rest():
    ref = torch.zeros(3, 2)
    ctx = make_rollouts([1.0, 0.5, 0.0], num_tokens=2, ref_logprobs=ref)
    logp = torch.zeros(3, 2, requires_grad=True)
    loss, _ = best_worst_dpo_loss(logp, logp.detach(), torch.zeros(3), torch.ones(3, 2), ctx, beta=0.1)
    loss[0, 0].backward()  # the group's value: −log σ(0); ∂/∂logp_c = −β/2 per token, +β/2 for the rejected
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.05, -0.05], [0.0, 0.0], [0.05, 0.05]]))


# ------------------------------------------------------------------------------ Rank-GRPO


def test_a_later_items_rank_reward_never_depends_on_an_earlier_items_relevance():
    gen = torch.Generator().manual_seed(0)
    relevance = (torch.rand(3, 8, generator=gen) > 0.5).double()
    for reward in ("dcg_suffix", "own"):
        base = causal_rank_rewards(relevance, reward)
        for j in range(8):
            changed = relevance.clone()
            changed[:, j] = 1 - changed[:, j]
            moved = causal_rank_rewards(changed, reward)
            torch.testing.assert_close(moved[:, j + 1:], base[:, j + 1:])
            assert (moved[:, : j + 1] != base[:, : j + 1]).any(dim=0)[j]
    # the suffix DCG by hand: rel = [1, 0, 1] -> r_3 = 1/log2(4), r_2 = r_3, r_1 = 1 + r_3
    torch.testing.assert_close(
        causal_rank_rewards(torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)),
        torch.tensor([[1.5, 0.5, 0.5]], dtype=torch.float64),
    )


def test_rank_level_ratio_equals_the_sspo_segment_ratio_when_segments_are_items():
    texts = [["1.", " A", "\n", "2.", " B", "\n"], ["x", "\n", "y", "z"]]
    mask = torch.tensor([[1.0] * 6, [1.0] * 4 + [0.0] * 2])
    gen = torch.Generator().manual_seed(3)
    old = -torch.rand(2, 6, generator=gen) * mask
    logp = (old + 0.3 * torch.randn(2, 6, generator=gen)) * mask
    adv = torch.randn(2, 6, generator=gen) * mask
    ctx = make_rollouts([1.0, 0.0], lengths=[6, 4], num_tokens=6, completion_token_texts=texts,
                        entropies=torch.ones(2, 6) * mask)
    ours, diag = rank_grpo_loss(logp, old, adv, mask, ctx, eps_low=0.1, eps_high=0.1)
    theirs, sspo_diag = sspo_loss(logp, old, adv, mask, ctx, eps_low=0.1, eps_high=0.1, delimiters=("\n",),
                                  entropy_min_scale=1.0, entropy_max_scale=1.0)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(diag["item_ratio"], sspo_diag["segment_ratio"])
    # the ratio of item "1. A\n" is the geometric mean over its three tokens
    torch.testing.assert_close(diag["item_ratio"][0, 1], torch.exp((logp - old)[0, :3].mean()))


def test_rank_grpo_advantage_normalises_each_rank_across_the_group():
    texts = [["1.", " A", "\n", "2.", " B", "\n"], ["B", "\n", "\n", "C", "\n"]]
    ctx = make_rollouts([0.0, 0.0], lengths=[6, 5], num_tokens=6, completion_token_texts=texts,
                        examples=[{"answer": "A\nB"}, {"answer": ["a", "b"]}])
    relevance, rank = item_relevance(texts, 6, ["A\nB", ["a", "b"]], num_items=2)
    torch.testing.assert_close(relevance, torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64))
    assert rank.tolist() == [[0, 0, 0, 1, 1, 1], [0, 0, -1, 1, 1, -1]]  # a blank line is no item
    adv = rank_grpo_advantage(ctx.rewards, ctx.group_ids, ctx, num_items=2)
    # rank 1: r = [1 + 1/log2(3), 1], rank 2: r = [1/log2(3), 0]; two members: ±1/√2 each (eps aside)
    a = 1 / math.sqrt(2)
    expected = torch.tensor([[a] * 6, [-a, -a, 0.0, -a, -a, 0.0]])
    torch.testing.assert_close(adv, expected, atol=1e-3, rtol=0)
    # items past num_items get no advantage
    # items past num_items get no advantage: with one rank, only the first lines learn
    texts = [["A", "\n", "B", "\n"], ["C", "\n", "D", "\n"]]
    ctx = make_rollouts([0.0, 0.0], num_tokens=4, completion_token_texts=texts,
                        examples=[{"answer": "A\nD"}, {"answer": "A\nD"}])
    short = rank_grpo_advantage(ctx.rewards, ctx.group_ids, ctx, num_items=1)
    torch.testing.assert_close(short, torch.tensor([[a, a, 0.0, 0.0], [-a, -a, 0.0, 0.0]]), atol=1e-3, rtol=0)
    full = rank_grpo_advantage(ctx.rewards, ctx.group_ids, ctx, num_items=2)
    assert (full[:, 2:] != 0).all()


@pytest.mark.parametrize(("text", "item"), [("1. The Matrix (1999)\n", "the matrix (1999)"), ("- Heat.", "heat"),
                                            ("  2)  Alien ", "alien")])
def test_list_items_are_compared_without_markers_case_or_trailing_punctuation(text, item):
    assert normalise_item(text) == item
