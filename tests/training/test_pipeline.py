"""The trainer's component plumbing: on-demand fields, dropped rows, token weights, whole-group
micro-batches, KL in the reward, the entropy bonus, and component state across a resume."""

from __future__ import annotations

import dataclasses

import torch
from training.test_trainer import gradients, make_trainer, sampled_batch

from grpozoo.algos.advantages import AdvantageOutput
from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.groups import group_mean
from grpozoo.algos.kl import kl_k1, kl_to_go
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.config import ComponentConfig
from grpozoo.registry import AdvantageSpec, LossSpec
from grpozoo.training import fit
from grpozoo.training.forward import micro_batches
from grpozoo.training.providers import greedy_baseline_rewards, segment_values


def test_old_and_reference_logprobs_are_computed_only_when_asked_for(tiny_overrides):
    plain = make_trainer(tiny_overrides)
    assert plain.rollouts.providers.fields == [] and plain.learner.providers.fields == []
    batch = sampled_batch(plain)
    plain.rollouts.providers.provide(batch)
    plain.learner.providers.provide(batch)
    assert batch.old_logprobs is None and batch.ref_logprobs is None and batch.baseline_rewards is None

    asking = make_trainer(
        tiny_overrides, "algorithm.num_iterations=2", "algorithm.kl.coef=0.1", f"output_dir={plain.run_dir}-2"
    )
    assert asking.rollouts.providers.fields == []
    assert asking.learner.providers.fields == ["old_logprobs", "ref_logprobs"]
    batch = sampled_batch(asking)
    asking.rollouts.providers.provide(batch)
    asking.learner.providers.provide(batch)
    # before any update the policy, the reference and the sampler agree
    torch.testing.assert_close(batch.old_logprobs, batch.sampling_logprobs, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(batch.ref_logprobs, batch.sampling_logprobs, rtol=1e-4, atol=1e-4)


def test_rows_an_estimator_drops_do_not_learn(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "rollout.group_size=4")

    def first_half(rewards, group_ids, ctx, **params):
        keep = torch.arange(len(rewards)) < len(rewards) // 2
        return AdvantageOutput(
            grpo_advantage(rewards, group_ids), keep=keep, extras={"marker": rewards * 0 + 7}
        )

    trainer.learner.components = dataclasses.replace(trainer.learner.components, advantage_fn=first_half)
    batch = sampled_batch(trainer)
    learning = trainer.learner.advantages(batch)
    assert learning.batch_size == batch.batch_size // 2
    assert learning.completions == batch.completions[: batch.batch_size // 2]
    assert learning.extras["marker"].tolist() == [7.0] * learning.batch_size
    metrics = trainer.train_step()
    assert metrics["kept_fraction"] == 0.5


def test_zero_token_weights_silence_the_policy_gradient(tiny_overrides):
    trainer = make_trainer(tiny_overrides)
    batch = sampled_batch(trainer)
    batch.rewards = torch.arange(batch.batch_size, dtype=torch.float32)  # every group has signal
    batch.advantages = grpo_advantage(batch.rewards, batch.group_ids)
    _, free = gradients(trainer, batch, 10_000)
    assert any(g.abs().sum() > 0 for g in free.values())
    trainer.cfg.algorithm.token_weights = [ComponentConfig(name="zeros")]
    trainer.learner.components = dataclasses.replace(
        trainer.learner.components,
        token_weight_fns=[lambda ctx: torch.zeros_like(ctx.completion_mask, dtype=torch.float32)],
    )
    batch.token_weights = trainer.learner.token_weights(batch)
    _, silenced = gradients(trainer, batch, 10_000)
    assert all(g.abs().sum() == 0 for g in silenced.values())


def test_whole_group_micro_batches_never_split_a_group(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "rollout.prompts_per_step=4", "rollout.group_size=3")
    batch = sampled_batch(trainer)
    longest = int((batch.prompt_mask.sum(1) + batch.completion_mask.sum(1)).max())
    chunks = micro_batches(batch, token_budget=longest, whole_groups=True)
    assert len(chunks) == 4
    seen = []
    for rows, mb in chunks:
        assert len(mb.group_ids.unique()) == 1 and len(rows) == 3
        seen += rows.tolist()
    assert sorted(seen) == list(range(batch.batch_size))


def test_kl_folded_into_the_reward_is_in_the_returns_the_estimator_whitens(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "recipe=reinforce_pp", "algorithm.kl.coef=0.5")
    batch = sampled_batch(trainer)
    trainer.rollouts.providers.provide(batch)
    trainer.learner.providers.provide(batch)
    batch.ref_logprobs = batch.ref_logprobs - 0.25 * batch.completion_mask  # a reference that differs
    learning = trainer.learner.advantages(batch)
    # each token's return is the reward less the KL still to come, whitened over the batch's tokens
    kl = kl_k1(batch.sampling_logprobs, batch.ref_logprobs) * batch.completion_mask
    returns = (batch.rewards.unsqueeze(1) - 0.5 * kl_to_go(kl, batch.completion_mask)).double()
    tokens = returns[batch.completion_mask.bool()]
    expected = (returns - tokens.mean()) / (tokens.std(unbiased=False) + 1e-8) * batch.completion_mask
    torch.testing.assert_close(learning.advantages, expected.float())


def test_entropy_bonus_alone_gives_a_gradient(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "algorithm.entropy.coef=0.1")
    batch = sampled_batch(trainer)
    batch.advantages = torch.zeros(batch.batch_size)  # no policy-gradient signal at all
    _, grads = gradients(trainer, batch, 10_000)
    assert any(g.abs().sum() > 0 for g in grads.values())
    trainer.state["entropy_coef"] = 0.0
    _, none = gradients(trainer, batch, 10_000)
    assert all(g.abs().sum() == 0 for g in none.values())


def test_adaptive_entropy_coefficient_moves_towards_its_target(tiny_overrides):
    trainer = make_trainer(
        tiny_overrides, "algorithm.entropy.target=100.0", "algorithm.entropy.adapt_rate=0.01"
    )
    trainer.train_step()
    assert trainer.state["entropy_coef"] > 0  # entropy is far below 100 nats, so the bonus grows


def test_component_state_survives_a_resume(tiny_overrides, tmp_path):
    def counting_loss(logp, old_logp, advantages, mask, ctx, **params):
        return ppo_clip_loss(logp, old_logp, advantages, mask, ctx)

    def count(state, metrics, **params):
        state["calls"] = state.get("calls", 0) + 1
        state["last_entropy"] = metrics["entropy"]

    run = tmp_path / "stateful"
    first = make_trainer(
        tiny_overrides, "train.steps=2", "eval.at_start=false", "eval.at_end=false", f"output_dir={run}"
    )
    first.learner.loss_fn = counting_loss
    first.learner.loss_spec = LossSpec(after_step=count)
    fit(first, show_progress=False)
    assert first.state["calls"] == 2
    resumed = make_trainer(
        tiny_overrides,
        "train.steps=3",
        "eval.at_start=false",
        "eval.at_end=false",
        f"output_dir={run}",
        resume=True,
    )
    assert resumed.state["calls"] == 2 and resumed.state["last_entropy"] == first.state["last_entropy"]


def test_greedy_baseline_is_the_reward_of_a_greedy_completion_per_prompt(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "rollout.group_size=3")
    providers = trainer.rollouts.providers
    assert "baseline_rewards" not in providers.fields
    providers.fields.append("baseline_rewards")
    batch = sampled_batch(trainer)
    providers.provide(batch)
    baseline = batch.baseline_rewards
    assert baseline.shape == (batch.batch_size,)
    for g in batch.group_ids.unique():
        assert baseline[batch.group_ids == g].unique().numel() == 1
    again = sampled_batch(trainer)
    again.prompts, again.examples, again.group_ids = batch.prompts, batch.examples, batch.group_ids
    torch.testing.assert_close(greedy_baseline_rewards(again, providers.tools), baseline)  # greedy is deterministic


def test_segment_values_are_monte_carlo_estimates_at_the_asked_boundaries(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "rollout.group_size=2", "rollout.max_new_tokens=8")

    def boundaries(ctx, **params):
        out = torch.zeros(ctx.batch_size, ctx.completion_ids.shape[1] + 1, dtype=torch.bool)
        out[:, 0] = True
        out[torch.arange(ctx.batch_size), ctx.completion_lengths] = True
        out[:, 2] |= ctx.completion_lengths > 2
        return out

    def estimator(rewards, group_ids, ctx, **params):
        return rewards

    spec = AdvantageSpec(needs={"segment_values"}, segment_boundaries=boundaries)
    trainer.learner.components = dataclasses.replace(
        trainer.learner.components, advantage_fn=estimator, advantage_spec=spec
    )
    tools = dataclasses.replace(trainer.rollouts.providers.tools, advantage_spec=spec)
    batch = sampled_batch(trainer)
    values = segment_values(batch, tools)
    asked = boundaries(batch)
    assert values[~asked].isnan().all() and not values[asked].isnan().any()
    torch.testing.assert_close(values[:, 0], group_mean(batch.rewards, batch.group_ids))
    torch.testing.assert_close(
        values[torch.arange(batch.batch_size), batch.completion_lengths], batch.rewards
    )
    interior = values[:, 2][batch.completion_lengths > 2]
    assert ((interior >= batch.rewards.min() - 1) & (interior <= 2)).all()
