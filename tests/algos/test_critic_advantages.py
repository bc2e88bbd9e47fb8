"""Advantages over a learned critic: GAE with action decomposition (POAD), extended GAE at a
truncation (T-PPO), and POISE's cross-rollout baseline."""

import pytest
import torch
from factories import make_rollouts

from grpozoo.algos.advantages.critics import (
    action_ends,
    action_returns,
    cross_rollout_baseline,
    decomposed_gae,
    poad_advantages,
    poise_advantages,
    t_ppo_advantages,
    value_targets,
)


def reference_gae(rewards, values, lengths, gamma, lam):
    """Textbook per-step GAE with a terminal reward, one row at a time."""
    out = torch.zeros(len(rewards), values.shape[1] - 1, dtype=torch.float64)
    for i, length in enumerate(lengths):
        adv = 0.0
        for t in reversed(range(length)):
            last = t == length - 1
            next_value = 0.0 if last else float(values[i, t + 1])
            delta = (float(rewards[i]) if last else 0.0) + gamma * next_value - float(values[i, t])
            adv = delta + gamma * lam * adv
            out[i, t] = adv
    return out


def test_one_token_actions_give_step_level_gae():
    rewards = torch.tensor([1.0, 0.0])
    values = torch.tensor([[0.5, 0.6, 0.7, 0.8, 9.0], [0.2, 0.1, 0.3, 0.4, 0.9]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    got = decomposed_gae(rewards, values, mask, mask, gamma=0.9, lam=0.8)
    # the numbers by hand for row 0: δ2 = 1 − 0.7, δ1 = 0.9·0.7 − 0.6, δ0 = 0.9·0.6 − 0.5
    assert got[0, :3].tolist() == pytest.approx([0.04 + 0.72 * 0.246, 0.03 + 0.72 * 0.3, 0.3])
    assert torch.allclose(got, reference_gae(rewards, values, [3, 4], 0.9, 0.8))
    assert got[0, 3] == 0.0  # padding; V past the end (9.0) never read


def test_gamma_applies_only_across_action_boundaries():
    mask = torch.ones(1, 6, dtype=torch.long)
    ends = torch.tensor([[False, False, True, False, False, True]])  # two actions of three tokens
    returns = action_returns(torch.tensor([1.0]), mask, ends, gamma=0.5)
    # the discount exponent counts the actions left, not the tokens
    assert returns[0].tolist() == pytest.approx([0.5, 0.5, 0.5, 1.0, 1.0, 1.0])
    per_token = action_returns(torch.tensor([1.0]), mask, mask.bool(), gamma=0.5)
    assert per_token[0].tolist() == pytest.approx([0.5**5, 0.5**4, 0.5**3, 0.5**2, 0.5, 1.0])
    # with values, inside an action the TD errors telescope with no reward and no discount
    values = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 0.0]], dtype=torch.float64)
    adv = decomposed_gae(torch.tensor([1.0]), values, mask, ends, gamma=0.5, lam=1.0)
    assert adv[0].tolist() == pytest.approx([0.5 - 0.1, 0.5 - 0.2, 0.5 - 0.3, 1 - 0.4, 1 - 0.6, 1 - 0.8])


def test_a_turn_ends_where_tool_output_begins():
    # policy tokens 0-1, tool output 2-3, policy tokens 4-5: two turns
    mask = torch.tensor([[1, 1, 0, 0, 1, 1, 0]])
    assert action_ends(mask, "turn")[0].tolist() == [False, True, False, False, False, True, False]
    lines = action_ends(torch.ones(1, 4), "line", [["a", "b\n", "c", "d"]])
    assert lines[0].tolist() == [False, True, False, True]
    # the next state after a turn is the first state after the tool's output, discounted once
    values = torch.tensor([[0.1, 0.2, 9.0, 9.0, 0.4, 0.6, 0.0, 0.0]], dtype=torch.float64)
    adv = decomposed_gae(torch.tensor([1.0]), values, mask, action_ends(mask, "turn"), gamma=0.5, lam=0.0)
    assert adv[0, 1] == pytest.approx(0.5 * 0.4 - 0.2)
    assert adv[0, 2] == 0.0 and adv[0, 3] == 0.0


def test_egae_on_a_complete_response_equals_gae():
    rewards = torch.tensor([1.0, 0.0])
    values = torch.rand(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    complete = torch.tensor([False, False])
    egae = decomposed_gae(rewards, values, mask, mask, 0.9, 0.8, truncated=complete)
    assert torch.equal(egae, decomposed_gae(rewards, values, mask, mask, 0.9, 0.8))
    assert torch.allclose(egae, reference_gae(rewards, values, [3, 4], 0.9, 0.8))


def test_a_truncated_response_bootstraps_with_the_value_at_the_cut_and_no_terminal_reward():
    values = torch.tensor([[0.5, 0.6, 0.7, 0.8]], dtype=torch.float64)  # V(s_3) = 0.8 at the cut
    mask = torch.ones(1, 3, dtype=torch.long)
    cut = torch.tensor([True])
    for reward in (0.0, 1.0):  # the verifier's verdict on a cut response is not used
        adv = decomposed_gae(torch.tensor([reward]), values, mask, mask, 0.9, 0.8, truncated=cut)
        assert adv[0, 2] == pytest.approx(0.9 * 0.8 - 0.7)
        assert adv[0, 1] == pytest.approx(0.9 * 0.7 - 0.6 + 0.72 * (0.9 * 0.8 - 0.7))


def test_t_ppo_critic_trains_only_on_completed_responses():
    batch = make_rollouts([1.0, 1.0], lengths=[3, 2], num_tokens=3, truncated=torch.tensor([True, False]),
                          values=torch.zeros(2, 4))
    targets, weights = value_targets(batch, gamma=1.0, action="token", train_on_truncated=False)
    assert weights[0].tolist() == [0, 0, 0, 0] and weights[1].tolist() == [1, 1, 0, 0]
    assert targets[1, :2].tolist() == [1.0, 1.0]
    # the estimator itself: with V = 0 a cut response earns nothing, a complete one its reward
    adv = t_ppo_advantages(batch.rewards, batch.group_ids, batch, lam=1.0)
    assert adv[0].tolist() == [0.0, 0.0, 0.0] and adv[1].tolist() == [1.0, 1.0, 0.0]


def test_poad_on_single_turn_completions_is_reward_minus_value():
    batch = make_rollouts([1.0, 0.0], lengths=[3, 2], num_tokens=3,
                          values=torch.tensor([[0.5, 0.4, 0.3, 0.0], [0.2, 0.1, 0.0, 0.0]]))
    adv = poad_advantages(batch.rewards, batch.group_ids, batch, gamma=0.9, lam=0.5, action="turn")
    # one action: no discount and no λ-decay inside it, so A_t = r − V(s_t)
    assert adv[0].tolist() == pytest.approx([0.5, 0.6, 0.7]) and adv[1].tolist() == pytest.approx([-0.2, -0.1, 0.0])


@pytest.mark.parametrize("partner", ["others", "next"])
def test_poise_advantage_ignores_its_own_rollouts_features(partner):
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    groups = torch.tensor([0, 0, 0, 1, 1])
    predictions = torch.tensor([0.2, 0.4, 0.9, 0.3, 0.7])
    batch = make_rollouts(rewards, groups, probe_values=predictions)
    base = poise_advantages(rewards, groups, batch, partner=partner)
    for i in range(5):
        moved = predictions.clone()
        moved[i] = 0.99
        again = poise_advantages(rewards, groups, make_rollouts(rewards, groups, probe_values=moved), partner=partner)
        assert again[i] == base[i], "A_i depends only on r_i and the other rollouts' features"
        assert not torch.equal(again, base)  # it is someone's baseline
    if partner == "next":
        assert base.tolist() == pytest.approx([1 - 0.4, 0 - 0.9, 1 - 0.2, 0 - 0.7, 1 - 0.3])


def test_poise_with_the_true_probability_has_zero_mean_advantage():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(2000, generator=g).repeat_interleave(2)  # 2000 prompts, two rollouts each
    rewards = (torch.rand(4000, generator=g) < p).float()
    groups = torch.arange(2000).repeat_interleave(2)
    adv = poise_advantages(rewards, groups, make_rollouts(rewards, groups, probe_values=p))
    assert abs(float(adv.mean())) < 0.02


def test_a_rollout_alone_in_its_group_gets_no_baseline():
    base = cross_rollout_baseline(torch.tensor([0.3, 0.5, 0.8]), torch.tensor([0, 0, 1]))
    assert base[:2].tolist() == pytest.approx([0.5, 0.3]) and base[2].isnan()
    rewards = torch.tensor([1.0, 0.0, 1.0])
    batch = make_rollouts(rewards, [0, 0, 1], probe_values=torch.tensor([0.3, 0.5, 0.8]))
    assert poise_advantages(rewards, batch.group_ids, batch)[2] == 0.0
