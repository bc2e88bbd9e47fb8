"""The KL coefficient on a schedule (GRPO-D, Liu et al. 2025, arXiv:2503.16081) inside the learner:
each step's batch sets the coefficient the KL penalty uses, from the schedule."""

from __future__ import annotations

import pytest
from training.test_trainer import make_trainer, sampled_batch

from grpozoo.algos.controllers import scheduled_coef


def test_learner_takes_each_steps_kl_coefficient_from_the_schedule(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "recipe=grpo_d", "train.steps=4", "algorithm.kl.coef_start=0.01")
    batch = sampled_batch(trainer)
    seen = []
    for step in range(1, 5):
        batch.step, batch.total_steps = step, 4
        trainer.learner.prepare(batch)
        seen.append(trainer.state["kl_coef"])
    assert seen == pytest.approx([scheduled_coef(s, 4, 0.01, 0.04, "linear") for s in range(1, 5)])
    assert seen[0] == pytest.approx(0.01) and seen[-1] == pytest.approx(0.04)
