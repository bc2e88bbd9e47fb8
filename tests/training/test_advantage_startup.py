"""A run the advantage estimator cannot learn from stops at start-up, with the fix in the message."""

import pytest
from training.test_trainer import make_trainer

from grpozoo.errors import ConfigError


def test_group_size_one_is_refused_for_a_group_relative_estimator(tiny_overrides):
    refused = r"'grpo'.*rollout\.group_size=1.*rollout\.group_size ≥ 2.*reinforce_pp"
    with pytest.raises(ConfigError, match=refused):
        make_trainer(tiny_overrides, "rollout.group_size=1")


@pytest.mark.parametrize("recipe", ["reinforce_pp", "spo_single_stream"])
def test_group_size_one_trains_with_an_estimator_that_needs_no_group(tiny_overrides, recipe):
    trainer = make_trainer(tiny_overrides, f"recipe={recipe}", "rollout.group_size=1")
    metrics = trainer.train_step()
    assert metrics["kept_fraction"] == 1.0 and metrics["grad_norm"] > 0


def test_a_kl_in_the_reward_is_refused_for_an_estimator_that_cannot_take_it(tiny_overrides):
    with pytest.raises(ConfigError, match=r"'grpo'.*algorithm\.kl\.mode=reward.*algorithm\.kl\.mode=loss"):
        make_trainer(tiny_overrides, "algorithm.kl.coef=0.1", "algorithm.kl.mode=reward")
