"""Guidance is a collaborator the rollout side owns, with an explicit interface: it samples and scores
through the callables it is given and reads nothing of the trainer (Zhang et al. 2025, "Scaf-GRPO:
Scaffolded Group Relative Policy Optimization for Enhancing LLM Reasoning", arXiv:2510.19807, tiered
hints for all-fail groups)."""

from __future__ import annotations

import gc
import weakref
from collections import defaultdict
from types import SimpleNamespace

import torch
from factories import make_rollouts
from tiny import build_tokenizer
from training.test_group_filters import HINTS, guided_trainer

from grpozoo.config import GuidanceConfig
from grpozoo.training.guided import Guidance

ROW = {"prompt": "What is 2 + 3?", "answer": "5", "hints": HINTS}


def fake_generate(calls: list):
    """Sampling without a model: ``n`` rollouts per prompt, each carrying its prompt; ``calls``
    records ``(prompts, n)``."""

    def generate(prompts, examples, n):
        calls.append((prompts, n))
        rows = [i for i in range(len(prompts)) for _ in range(n)]
        return make_rollouts(
            [0.0] * len(rows), rows, prompts=[prompts[i] for i in rows], examples=[examples[i] for i in rows]
        )

    return generate


def hint_seen(batch) -> None:
    """Scoring without a task: 1 exactly when the rollout's prompt held a hint."""
    batch.rewards = torch.tensor([1.0 if "Hint:" in p else 0.0 for p in batch.prompts])
    batch.task_scores = batch.rewards.clone()


def test_guidance_samples_and_scores_only_through_the_callables_it_is_given():
    calls: list = []
    task = SimpleNamespace(messages=lambda row: [{"role": "user", "content": row["prompt"]}])
    guide = Guidance(GuidanceConfig(mode="tiered_hints"), 3, task, build_tokenizer(), fake_generate(calls), hint_seen)
    batch = make_rollouts([0.0, 0.0, 0.0, 1.0, 0.0, 0.0], [0, 0, 0, 1, 1, 1], examples=[ROW] * 6)
    metrics: dict[str, float] = defaultdict(float)
    merged, use = guide.rescue(batch, metrics)
    # only group 0 failed everywhere: one call, its prompt with the first (least concrete) hint
    assert calls == [([f"<u>What is 2 + 3?\n\nHint: {HINTS[0]}</s><a>"], 3)]
    assert merged.batch_size == 9 and merged.group_ids[6:].tolist() == [0, 0, 0]
    assert merged.hint_level.tolist() == [0] * 6 + [1] * 3
    assert (metrics["guidance/stuck_groups"], metrics["guidance/rescued_groups"]) == (1, 1)
    # one hinted success replaces one failure of group 0: three rows per group still learn
    assert use.sum() == 6 and int((merged.hint_level[use] > 0).sum()) == 1
    assert merged.group_ids[use].tolist().count(0) == 3


def test_guidance_is_idle_during_the_guidance_free_opening():
    calls: list = []
    task = SimpleNamespace(messages=lambda row: [{"role": "user", "content": row["prompt"]}])
    cfg = GuidanceConfig(mode="tiered_hints", start_fraction=0.5)
    guide = Guidance(cfg, 3, task, build_tokenizer(), fake_generate(calls), hint_seen)
    batch = make_rollouts([0.0] * 3, examples=[ROW] * 3, step=2, total_steps=4)  # the opening: steps 1-2
    merged, use = guide.rescue(batch, defaultdict(float))
    assert merged is batch and use.all() and calls == []


def test_a_dropped_trainer_is_freed_at_once_though_its_guidance_calls_back_into_it(tiny_overrides, tmp_path):
    trainer = guided_trainer(tiny_overrides, tmp_path)
    alive = [weakref.ref(x) for x in (trainer, trainer.model, trainer.rollouts, trainer.learner, trainer.engine)]
    gc.disable()  # freed by reference counting alone: no cycle through the sides' callables
    try:
        del trainer
        assert [ref() is None for ref in alive] == [True] * len(alive)
    finally:
        gc.enable()
