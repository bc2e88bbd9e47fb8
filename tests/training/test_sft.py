"""Supervised fine-tuning on worked solutions (the first stage of Yoshihara, Yamaguchi & Inoue 2025,
"A Practical Two-Stage Recipe for Mathematical LLMs", arXiv:2507.08267): the loss, a run through the
command line, the saved standalone model, Ctrl-C, and the error without solutions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import grpozoo.training.sft as sft
from grpozoo.cli import main
from grpozoo.errors import ConfigError
from grpozoo.tasks import make_task
from grpozoo.training.forward import completion_logprobs
from grpozoo.training.model import load_model, load_policy, load_tokenizer
from grpozoo.training.sft import SFTRun, demonstration_batch, demonstration_rows, sft_config, sft_loss


def write_task(directory: Path, rows: int = 16, solutions: bool = True) -> Path:
    """A small JSONL task whose worked solution sits in a column named ``worked``."""
    path = directory / "sums.jsonl"
    with path.open("w") as f:
        for i in range(rows):
            a, b = i % 7 + 1, i // 7 + 2
            row = {"prompt": f"What is {a} + {b}?", "answer": str(a + b)}
            if solutions:
                row["worked"] = f"{a} + {b} = {a + b}"
            f.write(json.dumps(row) + "\n")
    return path


def task_overrides(tiny_overrides: list[str], tmp_path: Path, *extra: str) -> list[str]:
    return [*tiny_overrides, f"task.name={write_task(tmp_path)}", "task.columns.solution=worked",
            "task.eval_size=4", "train.learning_rate=0.01", "train.micro_batch_tokens=4096", *extra]


def demonstrations_nll(model, tokenizer, cfg) -> float:
    """The mean NLL per token of every train demonstration of ``cfg``'s task under ``model``."""
    task = make_task(cfg.task)
    batch = demonstration_batch(tokenizer, task, demonstration_rows(task))
    with torch.no_grad():
        logp, _ = completion_logprobs(model, batch)
    return float(sft_loss(logp, batch.completion_mask))


def test_sft_loss_is_the_mean_nll_of_the_completion_tokens_and_ignores_padding():
    logp = torch.tensor([[-1.0, -2.0, float("nan")], [-3.0, float("-inf"), 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert sft_loss(logp, mask).item() == pytest.approx(2.0)  # (1 + 2 + 3) / 3 real tokens
    # micro-batches normalised by the whole batch's tokens add up to the batch's loss
    halves = sft_loss(logp[:1], mask[:1], num_tokens=3) + sft_loss(logp[1:], mask[1:], num_tokens=3)
    assert halves.item() == pytest.approx(2.0)


def test_sft_loss_gradient_raises_the_logprob_of_every_demonstration_token():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, requires_grad=True)
    targets = torch.randint(0, 6, (2, 4))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])

    def logp_of(z):
        return torch.log_softmax(z, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)

    before = logp_of(logits).detach()
    sft_loss(logp_of(logits), mask).backward()
    assert torch.all(logits.grad[mask == 0] == 0)  # padding takes no gradient
    after = logp_of(logits.detach() - 0.5 * logits.grad)
    assert torch.all(after[mask == 1] > before[mask == 1])
    assert torch.equal(after[mask == 0], before[mask == 0])


def test_sft_loss_on_a_demonstration_batch_counts_only_the_solution_and_eos(tiny_overrides, tmp_path):
    cfg = sft_config(overrides=task_overrides(tiny_overrides, tmp_path))
    model, tokenizer = load_model(cfg.model.name), load_tokenizer(cfg.model.name)
    task = make_task(cfg.task)
    rows = demonstration_rows(task)[:3]
    batch = demonstration_batch(tokenizer, task, rows)
    for i, row in enumerate(rows):  # the completion is the solution, then EOS
        ids = batch.completion_ids[i][batch.completion_mask[i].bool()].tolist()
        assert tokenizer.decode(ids[:-1]) == row["solution"] and ids[-1] == tokenizer.eos_token_id
    with torch.no_grad():
        logp, _ = completion_logprobs(model, batch)
        # the same by hand: one sequence at a time, no padding, every logit, prompt positions dropped
        nll, count = 0.0, 0
        for i in range(len(rows)):
            prompt = batch.prompt_ids[i][batch.prompt_mask[i].bool()]
            completion = batch.completion_ids[i][batch.completion_mask[i].bool()]
            ids = torch.cat([prompt, completion])[None]
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
            nll -= float(torch.log_softmax(logits, -1).gather(-1, completion[:, None]).sum())
            count += len(completion)
    assert float(sft_loss(logp, batch.completion_mask)) == pytest.approx(nll / count, rel=1e-5)


def test_one_epoch_from_the_command_line_lowers_the_nll_of_the_demonstrations(tiny_overrides, tmp_path, capsys):
    overrides = task_overrides(tiny_overrides, tmp_path)
    out = tmp_path / "sft"
    argv = [arg for o in overrides for arg in ("--set", o)]
    assert main(["sft", "--epochs", "1", "--batch-size", "4", "--output", str(out), "--no-progress", *argv]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "held-out accuracy before SFT" in printed and "held-out accuracy after SFT" in printed
    steps = [json.loads(line) for line in (out / "sft_metrics.jsonl").read_text().splitlines()]
    cfg = sft_config(overrides=overrides)
    rows = len(demonstration_rows(make_task(cfg.task)))
    assert [r["step"] for r in steps] == list(range(1, -(-rows // 4) + 1)) and steps[-1]["epoch"] == 1.0
    evals = [json.loads(line) for line in (out / "sft_eval.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in evals] == ["before", "after"] and "accuracy_per_1k_tokens" in evals[1]
    base = demonstrations_nll(load_model(cfg.model.name), load_tokenizer(cfg.model.name), cfg)
    tuned = demonstrations_nll(load_model(str(out / "model")), load_tokenizer(str(out / "model")), cfg)
    assert tuned < base - 0.05, (base, tuned)


@pytest.mark.parametrize("lora", [True, False])
def test_the_saved_model_starts_a_run_with_the_trained_log_probs(tiny_overrides, tmp_path, monkeypatch, lora):
    cfg = sft_config(overrides=task_overrides(tiny_overrides, tmp_path, "eval.at_start=false", "eval.at_end=false",
                                              f"model.lora.enabled={str(lora).lower()}"))
    job = SFTRun(cfg, output=tmp_path / "sft", epochs=1, batch_size=8)
    batch = demonstration_batch(job.tokenizer, job.task, job.rows)
    trained: list[torch.Tensor] = []
    real_save = sft.save_model

    def save_model(model, tokenizer, folder):  # the trained model, as handed over to be saved (merged)
        with torch.no_grad():
            trained.append(completion_logprobs(model, batch)[0])
        return real_save(model, tokenizer, folder)

    monkeypatch.setattr(sft, "save_model", save_model)
    result = job.run(show_progress=False)
    assert (result.model_dir / "config.json").exists() and not (result.model_dir / "adapter_config.json").exists()
    # what `grpozoo train --model DIR/model` loads: the (merged) weights, with LoRA fresh adapters over them
    policy, tokenizer = load_policy(cfg.model.model_copy(update={"name": str(result.model_dir)}))
    assert tokenizer.chat_template == job.tokenizer.chat_template
    with torch.no_grad():
        loaded = completion_logprobs(policy, batch)[0]
        base = completion_logprobs(load_model(cfg.model.name), batch)[0]
    real = batch.completion_mask.bool()
    assert torch.allclose(loaded[real], trained[0][real], atol=1e-5)
    assert not torch.allclose(base[real], trained[0][real], atol=1e-3)  # it did train


def test_ctrl_c_still_saves_what_was_trained(tiny_overrides, tmp_path, monkeypatch):
    cfg = sft_config(overrides=task_overrides(tiny_overrides, tmp_path, "eval.at_start=false"))
    job = SFTRun(cfg, output=tmp_path / "sft", epochs=2, batch_size=4)
    batch = demonstration_batch(job.tokenizer, job.task, job.rows)
    real_step = sft.sft_step
    after: list[torch.Tensor] = []

    def step(model, *args):
        if len(after) == 2:
            raise KeyboardInterrupt
        metrics = real_step(model, *args)
        with torch.no_grad():
            after.append(completion_logprobs(model, batch)[0])
        return metrics

    monkeypatch.setattr(sft, "sft_step", step)
    with pytest.raises(KeyboardInterrupt):
        job.run(show_progress=False)
    assert len((tmp_path / "sft" / "sft_metrics.jsonl").read_text().splitlines()) == 2
    saved = load_model(str(tmp_path / "sft" / "model"))
    with torch.no_grad():
        logp = completion_logprobs(saved, batch)[0]
    real = batch.completion_mask.bool()
    assert torch.allclose(logp[real], after[-1][real], atol=1e-5)  # the weights of the last complete step
    assert not (tmp_path / "sft" / "sft_eval.jsonl").exists()  # no evaluation after a stop


def test_a_task_without_solutions_is_refused_naming_the_fix(tiny_overrides, tmp_path):
    path = write_task(tmp_path, solutions=False)
    cfg = sft_config(overrides=[*tiny_overrides, f"task.name={path}"])
    with pytest.raises(ConfigError, match=r"no train row of task .* has one .*task\.columns"):
        SFTRun(cfg, output=tmp_path / "sft")
    assert not (tmp_path / "sft").exists()


def test_sft_takes_the_sft_grpo_recipe_unless_one_is_named(tmp_path):
    assert sft_config().recipe == "sft_grpo"
    assert sft_config(overrides=["recipe=dapo"]).recipe == "dapo"
    config = tmp_path / "run.yaml"
    config.write_text("recipe: grpo\n")
    assert sft_config(config).recipe == "grpo"
