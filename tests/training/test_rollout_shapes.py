"""The tiny model trains with rollouts of another shape: AnytimeReasoner's budgeted scores (each
completion cut, answered and scored at smaller budgets) and VL-Rethinker's forced rethinking."""

from __future__ import annotations

import math

import torch
from training.test_trainer import make_trainer


def test_brpo_scores_cut_prefixes_with_the_real_engine(tiny_overrides):
    trainer = make_trainer(
        tiny_overrides, "recipe=brpo", "algorithm.advantage.params.budgets=[2,4]",
        "algorithm.advantage.params.summary_tokens=2", "rollout.max_new_tokens=6",
    )
    collected = trainer.rollouts.collect(1)
    values = collected.learning.budget_rewards
    assert values is not None
    lengths = collected.learning.completion_lengths
    for i, length in enumerate(lengths.tolist()):
        for b in (2, 4):
            assert math.isnan(values[i, b]) == (b >= length)  # scored where the completion reaches the budget
        torch.testing.assert_close(values[i, length], collected.learning.rewards[i].float())


def test_forced_rethinking_rows_learn(tiny_overrides):
    trainer = make_trainer(
        tiny_overrides, "recipe=vl_rethinker", "rollout.rethink.fraction=1.0", "rollout.rethink.trigger=' W'",
        "rollout.max_new_tokens=32", "rollout.group_size=5", "eval.at_start=false", "eval.at_end=false",
    )
    torch.manual_seed(0)
    collected = trainer.rollouts.collect(1)
    batch = collected.learning
    rethought = batch.environment_parts["rethought"].bool()
    assert rethought.any()  # some of the 10 rollouts ended by themselves (seeded), and every such one was rethought
    assert batch.tool_mask is not None
    written = batch.tool_mask.sum(dim=1)
    assert (written[rethought] == 2).all() and (written[~rethought] == 0).all()  # the trigger " W": two tokens
    metrics = trainer.learner.learn(trainer.learner.prepare(batch))
    assert math.isfinite(metrics["grad_norm"]) and math.isfinite(metrics["loss"])
