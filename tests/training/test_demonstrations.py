"""A task row's worked solution reaches the hybrid objectives: as one demonstration row per learning
group (learning from the learner's own forward, with gradient), and as the privileged context of a
self-teacher that scores the sampled tokens."""

from __future__ import annotations

import json

import pytest
import torch
from training.test_trainer import make_trainer

from grpozoo.errors import ConfigError
from grpozoo.training.demonstrations import demonstration_text, with_privileged_prompts


def test_the_demonstration_is_the_solution_else_the_most_concrete_hint():
    assert demonstration_text({"solution": " 2 + 3 = 5 ", "hints": ["a"]}) == "2 + 3 = 5"
    assert demonstration_text({"hints": ["Add.", "2 + 3 = 5"]}) == "2 + 3 = 5"
    assert demonstration_text({"hints": "2 + 3 = 5"}) == "2 + 3 = 5"
    assert demonstration_text({"solution": "  ", "hints": []}) is None


def test_each_learning_group_gets_one_scored_demonstration_row_with_its_prompt(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "recipe=grao")
    trainer.step = 1
    collected = trainer.rollouts.collect(1)
    learning = collected.learning
    demo = learning.demonstration
    assert demo is not None and int(demo.sum()) == trainer.cfg.rollout.prompts_per_step
    tokenizer = trainer.tokenizer
    for i in demo.nonzero().squeeze(1).tolist():
        group = (learning.group_ids == learning.group_ids[i]) & ~demo
        assert int(group.sum()) == trainer.cfg.rollout.group_size  # joins its group, one per group
        first = int(group.nonzero()[0])
        assert torch.equal(learning.prompt_ids[i], learning.prompt_ids[first])  # the group's own prompt
        ids = learning.completion_ids[i][learning.completion_mask[i].bool()].tolist()
        assert ids[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(ids[:-1]) == learning.examples[i]["solution"]
        assert bool(learning.off_policy[i]) and float(learning.sampling_logprobs[i].abs().sum()) == 0.0
        assert float(learning.task_scores[i]) == 1.0  # scored as a sample: the worked answer is right
    assert torch.equal(learning.own_samples, ~demo)
    metrics = trainer.train_step()  # the demonstrations learn, and stay out of the samples' metrics
    assert metrics["kept_fraction"] == 1.0
    records = [json.loads(line) for line in (trainer.run_dir / "samples.jsonl").read_text().splitlines()]
    assert sum(r.get("demonstration", False) for r in records) == trainer.cfg.rollout.prompts_per_step


def test_the_demonstration_row_learns_by_the_policy_forward_with_its_gradient(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "recipe=grao", "algorithm.loss.params.alignment_coef=0.0")
    trainer.step = 1
    learning = trainer.learner.prepare(trainer.rollouts.collect(1).learning)
    learning.advantages = torch.zeros_like(learning.advantages)  # SFT on the demonstrations only
    trainer.learner.learn(learning)
    grads = [p.grad for p in trainer.model.parameters() if p.requires_grad]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_the_teacher_scores_the_samples_with_the_solution_in_its_prompt(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "recipe=srpo")
    trainer.step = 1
    learning = trainer.learner.prepare(trainer.rollouts.collect(1).learning)
    assert learning.demonstration is None  # no demonstration rows: the teacher reads the solution
    tokenizer = trainer.tokenizer
    for i in range(learning.batch_size):
        privileged = tokenizer.decode(learning.privileged_prompts[i])
        assert learning.examples[i]["solution"] in privileged
        assert learning.prompts[i].split("<a>")[0].removesuffix("</s>") in privileged  # the question too
    teacher = trainer.learner.policy_logprobs(with_privileged_prompts(learning, learning.privileged_prompts))
    assert torch.allclose(learning.teacher_logprobs, teacher)
    own = trainer.learner.policy_logprobs(learning)
    real = learning.completion_mask.bool()
    assert not torch.allclose(learning.teacher_logprobs[real], own[real])
    assert learning.teacher_entropies.shape == learning.completion_mask.shape
    assert (learning.teacher_entropies[real] > 0).all()


@pytest.mark.parametrize("recipe", ["grao", "srpo"])
def test_a_run_that_reads_demonstrations_fails_at_start_up_on_a_task_without_them(tiny_overrides, tmp_path, recipe):
    path = tmp_path / "plain.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                            for i in range(20)))
    with pytest.raises(ConfigError, match="worked solution"):
        make_trainer(tiny_overrides, f"recipe={recipe}", f"task.name={path}")
