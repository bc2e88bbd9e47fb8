"""Training against a real vLLM server on 127.0.0.1, serving the embedded SmolLM2-135M-Instruct:
two steps with LoRA and two with full fine-tuning, and the server's log-probs against the learner's
before and after a weight sync.

vLLM runs from its own environment (``GRPOZOO_VLLM_PYTHON``, default
``$GRPOZOO_HOME/vllm-venv/bin/python``; ``scripts/vllm-env.sh`` creates it). Where it is missing, or
the processor cannot run vLLM's CPU build (an illegal instruction at start), the tests are skipped
with the reason; any other failure to start fails them."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from grpozoo.config import resolve_config
from grpozoo.generation.vllm_server import server_command
from grpozoo.training import Trainer
from grpozoo.training.model import grpozoo_home, resolve_model

pytestmark = pytest.mark.integration

VLLM_PYTHON = os.environ.get("GRPOZOO_VLLM_PYTHON") or str(grpozoo_home() / "vllm-venv" / "bin" / "python")
START_LIMIT_S = 600


def processor() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def unavailable() -> str | None:
    has_vllm = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    if not Path(VLLM_PYTHON).exists() or subprocess.run([VLLM_PYTHON, "-c", has_vllm]).returncode != 0:
        return f"no vLLM environment at {VLLM_PYTHON}: bash scripts/vllm-env.sh creates it (or set GRPOZOO_VLLM_PYTHON)"
    return None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_url(tmp_path_factory):
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    port = free_port()
    argv, env = server_command(VLLM_PYTHON, resolve_model("smollm2-135m"), "127.0.0.1", port, 16, cpu=True)
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            if server.poll() is not None:
                log_text = log_path.read_text()
                if server.returncode == -signal.SIGILL or "Illegal instruction" in log_text:
                    # vLLM's CPU build picks AVX-512 or AVX2 kernels at start; a processor with neither fails here
                    pytest.skip(f"vLLM's CPU build cannot run on this processor ({processor()}): illegal instruction")
                pytest.fail(f"the vLLM server exited ({server.returncode}):\n{log_text[-3000:]}")
            if time.monotonic() - started > START_LIMIT_S:
                pytest.fail(f"the vLLM server did not start in {START_LIMIT_S} s:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=5):  # noqa: S310 (loopback)
                    break
            except OSError:
                time.sleep(2)
        print(f"vLLM server started in {time.monotonic() - started:.0f} s on {processor()}")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def server_trainer(url: str, tmp_path: Path, lora: bool) -> Trainer:
    cfg = resolve_config(overrides=[
        "generation.engine=vllm_server", f"generation.url={url}", f"model.lora.enabled={lora}",
        "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=16",
        "task.train_size=8", "task.eval_size=2", "train.steps=2", f"output_dir={tmp_path / 'run'}",
        "train.learning_rate=1e-5" if not lora else "train.learning_rate=2e-4",
    ])
    return Trainer(cfg)


def server_learner_gap(trainer: Trainer) -> float:
    """The largest |Δ| between the server's log-probs of fresh samples and the learner's."""
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), trainer.step)
    learner = trainer.learner.policy_logprobs(batch)
    return float(((learner - batch.sampling_logprobs) * batch.completion_mask).abs().max())


# The server computes in float32 as the learner does, with other kernels (oneDNN/vLLM's own attention
# vs PyTorch's SDPA) and summation orders: about 1e-5 apart on this model. A weight change of the size
# below moves log-probs by 0.1 or more, so 1e-3 separates "same weights" from "other weights" widely.
SAME_WEIGHTS = 1e-3


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])  # LoRA first: full weights change the base
def test_two_steps_against_a_real_vllm_server(vllm_url, tmp_path, lora):
    trainer = server_trainer(vllm_url, tmp_path, lora)
    for step in (1, 2):
        metrics = trainer.train_step()
        assert metrics["weight_version"] == step - 1
        assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["grad_norm"])
        assert metrics["sampler/logprob_diff_max"] < SAME_WEIGHTS, metrics
    trainer.engine.sync(trainer.model, trainer.step)  # what step 3 would sample with
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), trainer.step + 1)
    assert batch.batch_size == 4 and batch.weight_version.tolist() == [2] * 4
    assert batch.completion_ids.shape == batch.sampling_logprobs.shape and batch.completion_ids.shape[1] <= 16
    assert torch.isfinite(batch.sampling_logprobs).all()

    assert server_learner_gap(trainer) < SAME_WEIGHTS
    with torch.no_grad():  # an update the server has not seen
        for name, p in trainer.model.named_parameters():
            if p.requires_grad and ("lora_B" in name or not lora):
                p.add_(torch.randn_like(p) * (0.02 if lora else 0.01))
    assert server_learner_gap(trainer) > 1e-2
    trainer.engine.sync(trainer.model, trainer.step + 1)
    assert server_learner_gap(trainer) < SAME_WEIGHTS
