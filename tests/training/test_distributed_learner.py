"""The learner on two processes (gloo, on the CPU) computes the one-process update: every process
holds the whole batch and backpropagates its own whole groups, aggregations normalise by the whole
batch's totals, DDP or FSDP2 exchanges the gradients. After one step the gradient, the parameters,
the gradient norm and the loss equal the one-process run's, for the aggregations whose normaliser
spans the batch, with LoRA and with full fine-tuning, whole (DDP) and sharded (FSDP)."""

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
STRATEGIES = ["ddp", "fsdp"]


def make_case_trainer(overrides: list[str], aggregation: str, lora: bool, run_dir: Path, strategy: str = "ddp"):
    from training.test_trainer import make_trainer

    return make_trainer(
        overrides, f"algorithm.aggregation={aggregation}", f"model.lora.enabled={lora}", f"train.distributed={strategy}",
        "rollout.prompts_per_step=4", "rollout.group_size=3", "rollout.max_new_tokens=10",
        "train.micro_batch_tokens=40", f"output_dir={run_dir}",
    )


def sample_batch(overrides: list[str], aggregation: str, lora: bool, run_dir: Path):
    """The learning batch of one step, sampled once and handed to every learner."""
    trainer = make_case_trainer(overrides, aggregation, lora, run_dir)
    torch.manual_seed(0)
    return trainer.learner.prepare(trainer.rollouts.collect(1).learning)


def one_step(overrides: list[str], aggregation: str, lora: bool, run_dir: Path, batch, strategy: str = "ddp") -> dict:
    """One learning step on ``batch`` from the run's initial weights (the same in every process:
    the same seed); the gradient it used, the trained parameters (gathered whole where sharded)
    and the metrics."""
    from grpozoo.training.forward import fused_head_applies

    trainer = make_case_trainer(overrides, aggregation, lora, run_dir, strategy)
    sharded = strategy == "fsdp" and distributed.world_size() > 1
    assert distributed.is_sharded(trainer.model) == sharded
    assert fused_head_applies(trainer.model) != sharded  # the hand-run output layer steps aside under FSDP
    trained = [(n, p) for n, p in trainer.model.named_parameters() if p.requires_grad]
    grads: dict[str, torch.Tensor] = {}
    trainer.learner.optimizer.register_step_pre_hook(  # the gradient the update is made from
        lambda *_: grads.update({n: distributed.whole(p.grad).clone() for n, p in trained})
    )
    metrics = trainer.learner.learn(batch)
    return {"params": {n: distributed.whole(p.detach()).clone() for n, p in trained}, "grads": grads,
            "metrics": metrics}


def learner_process(index: int, world: int, port: int, overrides: list[str], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=index, world_size=world)
    try:
        batches = torch.load(Path(out) / "batches.pt", weights_only=False)
        results = {strategy: [one_step(overrides, a, lora, Path(out) / f"{strategy}-{a}-{lora}-{index}", batch, strategy)
                              for (a, lora), batch in zip(CASES, batches, strict=True)]
                   for strategy in STRATEGIES}
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
    for rank, strategy in [(rank, strategy) for rank in range(2) for strategy in STRATEGIES]:
        together = processes[rank][strategy][case]
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


@pytest.fixture(scope="module")
def straight(tiny_model_dir, tmp_path_factory) -> list[dict]:
    """The metrics of a 3-step two-process run never stopped."""
    from tiny import tiny_run_overrides

    out = tmp_path_factory.mktemp("straight")
    return train_processes(tiny_run_overrides(tiny_model_dir, out / "unused"), out / "run", 3)


def test_a_two_process_run_repeats_and_resumes_exactly(tiny_overrides, tmp_path, straight):
    assert [m["step"] for m in straight] == [1, 2, 3]  # one process writes
    assert all(m["grad_norm"] > 0 for m in straight)
    assert train_processes(tiny_overrides, tmp_path / "again", 3) == straight
    train_processes(tiny_overrides, tmp_path / "resumed", 2)
    resumed = train_processes(tiny_overrides, tmp_path / "resumed", 3, "--resume", str(tmp_path / "resumed"))
    assert resumed == straight


def test_a_sharded_run_follows_the_whole_model_run_and_resumes_exactly(tiny_overrides, tmp_path):
    """FSDP makes DDP's updates (to float rounding: the gradients are summed in another order), and
    its checkpoints (the whole model, each process's share of the optimiser state) resume exactly."""
    fsdp = ("--set", "train.distributed=fsdp", "--set", "model.lora.enabled=false")
    whole = train_processes(tiny_overrides, tmp_path / "ddp", 3, "--set", "model.lora.enabled=false")
    sharded = train_processes(tiny_overrides, tmp_path / "fsdp", 3, *fsdp)
    for a, b in zip(whole, sharded, strict=True):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-6)
    assert (tmp_path / "fsdp" / "checkpoints" / "step-000003" / "sharded" / ".metadata").exists()
    train_processes(tiny_overrides, tmp_path / "resumed", 2, *fsdp)
    resumed = train_processes(tiny_overrides, tmp_path / "resumed", 3, "--resume", str(tmp_path / "resumed"))
    assert resumed == sharded


def worker_pids(root: int) -> dict[int, int]:
    """The learner processes under process ``root``: rank → pid (read from each one's environment)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:  # gone meanwhile
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ranks = [v[5:] for v in environment if v.startswith(b"RANK=")]
        if ranks:
            found[int(ranks[0])] = pid
    return found


def test_a_killed_process_stops_the_run_and_a_resume_continues_it_exactly(tiny_overrides, tmp_path, straight):
    """One learner process killed mid-run: the run stops with one line naming the last checkpoint
    and the resume command, that checkpoint is whole, and resuming from it gives the metrics of a run
    never stopped."""
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "killed"
    sets = [arg for o in tiny_overrides if not o.startswith("output_dir=") for arg in ("--set", o)]
    run = subprocess.Popen(  # far more steps than it gets to make: it is killed after its first checkpoint
        [sys.executable, "-m", "grpozoo.cli", "train", "--processes", "2", "--no-progress", "--steps", "200", *sets,
         "--set", "rollout.prompts_per_step=4", "--set", "eval.at_start=false", "--set", "eval.at_end=false",
         "--set", "train.checkpoint_every=1", "--output", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "step-000001").exists() and run.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.02)
    os.kill(worker_pids(run.pid)[1], signal.SIGKILL)
    output, _ = run.communicate(timeout=300)
    assert run.returncode != 0
    last = [line for line in output.splitlines() if line.strip()][-1]
    assert "a learner process stopped" in last and f"--resume {run_dir} --processes 2" in last, output[-3000:]
    from grpozoo.training import checkpoint as ckpt

    saved = ckpt.latest_checkpoint(run_dir)
    assert saved is not None and saved.name in last
    assert ckpt.load_trainer_state(saved)["step"] == int(saved.name.split("-")[1])
    resumed = train_processes(tiny_overrides, run_dir, 3, "--resume", str(run_dir))
    assert resumed == straight


LAUNCHERS = {
    "grpozoo": ["-m", "grpozoo.cli", "train", "--processes", "2"],
    # accelerate's launcher (torchrun's underneath); --multi_gpu is its flag for several processes
    # of one machine, CPUs included
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "grpozoo.cli", "train"],
}


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_processes_share_one_default_run_directory(tiny_overrides, tmp_path, launcher):
    import subprocess
    import sys

    sets = [arg for o in tiny_overrides if not o.startswith("output_dir=") for arg in ("--set", o)]
    run = subprocess.run(
        [sys.executable, *LAUNCHERS[launcher], "--no-progress", "--steps", "1", *sets,
         "--set", "rollout.prompts_per_step=4", "--set", "eval.at_start=false", "--set", "eval.at_end=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "processes=2 (ddp)" in run.stdout
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and len((runs[0] / "metrics.jsonl").read_text().splitlines()) == 1
