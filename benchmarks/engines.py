"""Generation tokens/s and step time of each generation engine available here, on the same work.

    python benchmarks/engines.py [--steps 3] [--full] [--vllm-python PATH] [--url URL]

Every engine trains the embedded SmolLM2-135M-Instruct (float32, LoRA r=16 or ``--full``) with
GRPO on the same reasoning-gym ``chain_sum`` prompts: 8 prompts x 4 completions of exactly 32 new
tokens (EOS suppressed before 32), temperature 1, one warm-up step, then ``--steps`` measured steps
(medians). Engines:

* ``hf``: grpozoo's own sampler, always;
* ``vllm_server``: a vLLM server this script starts from ``--vllm-python`` (its start-up time is
  printed apart: until the server answers), or one already running at ``--url``;
* ``vllm``: vLLM in this process, where ``import vllm`` works here.

"gen tok/s" is completion tokens / generation seconds; "sync s" the weight push of each step
(nothing for ``hf``, whose sampler is the learner's model); "start s" the engine's one-time cost.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import warnings

from step_time import processor_line

PROMPTS, GROUP, NEW_TOKENS = 8, 4, 32


def config(engine: str, url: str | None, full: bool, steps: int, out: str):
    from grpozoo.config import resolve_config

    sets = [
        "model.name=smollm2-135m", "model.dtype=float32", f"model.lora.enabled={str(not full).lower()}",
        "task.name=chain_sum", f"rollout.prompts_per_step={PROMPTS}", f"rollout.group_size={GROUP}",
        f"rollout.max_new_tokens={NEW_TOKENS}", f"rollout.min_new_tokens={NEW_TOKENS}",
        "train.learning_rate=1e-6", f"train.steps={steps + 1}", "eval.at_start=false", "eval.at_end=false",
        f"generation.engine={engine}", f"output_dir={out}",
    ]
    if url:
        sets.append(f"generation.url={url}")
    return resolve_config(overrides=sets)


def measure(engine: str, url: str | None, full: bool, steps: int) -> dict[str, float]:
    from grpozoo.training import Trainer

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        trainer = Trainer(config(engine, url, full, steps, out))
        start_s = time.perf_counter() - started
        records = [trainer.train_step() for _ in range(steps + 1)][1:]  # the first is the warm-up
        trainer.engine.close()
    return {
        "start s": start_s,
        "gen tok/s": statistics.median(r["tokens_per_s"] for r in records),
        "gen s": statistics.median(r["time/generation_s"] for r in records),
        "sync s": statistics.median(r["time/sync_s"] for r in records),
        "step s": statistics.median(r["time/step_s"] for r in records),
    }


def start_server(python: str) -> tuple[subprocess.Popen, str, float]:
    from grpozoo.generation.vllm_server import server_command
    from grpozoo.training.model import resolve_model

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv, env = server_command(python, resolve_model("smollm2-135m"), "127.0.0.1", port, 16, cpu=True)
    log = open(os.path.join(tempfile.gettempdir(), "grpozoo-bench-vllm.log"), "w")  # noqa: SIM115 (the server's)
    server = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url, started = f"http://127.0.0.1:{port}", time.perf_counter()
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the vLLM server exited; its log: {log.name}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5):  # noqa: S310 (loopback)
                return server, url, time.perf_counter() - started
        except OSError:
            time.sleep(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3, help="measured steps after 1 warm-up (default 3)")
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument("--vllm-python", help="the Python of a vLLM environment: start a server from it")
    p.add_argument("--url", help="a vLLM server already running (grpozoo serve)")
    a = p.parse_args()
    # every completion is cut at exactly 32 tokens on purpose: no advice about truncation
    warnings.filterwarnings("ignore", message=".*without finishing")
    print(processor_line())
    print(f"{PROMPTS} prompts x {GROUP} completions x {NEW_TOKENS} tokens, {'full' if a.full else 'LoRA'}, "
          f"{a.steps} measured steps")
    rows: dict[str, dict[str, float]] = {"hf": measure("hf", None, a.full, a.steps)}
    server = None
    if a.vllm_python or a.url:
        url, server_start = a.url, 0.0
        if a.vllm_python:
            server, url, server_start = start_server(a.vllm_python)
        try:
            rows["vllm_server"] = measure("vllm_server", url, a.full, a.steps)
            rows["vllm_server"]["server start s"] = server_start
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(60)
    if importlib.util.find_spec("vllm") is not None:
        rows["vllm"] = measure("vllm", None, a.full, a.steps)
    columns = ["gen tok/s", "gen s", "sync s", "step s", "start s", "server start s"]
    print("| engine | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for engine, row in rows.items():
        print(f"| {engine} | " + " | ".join(f"{row[c]:.2f}" if c in row else "-" for c in columns) + " |")


if __name__ == "__main__":
    main()
