"""The trainer on a tiny model built in code: gradients, log-probs, a full run, resume."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from grpozoo.algos.aggregation import BatchTotals
from grpozoo.config import resolve_config
from grpozoo.training import Trainer, fit
from grpozoo.training.forward import completion_logprobs, micro_batches

METRIC_KEYS = {
    "step", "reward/mean", "reward/std", "accuracy", "reward/task", "reward/digit_share", "completion_length", "truncation_rate",
    "entropy", "clip_fraction", "grad_norm", "zero_variance_groups", "time/generation_s",
    "time/learning_s", "time/step_s", "time/sync_s", "tokens_per_s", "loss", "lr", "weight_version",
}


def make_trainer(overrides: list[str], *extra: str, **kwargs) -> Trainer:
    cfg = resolve_config(overrides=[*overrides, *extra])
    return Trainer(cfg, **kwargs)


def sampled_batch(trainer: Trainer, seed: int = 0):
    torch.manual_seed(seed)
    rollouts = trainer.rollouts
    batch = rollouts.generate(rollouts.selector.next(trainer.cfg.rollout.prompts_per_step), trainer.step)
    rollouts.score(batch)
    batch.advantages = trainer.learner.components.advantage_fn(batch.rewards, batch.group_ids, batch)
    return batch


def gradients(trainer: Trainer, batch, token_budget: int) -> tuple[int, dict[str, torch.Tensor]]:
    trainer.model.zero_grad(set_to_none=True)
    chunks = [mb for _, mb in micro_batches(batch, token_budget)]
    totals = BatchTotals.of(batch.completion_mask, trainer.cfg.rollout.max_new_tokens, batch.group_ids)
    trainer.learner.accumulate_gradients(chunks, totals)
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return len(chunks), grads


@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean", "constant_normalizer"])
@pytest.mark.parametrize("lora", [True, False])
def test_gradients_do_not_depend_on_the_micro_batch_split(tiny_overrides, aggregation, lora):
    trainer = make_trainer(
        tiny_overrides, f"algorithm.aggregation={aggregation}", f"model.lora.enabled={lora}",
        "rollout.prompts_per_step=4", "rollout.group_size=2", "rollout.max_new_tokens=12",
    )
    batch = sampled_batch(trainer)
    one_chunk, whole = gradients(trainer, batch, token_budget=10_000)
    longest = int((batch.prompt_mask.sum(1) + batch.completion_mask.sum(1)).max())
    many_chunks, split = gradients(trainer, batch, token_budget=2 * longest)
    assert one_chunk == 1 and many_chunks >= 4
    assert any(g.abs().sum() > 0 for g in whole.values())
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], rtol=1e-4, atol=1e-6, msg=name)


def test_learner_logprobs_match_the_sampling_logprobs(tiny_overrides):
    """With left-padded prompts of different lengths, the learner's forward must reproduce the
    generator's log-probs: the on-policy ratio is 1."""
    trainer = make_trainer(tiny_overrides, "rollout.prompts_per_step=6", "rollout.max_new_tokens=10",
                           "task.params.max_digits=3")
    batch = sampled_batch(trainer)
    assert batch.prompt_mask.sum(1).unique().numel() > 1, "prompts should differ in length"
    with torch.no_grad():
        logp, entropy = completion_logprobs(trainer.model, batch, with_entropy=True)
    torch.testing.assert_close(logp, batch.sampling_logprobs, rtol=1e-4, atol=1e-4)
    mask = batch.completion_mask.bool()
    vocab = trainer.model.config.vocab_size
    assert (entropy[mask] > 0).all() and (entropy[mask] <= torch.log(torch.tensor(float(vocab))) + 1e-4).all()


def test_batched_logprobs_put_every_micro_batch_back_in_its_rows(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "rollout.prompts_per_step=6", "train.micro_batch_tokens=250",
                           "task.params.max_digits=3")
    batch = sampled_batch(trainer)
    assert len(micro_batches(batch, 250)) >= 3
    with torch.no_grad():
        whole, _ = completion_logprobs(trainer.model, batch)
    torch.testing.assert_close(trainer.learner.logprobs_without_grad(batch, trainer.model), whole, rtol=1e-5, atol=1e-5)


def test_two_step_run_writes_the_run_directory(tiny_overrides, tmp_path):
    from rich.console import Console

    console = Console(record=True, width=200)
    trainer = make_trainer(tiny_overrides, "train.steps=2", "train.checkpoint_every=1", console=console)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    summary = fit(trainer, show_progress=False)
    run = tmp_path / "run"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert METRIC_KEYS <= set(metrics[0])
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * 2 * 3
    assert {"prompt", "completion", "reward", "parts"} <= set(samples[0])
    evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 2]
    assert summary["eval_end"]["prompts"] == 6
    assert (run / "reward_curve.png").stat().st_size > 1000
    assert (run / "config.yaml").exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000001", "step-000002"]
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before), "training changed no weight"
    assert "WARNING" not in console.export_text()


def test_a_batch_without_signal_is_warned_about_loudly(tiny_overrides):
    from rich.console import Console

    console = Console(record=True, width=200)
    # a random tiny model never sums 4-digit numbers: every group has the same reward
    trainer = make_trainer(tiny_overrides, "rewards=[{name: task}]", "task.params.min_digits=4",
                           "task.params.max_digits=4", console=console)
    trainer.train_step()
    trainer.train_step()
    assert "WARNING" not in console.export_text(clear=False), "one or two bad batches are normal"
    trainer.train_step()
    assert "same reward for every completion, 3 steps in a row" in console.export_text()


def test_truncation_is_warned_about_after_three_truncated_steps(tiny_overrides):
    from rich.console import Console

    console = Console(record=True, width=200)
    trainer = make_trainer(tiny_overrides, console=console)
    metrics = {"truncation_rate": 0.95, "zero_variance_groups": 0.0, "reward/mean": 0.5}
    for _ in (1, 2):
        trainer.history.append(metrics)
        trainer.check_signal()
    assert "WARNING" not in console.export_text(clear=False)
    trainer.history.append(metrics)
    trainer.check_signal()
    assert "hit rollout.max_new_tokens=8 without finishing, 3 steps in a row" in console.export_text()


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_overrides, tmp_path, monkeypatch):
    steps = ["train.steps=4", "train.checkpoint_every=10", "eval.at_start=false", "eval.at_end=false",
             "train.lr_scheduler=linear", "algorithm.num_iterations=2"]
    straight = make_trainer(tiny_overrides, *steps, f"output_dir={tmp_path / 'straight'}")
    fit(straight, show_progress=False)

    interrupted = make_trainer(tiny_overrides, *steps, f"output_dir={tmp_path / 'interrupted'}")
    original_step = Trainer.train_step
    # the handler before the run (Python's default, or "ignored" under a launcher that ignores Ctrl-C)
    handler_before = signal.getsignal(signal.SIGINT)

    def ctrl_c_during_step_two(self):
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C, in the middle of the step
        return original_step(self)

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_during_step_two)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, show_progress=False)
    monkeypatch.setattr(Trainer, "train_step", original_step)
    # the step in progress was completed, then saved
    assert (tmp_path / "interrupted" / "checkpoints" / "step-000002").exists()
    assert signal.getsignal(signal.SIGINT) is handler_before  # given back as it was

    resumed = make_trainer(tiny_overrides, *steps, f"output_dir={tmp_path / 'interrupted'}",
                           run_dir=tmp_path / "interrupted", resume=True)
    assert resumed.step == 2
    fit(resumed, show_progress=False)

    def read(name):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if not k.startswith(("time/", "tokens_per_s"))}
                for line in lines]

    a, b = read("straight"), read("interrupted")
    assert [m["step"] for m in b] == [1, 2, 3, 4]
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-7), (x["step"], key)


@pytest.mark.parametrize("lora", [True, False])
def test_kl_reference_is_the_starting_policy(tiny_overrides, lora):
    """Under LoRA the reference is the base with adapters disabled (no copy); in full fine-tuning a
    frozen copy. Either way, at the first step the policy equals the reference, so KL is 0."""
    trainer = make_trainer(tiny_overrides, "algorithm.kl.coef=0.1", f"model.lora.enabled={lora}")
    assert (trainer.learner.reference is None) == lora
    metrics = trainer.train_step()
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)
    batch = sampled_batch(trainer, seed=1)
    ref = trainer.learner.reference_logprobs(batch)
    policy = trainer.learner.logprobs_without_grad(batch, trainer.model)
    assert not torch.allclose(ref, policy), "after a step the policy should differ from the reference"


@pytest.mark.parametrize("lora", [True, False])
def test_the_sampler_draws_from_the_updated_weights(tiny_overrides, lora):
    """After every update the hf engine samples from the new weights: the learner's log-probs of the
    tokens sampled equal the sampler's. (A fused optimiser step once left the sampler's packed
    layers stale in full fine-tuning: a gap of 1e-3 to 1e-1 from the second step on.)"""
    trainer = make_trainer(tiny_overrides, f"model.lora.enabled={lora}", "train.learning_rate=1e-2")
    for _ in range(3):
        metrics = trainer.train_step()
        assert metrics["grad_norm"] > 0
        assert metrics["sampler/logprob_diff_max"] < 1e-4, metrics["step"]


def test_rewards_receive_each_prompts_chat_messages_before_the_template(tiny_overrides):
    seen = {}

    def spy(completions, prompts, prompt_messages, **columns):
        seen.update(prompts=prompts, messages=prompt_messages)
        return [0.0] * len(completions)

    trainer = make_trainer(tiny_overrides, "rewards=[{name: task}, {name: spy}]", reward_functions={"spy": spy})
    trainer.train_step()
    assert len(seen["messages"]) == len(seen["prompts"])
    for text, messages in zip(seen["prompts"], seen["messages"], strict=True):
        assert messages[-1]["role"] == "user" and messages[-1]["content"] in text
        assert text == trainer.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
