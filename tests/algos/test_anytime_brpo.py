"""AnytimeReasoner's budgeted advantages (Qi et al. 2025, arXiv:2505.13438): one budget is GRPO, the
token returns are piecewise constant between cuts and non-increasing, BRPO's baseline mixes the
previous budget, and the rollout side scores each cut prefix with a forced answer."""

from __future__ import annotations

import pytest
import torch
from factories import make_rollouts

from grpozoo.algos.advantages.anytime import (
    anytime_brpo_advantage,
    budget_prior,
    budget_token_sums,
)
from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.config import ComponentConfig
from grpozoo.generation.hf import SamplingParams
from grpozoo.generation.samples import prompt_token_ids, rollouts_from_samples
from grpozoo.registry import advantages
from grpozoo.training.providers import RolloutTools, budget_rewards


def test_a_single_budget_reduces_to_grpo():
    rewards = [1.0, 0.0, 0.0, 1.0, 0.5, 0.25]
    batch = make_rollouts(rewards, [0, 0, 0, 1, 1, 1], lengths=[3, 5, 1, 4, 2, 5])
    out = anytime_brpo_advantage(batch.rewards, batch.group_ids, batch, budgets=[])
    expected = grpo_advantage(batch.rewards, batch.group_ids).unsqueeze(1) * batch.completion_mask
    torch.testing.assert_close(out, expected.float())


def test_token_returns_are_piecewise_constant_between_cuts_and_non_increasing():
    # rewards 1, 0, 1 at budgets 2, 4 and the whole completion, uniform prior: tokens 0-1 lie in all
    # three prefixes, 2-3 in the last two, 4-5 in the whole completion only
    rewards = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    mask = torch.ones(2, 6)
    returns = budget_token_sums(rewards, [2, 4], budget_prior(3, None), mask)
    third = 1 / 3
    expected = torch.tensor([[2 * third] * 2 + [third] * 4, [2 * third] * 4 + [third] * 2], dtype=torch.float64)
    torch.testing.assert_close(returns, expected)
    assert (returns[:, 1:] <= returns[:, :-1]).all()
    weighted = budget_token_sums(rewards, [2, 4], budget_prior(3, [2.0, 1.0, 1.0]), mask)
    torch.testing.assert_close(weighted[0], torch.tensor([0.75, 0.75, 0.25, 0.25, 0.25, 0.25], dtype=torch.float64))


def test_brpo_baseline_mixes_the_previous_budget_with_the_group_mean():
    # two completions of 4 tokens, one budget at 2: prefix rewards 0 and 1, final rewards 1 and 1
    batch = make_rollouts([1.0, 1.0], [0, 0], lengths=[4, 4])
    batch.budget_rewards = torch.tensor([[float("nan"), float("nan"), 0.0, float("nan"), 1.0],
                                         [float("nan"), float("nan"), 1.0, float("nan"), 1.0]])
    out = anytime_brpo_advantage(batch.rewards, batch.group_ids, batch, budgets=[2], scale="none",
                                 previous_budget_weight=0.5)
    # budget 2: a = r − mean = ∓0.5; whole: a = 1 − (0.5·r_prev + 0.5·1) = 0.5, 0
    first = torch.tensor([-0.5, 0.5])
    last = torch.tensor([0.5, 0.0])
    expected = torch.stack([(first + last) / 2] * 2 + [last / 2] * 2, dim=1)
    torch.testing.assert_close(out, expected)


def test_a_completion_shorter_than_a_budget_keeps_its_own_reward_there():
    batch = make_rollouts([1.0, 0.0], [0, 0], lengths=[2, 6])
    batch.budget_rewards = torch.full((2, 7), float("nan"))
    batch.budget_rewards[1, 4] = 1.0  # only the long completion was cut at 4
    batch.budget_rewards[:, 6] = batch.rewards
    out = anytime_brpo_advantage(batch.rewards, batch.group_ids, batch, budgets=[4], scale="none",
                                 previous_budget_weight=0.0)
    # budget 4: rewards 1 (finished) and 1 (cut): advantages 0; whole: ±0.5, halved by the prior
    torch.testing.assert_close(out[0, :2], torch.tensor([0.25, 0.25]))
    torch.testing.assert_close(out[1], torch.full((6,), -0.25))
    assert (out[0, 2:] == 0).all()


def test_anytime_brpo_declares_its_need():
    assert "budget_rewards" in advantages.spec("anytime_brpo").needs


def test_bad_budgets_and_priors_are_refused():
    batch = make_rollouts([1.0, 0.0], [0, 0], lengths=[4, 4])
    with pytest.raises(ValueError, match="increasing"):
        anytime_brpo_advantage(batch.rewards, batch.group_ids, batch, budgets=[3, 2])
    with pytest.raises(ValueError, match="prior"):
        budget_prior(3, [1.0, 1.0])


class AnswerEngine:
    """Answers every prompt with the fixed text ``answer``; records the token ids it continued."""

    version = 0

    def __init__(self, tokenizer, answer: str):
        self.tokenizer, self.answer, self.calls = tokenizer, answer, []

    def generate(self, prompts, examples, n, params):
        ids = prompt_token_ids(self.tokenizer, prompts)
        self.calls.append((ids, params))
        tokens = self.tokenizer(self.answer, add_special_tokens=False)["input_ids"][: params.max_new_tokens]
        samples = [(tokens, [-0.5] * len(tokens)) for _ in ids]
        eos = [self.tokenizer.eos_token_id]
        return rollouts_from_samples(self.tokenizer, prompts, ids, examples, [1] * len(ids), samples, eos, 0)


def test_the_provider_scores_each_cut_prefix_with_a_forced_answer():
    from tiny import build_tokenizer

    tok = build_tokenizer()
    completion = tok("abcdef", add_special_tokens=False)["input_ids"]
    short = tok("ab", add_special_tokens=False)["input_ids"]
    ids = torch.zeros(2, 6, dtype=torch.long)
    ids[0], ids[1, :2] = torch.tensor(completion), torch.tensor(short)
    batch = make_rollouts([0.0, 1.0], [0, 0], lengths=[6, 2], completion_ids=ids,
                          prompt_ids=torch.tensor([[7, 8], [7, 8]]), examples=[{"answer": "7"}] * 2)
    engine = AnswerEngine(tok, "7")
    scored: list[str] = []

    def reward_of(out, completions):
        scored.extend(completions)
        values = torch.tensor([1.0 if c.endswith("7") and "abcd" in c else 0.0 for c in completions])
        return values, {}, values

    params = {"budgets": [2, 4], "end_thinking": "|", "summary_tokens": 3}
    tools = RolloutTools(engine.generate, reward_of, tok, SamplingParams(6),
                         ComponentConfig(name="anytime_brpo", params=params), advantages.spec("anytime_brpo"))
    values = budget_rewards(batch, tools)
    # the long completion is cut at 2 and 4; the short one reaches neither budget
    (continued, sampling), = engine.calls
    bar = tok("|", add_special_tokens=False)["input_ids"]
    assert continued == [[7, 8, *completion[:2], *bar], [7, 8, *completion[:4], *bar]]
    assert sampling.max_new_tokens == 3 and sampling.temperature == 0.0
    assert scored == ["ab|7", "abcd|7"]
    assert values[0, 2] == 0.0 and values[0, 4] == 1.0 and values[0, 6] == 0.0 and values[1, 2] == 1.0
    assert torch.isnan(values[0, [0, 1, 3, 5]]).all() and torch.isnan(values[1, [0, 1, 3, 4]]).all()
