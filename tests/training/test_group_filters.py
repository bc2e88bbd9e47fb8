"""Group filters and guided rollouts in the trainer, on the tiny model: dynamic sampling refills a
batch of all-equal groups and stops with a clear error when no group ever carries a signal;
overlong filtering's two stages; hinted rollouts for all-fail groups, their loss mask and
Guide-GRPO's off-policy ratio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training.test_trainer import make_trainer

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.filters import NoLearnableGroupsError
from grpozoo.config import resolve_config
from grpozoo.reporting.metrics import read_jsonl
from grpozoo.training import Trainer
from grpozoo.training.forward import completion_logprobs
from grpozoo.training.step_records import scatter_rows

REFILL = "algorithm.group_filters=[{name: dynamic_sampling}]"


def trainer_with_reward(overrides: list[str], reward, *extra: str) -> Trainer:
    """A trainer whose only reward is the Python callable ``reward`` (named ``scripted``)."""
    cfg = resolve_config(overrides=[*overrides, "rewards=[{name: scripted}]", *extra])
    return Trainer(cfg, reward_functions={"scripted": reward})


def alternating(completions, prompts, **columns) -> list[float]:
    """0, 1, 0, 1, … by position: every group of two or more rows has a reward spread."""
    return [float(i % 2) for i in range(len(completions))]


# ------------------------------------------------------------------ dynamic sampling and refill


def test_a_round_of_all_equal_groups_is_refilled(tiny_overrides):
    calls = []

    def first_round_flat(completions, prompts, **columns):
        calls.append(len(completions))
        return [0.0] * len(completions) if len(calls) == 1 else alternating(completions, prompts)

    trainer = trainer_with_reward(tiny_overrides, first_round_flat, REFILL)
    metrics = trainer.train_step()
    assert calls == [6, 6]  # 2 prompts × 3 rollouts, twice
    assert metrics["filter/rounds"] == 2
    assert metrics["filter/sampled_groups"] == 4 and metrics["filter/kept_groups"] == 2
    assert trainer.rollouts.selector.position == 4  # two rounds of fresh prompts
    assert metrics["kept_fraction"] == 0.5 and metrics["grad_norm"] > 0
    samples = read_jsonl(trainer.run_dir / "samples.jsonl")
    assert len(samples) == 12 and len({s["group"] for s in samples}) == 4  # group ids stay distinct
    # both rounds' tokens count as generated (the arena's tokens/s and generated tokens)
    assert metrics["completion_tokens"] == pytest.approx(12 * metrics["completion_length"])
    assert [s["advantage"] is None for s in samples] == [True] * 6 + [False] * 6  # round 1 did not learn


def test_surplus_groups_beyond_prompts_per_step_are_left_out(tiny_overrides):
    calls = []

    def one_flat_group_first(completions, prompts, group_id, **columns):
        calls.append(1)
        if len(calls) == 1:  # group 0 flat, group 1 with a spread: one group short
            return [0.0 if g == 0 else float(i % 2) for i, g in enumerate(group_id)]
        return alternating(completions, prompts)

    trainer = trainer_with_reward(tiny_overrides, one_flat_group_first, REFILL)
    collected = trainer.rollouts.collect(1)
    metrics = collected.metrics
    assert metrics["filter/rounds"] == 2 and metrics["filter/sampled_groups"] == 4
    assert metrics["filter/kept_groups"] == 2  # 3 survived, the first 2 learn
    assert collected.batch.group_ids[collected.rows].unique().tolist() == [1, 2]
    assert collected.learning.group_ids.unique().tolist() == [1, 2]


def test_data_without_a_learnable_group_stops_with_the_remedy(tiny_overrides):
    def flat(completions, prompts, **columns):
        return [0.0] * len(completions)

    trainer = trainer_with_reward(tiny_overrides, flat, REFILL, "rollout.max_refill_rounds=2")
    with pytest.raises(NoLearnableGroupsError) as error:
        trainer.train_step()
    message = str(error.value)
    assert "every group had the same reward for 3 round(s)" in message
    assert "mean reward 0.000" in message and "rollout.max_refill_rounds (now 2)" in message
    assert "rollout.group_size" in message
    assert trainer.rollouts.selector.position == 3 * 2  # 1 + max_refill_rounds rounds, then it stopped


def test_without_a_refilling_filter_one_round_is_sampled(tiny_overrides):
    trainer = trainer_with_reward(tiny_overrides, alternating)
    metrics = trainer.train_step()
    assert "filter/rounds" not in metrics and trainer.rollouts.selector.position == 2


# ------------------------------------------------------------------ overlong filtering stages


@pytest.mark.parametrize("mode", ["mask", "drop"])
def test_overlong_filter_masks_the_loss_or_drops_before_the_advantages(tiny_overrides, mode):
    trainer = trainer_with_reward(
        tiny_overrides,
        alternating,
        f"algorithm.group_filters=[{{name: overlong_filter, params: {{mode: {mode}}}}}]",
    )
    batch = trainer.rollouts.collect(1).batch
    batch.rewards = torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0, 5.0])
    batch.truncated = torch.tensor([False, False, True, False, True, False])
    rows = trainer.rollouts.filter(batch, torch.ones(6, dtype=torch.bool)).nonzero().squeeze(1)
    learn_input = batch.select(rows)  # what the rollout side hands the learner
    learning = trainer.learner.prepare(learn_input)
    assert learning.batch_size == 4 and not learning.truncated.any()
    advantages = scatter_rows(learn_input.advantages, rows, batch.batch_size)  # as train_step logs them
    if mode == "mask":  # truncated rows counted in their group's statistics, then left out
        assert len(rows) == 6
        expected = grpo_advantage(batch.rewards, batch.group_ids)
        assert advantages.isnan().sum() == 0
    else:  # as if never sampled
        kept = ~batch.truncated
        assert rows.tolist() == kept.nonzero().squeeze(1).tolist()
        expected = torch.full((6,), float("nan"))
        expected[kept] = grpo_advantage(batch.rewards[kept], batch.group_ids[kept])
        assert advantages[~kept].isnan().all()
    torch.testing.assert_close(learning.advantages, expected[~batch.truncated])


# ------------------------------------------------------------------ guided rollouts

HINTS = ["Add the two numbers.", "Count on from the larger one.", "The sum is the answer."]


def write_hint_task(directory: Path, rows: int = 24, solutions: bool = False) -> Path:
    """A small JSONL task with prompt, answer and hints columns (tiered hints, or a solution text)."""
    path = directory / ("solutions.jsonl" if solutions else "hinted.jsonl")
    with path.open("w") as f:
        for i in range(rows):
            a, b = i % 7 + 1, i // 7 + 2
            hints = f"We add {a} and {b}: {a} + {b} = {a + b}." if solutions else HINTS
            f.write(
                json.dumps({"prompt": f"What is {a} + {b}?", "answer": str(a + b), "hints": hints}) + "\n"
            )
    return path


def rewards_hinted_prompts(completions, prompts, **columns) -> list[float]:
    """1 when the prompt the rollout was sampled from held a hint: every hinted rollout succeeds."""
    return [1.0 if "Hint:" in p else 0.0 for p in prompts]


def guided_trainer(tiny_overrides, tmp_path, *extra: str, reward=rewards_hinted_prompts) -> Trainer:
    trainer = trainer_with_reward(
        tiny_overrides,
        reward,
        f"task.name={write_hint_task(tmp_path)}",
        "algorithm.guidance.mode=tiered_hints",
        "algorithm.guidance.success_on=reward",
        *extra,
    )
    trainer.step = 1  # collect(step) runs inside train_step, which counts the step first
    return trainer


def test_an_all_fail_group_gets_one_hinted_success_and_a_group_with_a_success_none(tiny_overrides, tmp_path):
    trainer = guided_trainer(tiny_overrides, tmp_path)
    collected = trainer.rollouts.collect(trainer.step)
    metrics = collected.metrics
    assert metrics["guidance/stuck_groups"] == 2 and metrics["guidance/rescued_groups"] == 2
    assert metrics["guidance/hint_level"] == 1  # the least concrete tier already worked
    assert metrics["guidance/hinted_rollouts"] == 2 * 3
    learning = trainer.learner.prepare(collected.learning)
    assert learning.batch_size == 6  # group sizes unchanged
    for group in learning.group_ids.unique():
        rewards = learning.rewards[learning.group_ids == group]
        assert rewards.tolist().count(1.0) == 1 and len(rewards) == 3  # Scaf-GRPO: exactly one 1
        adv = learning.advantages[learning.group_ids == group]
        std = float(torch.tensor([0.0, 0.0, 1.0]).std())
        assert sorted(adv.tolist()) == pytest.approx([-1 / 3 / std] * 2 + [2 / 3 / std], abs=1e-3)
    hinted = learning.hint_level > 0
    assert hinted.sum() == 2 and (learning.rewards[hinted] == 1).all()
    # hint tokens have loss mask 0: the hint is in the prompt, the completion mask covers only the
    # generated tokens
    tokenizer = trainer.tokenizer
    for i in hinted.nonzero().squeeze(1).tolist():
        assert f"Hint: {HINTS[0]}" in learning.prompts[i]
        prompt_text = tokenizer.decode(learning.prompt_ids[i][learning.prompt_mask[i].bool()])
        assert HINTS[0] in prompt_text
        generated = learning.completion_ids[i][learning.completion_mask[i].bool()]
        assert HINTS[0] not in tokenizer.decode(generated)
        assert int(learning.completion_mask[i].sum()) == len(generated) <= trainer.cfg.rollout.max_new_tokens


def test_a_group_with_a_success_is_never_guided(tiny_overrides, tmp_path):
    trainer = guided_trainer(tiny_overrides, tmp_path, reward=alternating)
    collected = trainer.rollouts.collect(trainer.step)
    batch, rows, metrics = collected.batch, collected.rows, collected.metrics
    assert metrics.get("guidance/stuck_groups", 0) == 0 and batch.hint_level is None
    assert len(rows) == batch.batch_size == 6


def test_tiers_escalate_until_one_succeeds(tiny_overrides, tmp_path):
    def third_tier_only(completions, prompts, **columns):
        return [1.0 if HINTS[2] in p else 0.0 for p in prompts]

    trainer = guided_trainer(tiny_overrides, tmp_path, reward=third_tier_only)
    collected = trainer.rollouts.collect(trainer.step)
    metrics = collected.metrics
    assert metrics["guidance/hint_level"] == 3 and metrics["guidance/hinted_rollouts"] == 3 * 2 * 3
    learning = collected.batch.select(collected.rows)
    assert learning.hint_level.tolist().count(3) == 2 and learning.hint_level.max() == 3


def test_the_guidance_free_opening_guides_nothing(tiny_overrides, tmp_path):
    trainer = guided_trainer(
        tiny_overrides, tmp_path, "algorithm.guidance.start_fraction=0.5", "train.steps=4"
    )
    metrics = trainer.rollouts.collect(1).metrics
    assert "guidance/stuck_groups" not in metrics
    metrics = trainer.rollouts.collect(3).metrics
    assert metrics["guidance/stuck_groups"] == 2


def test_ghpo_hints_are_solution_prefixes(tiny_overrides, tmp_path):
    def prefix_seen(completions, prompts, **columns):
        return [1.0 if "beginning part" in p else 0.0 for p in prompts]

    task = write_hint_task(tmp_path, solutions=True)
    trainer = trainer_with_reward(
        tiny_overrides,
        prefix_seen,
        "recipe=ghpo",
        f"task.name={task}",
        "algorithm.guidance.success_on=reward",
    )
    trainer.step = 1
    collected = trainer.rollouts.collect(trainer.step)
    learning = collected.batch.select(collected.rows)
    assert learning.hint_level.tolist() == [1] * 6  # GHPO: the hinted group replaces the group
    row = learning.examples[0]
    solution_ids = trainer.tokenizer(row["hints"], add_special_tokens=False)["input_ids"]
    prefix = trainer.tokenizer.decode(solution_ids[: -(-len(solution_ids) // 4)])  # ⌈0.25·n⌉ tokens
    assert f"solving the problem:\n{prefix}</s>" in learning.prompts[0]  # exactly the prefix, in the prompt
    assert len(prefix) < len(row["hints"])


def test_guide_learns_hinted_rollouts_under_the_unhinted_prompt(tiny_overrides, tmp_path):
    trainer = guided_trainer(
        tiny_overrides, tmp_path, "recipe=guide_grpo", "algorithm.guidance.success_on=reward"
    )
    learning = trainer.learner.prepare(trainer.rollouts.collect(trainer.step).learning)
    hinted = learning.hint_level > 0
    assert hinted.sum() == 2 * 2  # max_replaced=2 per group
    assert learning.off_policy.tolist() == hinted.tolist()
    for i in hinted.nonzero().squeeze(1).tolist():
        assert "Hint:" not in learning.prompts[i]
        same_group = (learning.group_ids == learning.group_ids[i]) & ~hinted
        j = int(same_group.nonzero()[0])
        assert torch.equal(learning.prompt_ids[i], learning.prompt_ids[j])  # the learner sees no hint
    # the loss's old log-probs: the hinted sampler's on guided rows, the learner's own elsewhere
    seen = {}
    loss = trainer.learner.loss_fn

    def spy(logp, old, advantages, mask, ctx, **params):
        seen.setdefault("rows", []).append((logp.detach(), old, ctx))
        return loss(logp, old, advantages, mask, ctx, **params)

    trainer.learner.loss_fn = spy
    trainer.learner.learn(learning)
    differs = False
    for logp, old, ctx in seen["rows"]:
        off = ctx.off_policy
        torch.testing.assert_close(old[off], ctx.sampling_logprobs[off].to(old.dtype), rtol=0, atol=0)
        torch.testing.assert_close(old[~off], logp[~off], rtol=0, atol=0)
        differs |= bool(((logp[off] - old[off]).abs() * ctx.completion_mask[off]).max() > 1e-3)
    assert differs, "the hinted context should change the log-probs: two contexts, two passes"


def test_with_an_empty_hint_the_guided_ratio_is_the_ordinary_ratio(tiny_overrides, tmp_path):
    """Guide-GRPO (Nath et al. 2025, "Adaptive Guidance Accelerates Reinforcement Learning of Reasoning
    Models", arXiv:2506.13923): when h is empty the guided ratio equals the ordinary ratio (1 before
    any update)."""
    trainer = guided_trainer(
        tiny_overrides,
        tmp_path,
        "algorithm.guidance.learn_with=unhinted",
        "algorithm.guidance.template='{hint}'",
    )
    torch.manual_seed(0)
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), trainer.step)
    trainer.rollouts.score(batch)
    out = trainer.rollouts.guidance.hinted(batch, [0, 3], ["", ""])
    assert out.off_policy.all() and out.prompts == [batch.prompts[0]] * 3 + [batch.prompts[3]] * 3
    with torch.no_grad():
        logp, _ = completion_logprobs(trainer.model, out)
    ratio = torch.exp((logp - out.sampling_logprobs) * out.completion_mask)
    torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=1e-4, atol=1e-4)


def test_a_guided_recipe_on_a_task_without_hints_fails_at_start_up(tiny_overrides):
    # letter_counting's rows carry no worked solution to derive hints from (chain_sum's now do)
    with pytest.raises(ValueError, match="no train row of task 'letter_counting' has one") as error:
        make_trainer(tiny_overrides, "recipe=scaf_grpo", "task.name=letter_counting")
    assert "'hints' column" in str(error.value) and "algorithm.guidance.mode=off" in str(error.value)


def test_guided_steps_train_and_log_hint_levels(tiny_overrides, tmp_path):
    trainer = guided_trainer(tiny_overrides, tmp_path)
    trainer.step = 0
    metrics = trainer.train_step()
    assert metrics["grad_norm"] > 0
    assert metrics["reward/mean"] == 0.0  # the model's own rollouts, without hints
    assert metrics["kept_fraction"] == 1.0  # as many rows learn as were sampled unhinted
    samples = read_jsonl(trainer.run_dir / "samples.jsonl")
    assert len(samples) == 6 + 6 and sum(s["hint_level"] for s in samples) == 6
