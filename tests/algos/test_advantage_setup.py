"""What an advantage estimator declares about the runs it can learn from: whether it needs a group
of completions per prompt, and how it takes a KL penalty folded into the reward."""

import pytest
import torch

from grpozoo import registry
from grpozoo.algos.advantages import AdvantageOutput, check_estimator_run, reward_with_kl
from grpozoo.errors import ConfigError
from grpozoo.registry import AdvantageSpec
from tests.factories import make_rollouts

SINGLE = [n for n in registry.advantages.names() if not registry.advantages.spec(n).needs_group]
GROUPED = [n for n in registry.advantages.names() if registry.advantages.spec(n).needs_group]


def test_the_estimators_that_need_no_group_are_the_batch_and_tracker_baselines():
    # and the token-level critics (POAD, T-PPO), whose baseline is a learned value, not a group
    assert SINGLE == ["poad", "reinforce_pp", "remax", "riskpo", "spo_tracker", "t_ppo_egae"]


@pytest.mark.parametrize("name", SINGLE)
def test_an_estimator_that_needs_no_group_learns_from_one_completion_per_prompt(name):
    # eight prompts, one completion each, rewards differing across prompts: a signal remains
    rewards = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    ctx = make_rollouts(rewards, list(range(8)), baseline_rewards=torch.full((8,), 0.5), state={},
                        values=torch.full((8, 5), 0.5))  # a critic's V(s_t)
    out = registry.advantages.get(name)(ctx.rewards, ctx.group_ids, ctx)
    out = out if isinstance(out, AdvantageOutput) else AdvantageOutput(out)
    assert out.advantages.abs().sum() > 0.1, out.advantages
    check_estimator_run(name, group_size=1, kl_in_reward=False)


@pytest.mark.parametrize("name", ["grpo", "rloo", "reinforce_pp_baseline", "gdpo", "mc_grpo"])
def test_a_group_relative_estimator_gives_no_signal_with_one_completion_per_prompt(name):
    ctx = make_rollouts([1.0, 0.0, 0.5, 1.0], [0, 1, 2, 3])
    out = registry.advantages.get(name)(ctx.rewards, ctx.group_ids, ctx)
    out = out if isinstance(out, AdvantageOutput) else AdvantageOutput(out)
    assert torch.equal(out.advantages, torch.zeros_like(out.advantages))
    assert name in GROUPED


@pytest.mark.parametrize("name", GROUPED)
def test_group_size_one_is_refused_for_an_estimator_that_needs_a_group(name):
    with pytest.raises(ConfigError) as error:
        check_estimator_run(name, group_size=1, kl_in_reward=False)
    message = str(error.value)
    assert repr(name) in message and "rollout.group_size=1" in message
    assert "rollout.group_size ≥ 2" in message and all(single in message for single in SINGLE)
    check_estimator_run(name, group_size=2, kl_in_reward=False)


def test_a_kl_in_the_reward_is_refused_where_the_estimator_cannot_take_it():
    refused = r"'grpo'.*algorithm\.kl\.mode=reward.*algorithm\.kl\.mode=loss"
    with pytest.raises(ConfigError, match=refused) as error:
        check_estimator_run("grpo", group_size=4, kl_in_reward=True)
    assert "reinforce_pp, reinforce_pp_baseline, remax, rloo" in str(error.value)
    for name in ("reinforce_pp", "reinforce_pp_baseline", "remax", "rloo"):
        check_estimator_run(name, group_size=4, kl_in_reward=True)


def test_the_default_registration_is_the_safe_one():
    spec = AdvantageSpec()
    assert spec.needs_group and spec.kl_in_reward is None
    with pytest.raises(ValueError, match="'tokens'"):
        AdvantageSpec(kl_in_reward="tokens")


def test_returns_with_the_kl_are_the_reward_minus_the_penalty_still_to_come():
    rewards = torch.tensor([1.0, 0.0])
    penalty = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.0, 9.0]])  # 9.0 sits on padding
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    returns = reward_with_kl("returns", rewards, penalty, mask)
    torch.testing.assert_close(returns, torch.tensor([[0.4, 0.5, 0.7], [-0.5, 0.0, 0.0]]))
    # the first token's return is the sequence return
    sequence = reward_with_kl("sequence", rewards, penalty, mask)
    torch.testing.assert_close(sequence, torch.tensor([0.4, -0.5]))
    torch.testing.assert_close(sequence, returns[:, 0])
