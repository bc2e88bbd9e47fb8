"""Learned critics on the tiny model: the hidden states they read, their own optimiser, exact
resume from a checkpoint, and the refusal of several learner processes."""

import math

import pytest
import torch
from training.test_optimizers import trainable_weights, untimed
from training.test_trainer import make_trainer

from grpozoo.errors import ConfigError
from grpozoo.training import checkpoint as ckpt
from grpozoo.training.critics import check_critic_run, hidden_states, train_head


def scored_batch(trainer, seed: int = 0):
    """A sampled and scored batch, before the learner's providers and advantages."""
    torch.manual_seed(seed)
    rollouts = trainer.rollouts
    batch = rollouts.generate(rollouts.selector.next(trainer.cfg.rollout.prompts_per_step), trainer.step)
    rollouts.score(batch)
    return batch


def test_state_t_is_the_last_hidden_state_after_t_completion_tokens(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "recipe=t_ppo")
    batch = scored_batch(trainer)
    inputs = hidden_states(trainer.model, batch, token_budget=4096)
    decoder = trainer.model.get_decoder()
    for i in range(batch.batch_size):
        prompt = batch.prompt_ids[i][batch.prompt_mask[i].bool()]
        length = int(batch.completion_lengths[i])
        for t in range(length + 1):
            ids = torch.cat([prompt, batch.completion_ids[i, :t]]).unsqueeze(0)
            with torch.no_grad():
                alone = decoder(input_ids=ids).last_hidden_state[0, -1]
            assert torch.allclose(inputs.states[i, t], alone, atol=1e-5)
        assert inputs.states[i, length + 1:].abs().sum() == 0  # past the end state
    # micro-batching never changes them
    small = hidden_states(trainer.model, batch, token_budget=1)
    assert torch.allclose(small.states, inputs.states, atol=1e-6)
    assert torch.allclose(small.prompt, inputs.prompt, atol=1e-6)


def test_a_head_predicts_before_its_update_and_keeps_its_state_in_plain_tensors():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(64, 5, generator=g)
    targets = features @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])
    weights = torch.ones(64)
    state: dict = {}
    first, loss = train_head(state, "critic/test", features, targets, weights, hidden=0, lr=0.1, probability=False)
    assert loss == pytest.approx(float(((first - targets) ** 2).mean()), rel=1e-5)  # the loss before the step
    assert set(state["critic/test"]) == {"head", "optimizer"}
    assert all(isinstance(v, torch.Tensor) for v in state["critic/test"]["head"].values())
    # the head starts from its own seed, whatever the run's random state
    torch.manual_seed(123)
    assert torch.equal(first, train_head({}, "critic/test", features, targets, weights, 0, 0.1, False)[0])
    errors = [float(((first - targets) ** 2).mean())]
    for _ in range(60):
        predictions, _ = train_head(state, "critic/test", features, targets, weights, 0, 0.1, False)
        errors.append(float(((predictions - targets) ** 2).mean()))
    assert errors[-1] < 0.1 * errors[0]
    # no weight, no step: the head and its AdamW state stay as they are
    before = {k: v.clone() for k, v in state["critic/test"]["head"].items()}
    step = state["critic/test"]["optimizer"]["state"][0]["step"].clone()
    assert train_head(state, "critic/test", features, targets, torch.zeros(64), 0, 0.1, False)[1] is None
    assert all(torch.equal(before[k], v) for k, v in state["critic/test"]["head"].items())
    assert torch.equal(state["critic/test"]["optimizer"]["state"][0]["step"], step)


def test_the_critic_reads_the_policy_without_touching_it(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "recipe=poad")
    batch = scored_batch(trainer)
    weights = trainable_weights(trainer)
    trainer.learner.providers.provide(batch)
    assert batch.values is not None and batch.values.shape == (batch.batch_size, batch.completion_ids.shape[1] + 1)
    assert all(p.grad is None for p in trainer.model.parameters())
    assert all(torch.equal(weights[n], w) for n, w in trainable_weights(trainer).items())
    assert "critic/values" in trainer.state


CRITIC_RUN = ["train.steps=2", "train.checkpoint_every=10", "rollout.max_new_tokens=6"]


@pytest.mark.parametrize(("recipe", "key"), [("poad", "critic/values"), ("poise", "critic/probe_values")])
def test_a_critic_run_resumed_from_a_checkpoint_continues_exactly(tiny_overrides, tmp_path, recipe, key):
    overrides = [o for o in tiny_overrides if not o.startswith("rollout.group_size=")] + CRITIC_RUN
    straight = make_trainer(overrides, f"recipe={recipe}", f"output_dir={tmp_path / 'straight'}")
    expected = [untimed(straight.train_step()) for _ in range(2)]
    loss_name = {"poad": "critic/loss", "poise": "critic/probe_loss"}[recipe]
    assert all(math.isfinite(m[loss_name]) for m in expected)  # the critic's own loss is logged each step

    run = tmp_path / "stopped"
    stopped = make_trainer(overrides, f"recipe={recipe}", f"output_dir={run}")
    assert untimed(stopped.train_step()) == expected[0]
    saved = stopped.save()
    assert "exp_avg" in ckpt.load_trainer_state(saved)["components"][key]["optimizer"]["state"][0]
    del stopped

    resumed = make_trainer(overrides, f"recipe={recipe}", f"output_dir={run}", run_dir=run, resume=True)
    assert untimed(resumed.train_step()) == expected[1]
    for name, value in straight.state[key]["head"].items():
        assert torch.equal(resumed.state[key]["head"][name], value)
    weights = trainable_weights(resumed)
    assert all(torch.equal(weights[n], w) for n, w in trainable_weights(straight).items())

    # the critic's state is what made it exact: a resumed run without it learns otherwise
    forgetful = make_trainer(overrides, f"recipe={recipe}", f"output_dir={run}", run_dir=run, resume=True)
    forgetful.state.pop(key)
    forgetful.train_step()
    assert any(not torch.equal(w, trainable_weights(forgetful)[n]) for n, w in weights.items())


def test_a_learned_critic_with_several_learner_processes_is_refused():
    with pytest.raises(ConfigError, match="one learner process"):
        check_critic_run({"values", "old_logprobs"}, "poad", processes=2)
    with pytest.raises(ConfigError, match="probe_values"):
        check_critic_run({"probe_values"}, "poise", processes=4)
    check_critic_run({"values"}, "poad", processes=1)
    check_critic_run({"old_logprobs"}, "grpo", processes=2)


def test_a_critic_without_targets_from_its_estimator_is_refused_at_start_up(tiny_overrides):
    with pytest.raises(ConfigError, match="declares none: choose one of .*poad"):
        make_trainer(tiny_overrides, "recipe=b_coder", "algorithm.advantage.name=grpo")
