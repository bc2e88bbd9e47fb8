"""The learner on 1 and on 2 processes (DDP and FSDP2 over gloo, on the CPU): learning-phase time,
the largest gradient difference from the one-process gradient, and each process's peak memory.

    python benchmarks/scaling.py [--full] [--threads 1]

Both learn the same batch (8 prompts x 4 completions of 32 tokens of the embedded SmolLM2-135M-
Instruct, sampled once with a fixed seed), one optimiser step, LoRA or ``--full`` fine-tuning.
Under DDP every process holds the whole model, its gradient and optimiser state; under FSDP each
holds half of them, plus the whole copy that sampling and saving read. The one-process figures come
from this process, which also sampled the batch, so its peak memory includes the sampling. ``--threads`` torch threads per process
(default 1: two processes on two cores).
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from step_time import processor_line


def make_trainer(full: bool, out: Path, strategy: str = "ddp"):
    from grpozoo.config import resolve_config
    from grpozoo.training import Trainer

    return Trainer(resolve_config(overrides=[
        f"model.lora.enabled={str(not full).lower()}", f"train.distributed={strategy}", "rollout.prompts_per_step=8", "rollout.group_size=4",
        "rollout.max_new_tokens=32", "rollout.min_new_tokens=32", "train.learning_rate=1e-6",
        f"output_dir={out}", "train.keep_freed_memory=false",
    ]))


def learn_once(full: bool, threads: int, out: Path, batch, strategy: str = "ddp") -> dict:
    """One learning step on ``batch`` from the run's initial weights: its time, gradient (gathered
    whole where sharded) and peak RSS."""
    from grpozoo.training.distributed import whole

    torch.set_num_threads(threads)
    trainer = make_trainer(full, out, strategy)
    trained = [(n, p) for n, p in trainer.model.named_parameters() if p.requires_grad]
    grads: dict[str, torch.Tensor] = {}
    trainer.learner.optimizer.register_step_pre_hook(
        lambda *_: grads.update({n: whole(p.grad).clone() for n, p in trained})
    )
    started = time.perf_counter()
    trainer.learner.learn(batch)
    return {"learn_s": time.perf_counter() - started, "grads": grads, "peak_gib": peak_rss_gib()}


def peak_rss_gib() -> float:
    """This process's peak resident memory (VmHWM: unlike getrusage's maximum, it starts afresh in a
    spawned process instead of carrying its parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def process(index: int, port: int, full: bool, threads: int, out: str, strategy: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=index, world_size=2)
    try:
        batch = torch.load(Path(out) / "batch.pt", weights_only=False)
        result = learn_once(full, threads, Path(out) / f"{strategy}{index}", batch, strategy)
        torch.save(result, Path(out) / f"{strategy}-rank{index}.pt")
    finally:
        dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(processor_line())
    with tempfile.TemporaryDirectory() as out:
        sampler = make_trainer(a.full, Path(out) / "sample")
        torch.manual_seed(0)
        batch = sampler.learner.prepare(sampler.rollouts.collect(1).learning)
        torch.save(batch, Path(out) / "batch.pt")
        del sampler
        alone = learn_once(a.full, a.threads, Path(out) / "alone", batch)
        together = {}
        for strategy in ("ddp", "fsdp"):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            mp.spawn(process, args=(port, a.full, a.threads, out, strategy), nprocs=2, join=True)
            together[strategy] = [torch.load(Path(out) / f"{strategy}-rank{i}.pt") for i in range(2)]
    print(f"{'full' if a.full else 'LoRA'} fine-tuning, {a.threads} thread(s) a process")
    print("| processes | learn s | peak RSS GiB a process | largest gradient difference (relative) |")
    print("|---|---|---|---|")
    print(f"| 1 | {alone['learn_s']:.2f} | {alone['peak_gib']:.2f} | - |")
    for strategy, results in together.items():
        gap = max(float((results[0]["grads"][n] - g).abs().max() / g.abs().max().clamp_min(1e-30))
                  for n, g in alone["grads"].items())
        print(f"| 2 ({strategy.upper()}) | {max(t['learn_s'] for t in results):.2f} | "
              f"{max(t['peak_gib'] for t in results):.2f} | {gap:.1e} |")


if __name__ == "__main__":
    main()
