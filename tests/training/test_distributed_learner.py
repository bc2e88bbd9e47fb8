"""The learner on two processes (gloo, on the CPU) computes the one-process update: every process
holds the whole batch and backpropagates its own whole groups, aggregations normalise by the whole
batch's totals, DDP exchanges the gradients. After one step the gradient, the parameters, the
gradient norm and the loss equal the one-process run's, for the aggregations whose normaliser
spans the batch, with LoRA and with full fine-tuning."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from grpozoo.training import distributed

AGGREGATIONS = ["token_mean", "sequence_mean", "constant_normalizer", "per_prompt_mean"]
CASES = [(aggregation, lora) for lora in (True, False) for aggregation in AGGREGATIONS]


def make_case_trainer(overrides: list[str], aggregation: str, lora: bool, run_dir: Path):
    from training.test_trainer import make_trainer

    return make_trainer(
        overrides, f"algorithm.aggregation={aggregation}", f"model.lora.enabled={lora}",
        "rollout.prompts_per_step=4", "rollout.group_size=3", "rollout.max_new_tokens=10",
        "train.micro_batch_tokens=40", f"output_dir={run_dir}",
    )


def sample_batch(overrides: list[str], aggregation: str, lora: bool, run_dir: Path):
    """The learning batch of one step, sampled once and handed to every learner."""
    trainer = make_case_trainer(overrides, aggregation, lora, run_dir)
    torch.manual_seed(0)
    return trainer.learner.prepare(trainer.rollouts.collect(1).learning)


def one_step(overrides: list[str], aggregation: str, lora: bool, run_dir: Path, batch) -> dict:
    """One learning step on ``batch`` from the run's initial weights (the same in every process:
    the same seed); the gradient it used, the trained parameters and the metrics."""
    trainer = make_case_trainer(overrides, aggregation, lora, run_dir)
    trained = [(n, p) for n, p in trainer.model.named_parameters() if p.requires_grad]
    grads: dict[str, torch.Tensor] = {}
    trainer.learner.optimizer.register_step_pre_hook(  # the gradient the update is made from
        lambda *_: grads.update({n: p.grad.clone() for n, p in trained})
    )
    metrics = trainer.learner.learn(batch)
    return {"params": {n: p.detach().clone() for n, p in trained}, "grads": grads, "metrics": metrics}


def learner_process(index: int, world: int, port: int, overrides: list[str], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=index, world_size=world)
    try:
        batches = torch.load(Path(out) / "batches.pt", weights_only=False)
        results = [one_step(overrides, a, lora, Path(out) / f"{a}-{lora}-{index}", batch)
                   for (a, lora), batch in zip(CASES, batches, strict=True)]
        torch.save(results, Path(out) / f"rank{index}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_results(tiny_model_dir, tmp_path_factory):
    from tiny import tiny_run_overrides

    out = tmp_path_factory.mktemp("two-processes")
    overrides = tiny_run_overrides(tiny_model_dir, out / "unused")
    batches = [sample_batch(overrides, a, lora, out / f"sample-{a}-{lora}") for a, lora in CASES]
    torch.save(batches, out / "batches.pt")
    mp.spawn(learner_process, args=(2, free_port(), overrides, str(out)), nprocs=2, join=True)
    return batches, [torch.load(out / f"rank{i}.pt") for i in range(2)]


@pytest.mark.parametrize(("case", "aggregation", "lora"), [(i, a, lora) for i, (a, lora) in enumerate(CASES)])
def test_two_learner_processes_make_the_one_process_update(two_process_results, tiny_overrides, tmp_path, case,
                                                           aggregation, lora):
    batches, processes = two_process_results
    alone = one_step(tiny_overrides, aggregation, lora, tmp_path / "alone", batches[case])
    for rank in range(2):
        together = processes[rank][case]
        for name, grad in alone["grads"].items():  # the same gradient, to 1e-5 of its largest entry
            torch.testing.assert_close(together["grads"][name], grad, rtol=0, atol=1e-5 * float(grad.abs().max()))
        # Adam's first step moves a weight by about lr·g/(|g| + 1e-8): entries whose gradient is
        # near 1e-8 turn float rounding into differences far above 1e-5 relative, though at most
        # a small share of the learning rate (2e-4); measured about 1e-7
        for name, value in alone["params"].items():
            torch.testing.assert_close(together["params"][name], value, rtol=1e-5, atol=1e-6)
        for key in ("grad_norm", "loss", "entropy", "sampler/logprob_diff_mean", "sampler/logprob_diff_max"):
            assert together["metrics"][key] == pytest.approx(alone["metrics"][key], rel=1e-5, abs=1e-7), key
    assert alone["metrics"]["grad_norm"] > 0  # a real update, not two zero ones


def test_groups_are_dealt_whole_and_every_row_to_one_process():
    group_ids = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3])
    shares = [distributed.own_rows(8, group_ids, 3, i) for i in range(3)]
    assert sorted(torch.cat(shares).tolist()) == list(range(8))
    for share in shares:
        groups = set(group_ids[share].tolist())
        assert all(set((group_ids == g).nonzero().squeeze(1).tolist()) <= set(share.tolist()) for g in groups)
    assert [s.tolist() for s in shares] == [[0, 1, 6, 7], [2, 3, 4], [5]]


def train_processes(overrides: list[str], run_dir: Path, steps: int, *extra: str) -> list[dict]:
    """``grpozoo train --processes 2`` (torchrun, gloo); the metrics it wrote, without timings."""
    import json
    import subprocess
    import sys

    sets = [arg for o in overrides if not o.startswith("output_dir=") for arg in ("--set", o)]
    command = [sys.executable, "-m", "grpozoo.cli", "train", "--processes", "2", "--no-progress", "--steps", str(steps),
               *sets, "--set", "rollout.prompts_per_step=4", "--set", "eval.at_start=false", "--set",
               "eval.at_end=false", "--set", "train.checkpoint_every=1", *extra]
    run = subprocess.run([*command, "--output", str(run_dir)] if "--resume" not in extra else command,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not k.startswith(("time/", "tokens_per_s"))}
            for line in lines]


def test_a_two_process_run_repeats_and_resumes_exactly(tiny_overrides, tmp_path):
    straight = train_processes(tiny_overrides, tmp_path / "straight", 3)
    assert [m["step"] for m in straight] == [1, 2, 3]  # one process writes
    assert all(m["grad_norm"] > 0 for m in straight)
    assert train_processes(tiny_overrides, tmp_path / "again", 3) == straight
    train_processes(tiny_overrides, tmp_path / "resumed", 2)
    resumed = train_processes(tiny_overrides, tmp_path / "resumed", 3, "--resume", str(tmp_path / "resumed"))
    assert resumed == straight


def test_processes_share_one_default_run_directory(tiny_overrides, tmp_path):
    import subprocess
    import sys

    sets = [arg for o in tiny_overrides if not o.startswith("output_dir=") for arg in ("--set", o)]
    run = subprocess.run(
        [sys.executable, "-m", "grpozoo.cli", "train", "--processes", "2", "--no-progress", "--steps", "1", *sets,
         "--set", "rollout.prompts_per_step=4", "--set", "eval.at_start=false", "--set", "eval.at_end=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and len((runs[0] / "metrics.jsonl").read_text().splitlines()) == 1
