"""ExPO's self-explanation positives (Zhou et al. 2025, arXiv:2507.02834): sampled with the ground-truth
answer in the prompt, a correct self-explanation joins an all-fail group, which stops being degenerate,
and it learns under the prompt without the answer."""

from __future__ import annotations

import torch
from generation.test_episodes import ScriptedEngine

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.guidance import behaviour_logprobs
from grpozoo.config import GuidanceConfig
from grpozoo.generation.hf import SamplingParams
from grpozoo.recipes import get_recipe
from grpozoo.tasks.base import render_prompt
from grpozoo.training.guided import Guidance


class QuestionTask:
    def messages(self, row):
        return [{"role": "user", "content": row["prompt"]}]


def score(batch):
    batch.task_scores = torch.tensor([1.0 if c.strip() == "408" else 0.0 for c in batch.completions])
    batch.rewards = batch.task_scores.clone()


def test_a_self_explanation_learns_under_the_unhinted_prompt_and_unsticks_its_group():
    from tiny import build_tokenizer

    tok = build_tokenizer()
    example = {"prompt": "12*34?", "answer": "408"}
    prompt = render_prompt(tok, QuestionTask().messages(example))
    engine = ScriptedEngine(tok, ["400</s>", "41</s>", "4</s>", "40</s>", "408</s>", "418</s>", "1</s>", "2</s>"])
    sampling = SamplingParams(8)
    batch = engine.generate([prompt], [example], 4, sampling)
    batch.row_ids, batch.step, batch.total_steps = torch.zeros(4, dtype=torch.long), 1, 10
    score(batch)
    assert batch.rewards.tolist() == [0.0] * 4  # degenerate: every GRPO advantage is 0
    cfg = GuidanceConfig(**get_recipe("expo").config["algorithm"]["guidance"])
    hinted_prompts: list[str] = []

    def generate(prompts, examples, n):
        hinted_prompts.extend(prompts)
        return engine.generate(prompts, examples, n, sampling)

    guidance = Guidance(cfg, 4, QuestionTask(), tok, generate, score)
    merged, use = guidance.rescue(batch, {"guidance/stuck_groups": 0.0, "guidance/hinted_rollouts": 0.0,
                                          "guidance/rescued_groups": 0.0, "guidance/hint_level_sum": 0.0,
                                          "time/generation_s": 0.0})
    # the self-explanation was sampled with the ground-truth answer in the prompt …
    assert len(hinted_prompts) == 1 and "The correct final answer is 408." in hinted_prompts[0]
    learning = merged.select(use)
    assert learning.batch_size == 4
    assert sorted(learning.rewards.tolist()) == [0.0, 0.0, 0.0, 1.0]
    assert grpo_advantage(learning.rewards, learning.group_ids).abs().min() > 0  # no longer degenerate
    # … and it learns under the prompt without the answer, its ratio's denominator the sampler's
    injected = int((learning.hint_level > 0).nonzero())
    assert learning.prompts[injected] == prompt
    assert torch.equal(learning.prompt_ids[injected], batch.prompt_ids[0])
    assert learning.off_policy is not None and learning.off_policy.tolist() == [i == injected for i in range(4)]
    learner_old = torch.full(learning.completion_mask.shape, -2.0)
    old = behaviour_logprobs(learner_old, learning.sampling_logprobs, learning.off_policy)
    torch.testing.assert_close(old[injected], learning.sampling_logprobs[injected])
    assert (old[[i for i in range(4) if i != injected]] == -2.0).all()
