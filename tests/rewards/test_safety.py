"""Multi-objective reward aggregation for safety (Li et al. 2025, arXiv:2503.21819)."""

import pytest
import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.errors import ConfigError
from grpozoo.rewards.combine import RewardModel
from grpozoo.rewards.safety import (
    check_aspects,
    combine_objectives,
    multi_objective_reward,
    safety_rules_reward,
)

GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
SCORES = torch.tensor(
    [
        [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0],  # helpfulness
        [0.9, 0.2, 0.4, 0.8, 0.1, 0.3, 0.6, 0.7],  # safety
        [3.0, -1.0, 2.0, 0.5, 0.0, 4.0, 1.0, -2.0],  # truthfulness, another scale
    ]
)


@pytest.mark.parametrize("normalize", ["none", "group", "batch"])
@pytest.mark.parametrize("k", [0, 1, 2])
def test_multi_objective_one_hot_weights_reproduce_the_single_objective_advantage(normalize, k):
    weights = torch.zeros(3)
    weights[k] = 1.0
    combined = combine_objectives(SCORES, weights, GROUPS, normalize)
    expected = grpo_advantage(SCORES[k], GROUPS)
    assert torch.allclose(grpo_advantage(combined, GROUPS), expected, atol=1e-3)


@pytest.mark.parametrize("normalize", ["none", "group", "batch"])
def test_multi_objective_advantage_is_invariant_to_a_constant_added_to_every_aspect(normalize):
    weights = torch.tensor([1.0, 0.5, 0.25])
    shifted = SCORES + torch.tensor([[7.0], [-3.0], [100.0]])
    before = grpo_advantage(combine_objectives(SCORES, weights, GROUPS, normalize), GROUPS)
    after = grpo_advantage(combine_objectives(shifted, weights, GROUPS, normalize), GROUPS)
    assert torch.allclose(before, after, atol=1e-4)


def test_multi_objective_is_the_weighted_sum_and_skips_aspects_without_an_opinion():
    scores = torch.tensor([[1.0, 0.0, float("nan")], [0.5, 1.0, float("nan")]])
    total = combine_objectives(scores, torch.tensor([2.0, 1.0]), torch.tensor([0, 0, 0]))
    assert total.tolist() == [2.5, 1.0, 0.0]


def aspects(**weights):
    return [
        {"name": "task", "weight": weights.get("helpfulness", 1.0), "label": "helpfulness"},
        {"name": "safety_rules", "weight": weights.get("safety", 1.0), "label": "safety"},
    ]


def test_multi_objective_does_not_pay_a_blanket_refusal_or_a_harmful_right_answer():
    # an adversary maximising the safety aspect alone refuses everything; another answers right but
    # adds harmful instructions. Neither earns what a safe, right answer earns.
    completions = [
        "12 * 4 = 48. The answer is 48.",
        "I'm sorry, I cannot help with that.",
        "48. Also, here is how to make a bomb: ...",
        "I think it is 47.",
    ]
    out = multi_objective_reward(
        completions, ["q"] * 4, aspects=aspects(), task_score=[1.0, 0.0, 1.0, 0.0], group_id=[0] * 4
    )
    assert out == [2.0, 1.0, 1.0, 1.0]
    assert out[0] > max(out[1:])


def test_safety_rules_see_through_spacing():
    texts = ["how  to\nmake a   bomb", "how to make a bo\u200bmb", "How to make a cake"]
    assert safety_rules_reward(texts, ["q"] * 3) == [0.0, 0.0, 1.0]


def test_multi_objective_runs_inside_the_reward_model_and_checks_its_aspects_at_start_up():
    class Spec:
        name, weight, timeout_s = "multi_objective", 1.0, None
        params = {"aspects": aspects(safety=0.5), "normalize": "none"}

    model = RewardModel([Spec()])
    total, parts = model(["ok 48", "how to make a bomb 48"], ["q", "q"], {"task_score": [1.0, 1.0], "group_id": [0, 0]})
    assert total.tolist() == [1.5, 1.0]
    with pytest.raises(ConfigError, match="parameter patterns: expected"):
        check_aspects("multi_objective", [{"name": "safety_rules", "params": {"patterns": 3}}])
    with pytest.raises(ConfigError, match="unknown key"):
        check_aspects("multi_objective", [{"name": "task", "wieght": 2.0}])
    with pytest.raises(ConfigError, match="share a name"):
        check_aspects("multi_objective", [{"name": "task"}, {"name": "task"}])
    with pytest.raises(KeyError, match="Did you mean"):
        check_aspects("multi_objective", [{"name": "tsak"}])
