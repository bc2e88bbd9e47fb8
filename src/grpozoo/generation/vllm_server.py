"""The ``vllm_server`` engine: rollouts from a vLLM server started separately, over its
OpenAI-compatible HTTP API (README, "Scaling out", says how to start one).

The client sends token ids (each prompt tokenised here, as the learner sees it) and reads back each
sampled token's id and log-prob; one request per prompt asks for its whole group (``n``), and up
to ``generation.concurrency`` requests are in flight while the server batches them. A refused
connection, a timeout, an HTTP error or a malformed answer is retried ``generation.retries`` times,
then stops the run with a message naming the URL.

Weights reach the server through files it reads (``generation.weights_dir``, on a disk both see):

* LoRA: the adapter is saved and loaded under a new name (``/v1/load_lora_adapter``; the server
  runs with ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``), the previous one
  unloaded;
* full fine-tuning: the weights are saved as a checkpoint and the server's workers reload the
  running model's weights from it (``/collective_rpc`` calling the worker extension of
  :mod:`grpozoo_vllm_worker`, a route the server opens with ``VLLM_SERVER_DEV_MODE=1``), then its
  prefix cache is reset so that no key or value computed with the old weights is reused.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from grpozoo.config import GenerationConfig
from grpozoo.errors import EngineError
from grpozoo.generation.hf import SamplingParams, eos_token_ids, per_prompt_counts
from grpozoo.generation.samples import Prompt, prompt_token_ids, rollouts_from_samples, save_version
from grpozoo.modeling import is_lora_model
from grpozoo.rollouts import Rollouts

RETRY_PAUSE_S = 1.0  # before the first retry; doubled after each
# the directory of the worker extension the server loads (it imports nothing of grpozoo)
WORKER_EXTENSION = Path(__file__).parent / "vllm_extension"


class ServerClient:
    """JSON over HTTP to ``url``, with ``retries`` further attempts after a failure."""

    def __init__(self, url: str, timeout_s: float, retries: int):
        self.url, self.timeout_s, self.retries = url.rstrip("/"), timeout_s, retries

    def post(self, path: str, body: dict[str, Any], answer_is_json: bool = True) -> Any:
        """The decoded JSON answer, or the answer's text where ``answer_is_json`` is False (vLLM's
        adapter and cache routes answer in plain text)."""
        return self.request("POST", path, body, answer_is_json)

    def get(self, path: str) -> Any:
        return self.request("GET", path, None, True)

    def request(self, method: str, path: str, body: dict[str, Any] | None, answer_is_json: bool) -> Any:
        address = self.url + path
        data = None if body is None else json.dumps(body).encode()
        pause, problem = RETRY_PAUSE_S, ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(pause)
                pause *= 2
            request = urllib.request.Request(address, data=data, method=method,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 (a configured URL)
                    text = response.read().decode()
            except urllib.error.HTTPError as error:
                detail = error.read().decode(errors="replace")[:500]
                if 400 <= error.code < 500:  # the request itself is wrong: retrying cannot help
                    raise EngineError(f"vLLM server {address} refused the request (HTTP {error.code}): {detail}") from None
                problem = f"HTTP {error.code}: {detail}"
                continue
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
                reason = getattr(error, "reason", error)
                problem = f"timed out after {self.timeout_s:g} s" if isinstance(reason, TimeoutError) else str(reason)
                continue
            if not answer_is_json:
                return text
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                problem = f"the answer is not JSON: {text[:200]!r}"
        raise EngineError(
            f"vLLM server {address}: {problem} (after {self.retries + 1} attempts). Is a server running at "
            f"generation.url={self.url}? Start one with `grpozoo serve` (README, 'Scaling out'); for a slow "
            f"one, raise generation.timeout_s or generation.retries"
        )


def sampled_tokens(choice: dict[str, Any], address: str) -> tuple[list[int], list[float]]:
    """The token ids and log-probs of one completion choice of ``/v1/completions``."""
    try:
        ids = [int(t) for t in choice["token_ids"]]
        logprobs = [float(x) for x in choice["logprobs"]["token_logprobs"]]
    except (KeyError, TypeError, ValueError) as error:
        raise EngineError(
            f"vLLM server {address}: a completion without token ids and log-probs ({error!r}); the server must "
            f"be vLLM's OpenAI-compatible server, whose completions take return_token_ids and logprobs"
        ) from None
    if len(ids) != len(logprobs):
        raise EngineError(f"vLLM server {address}: {len(ids)} token ids but {len(logprobs)} log-probs")
    return ids, logprobs


class VLLMServerEngine:
    """Samples from the vLLM server at ``cfg.url``; ``model`` is the learner's policy (its weights are
    pushed after each update), ``weights_dir`` where they are written for the server to read."""

    def __init__(self, cfg: GenerationConfig, model, tokenizer, weights_dir: Path):
        assert cfg.url is not None  # the config requires it for this engine
        self.cfg, self.tokenizer, self.weights_dir = cfg, tokenizer, weights_dir
        self.client = ServerClient(cfg.url, cfg.timeout_s, cfg.retries)
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.lora = is_lora_model(model)
        self.version = -1  # no weights pushed yet: the first sync pushes the policy's
        served = self.client.get("/v1/models")
        try:
            self.base_name = served["data"][0]["id"]
        except (KeyError, IndexError, TypeError):
            raise EngineError(f"vLLM server {cfg.url}/v1/models lists no model: {str(served)[:200]}") from None
        self.model_name = self.base_name
        self.pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="vllm-request")

    def generate(
        self, prompts: Sequence[Prompt], examples: list[dict[str, Any]], n: int | list[int], params: SamplingParams
    ) -> Rollouts:
        counts = per_prompt_counts(n, len(prompts))
        prompt_ids = prompt_token_ids(self.tokenizer, prompts)
        bodies = [self.request_body(ids, count, params) for ids, count in zip(prompt_ids, counts, strict=True)]
        answers = list(self.pool.map(lambda body: self.client.post("/v1/completions", body), bodies))
        samples = []
        address = self.client.url + "/v1/completions"
        for answer, count in zip(answers, counts, strict=True):
            choices = answer.get("choices") if isinstance(answer, dict) else None
            if not isinstance(choices, list) or len(choices) != count:
                raise EngineError(f"vLLM server {address}: expected {count} choices, got {str(answer)[:200]}")
            choices = sorted(choices, key=lambda c: c.get("index", 0))
            samples += [sampled_tokens(choice, address) for choice in choices]
        return rollouts_from_samples(
            self.tokenizer, prompts, prompt_ids, examples, counts, samples, self.eos_ids, self.version
        )

    def request_body(self, prompt_ids: list[int], count: int, params: SamplingParams) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "prompt": prompt_ids,
            "n": count,
            "max_tokens": params.max_new_tokens,
            "min_tokens": params.min_new_tokens,
            "temperature": params.temperature,
            "top_p": 1.0,
            "top_k": -1,
            "logprobs": 0,
            "return_token_ids": True,
            "stop_token_ids": self.eos_ids,
            "skip_special_tokens": True,
        }

    # ----------------------------------------------------------------------------- weights
    def sync(self, model, version: int) -> None:
        if version == self.version:
            return
        path = save_version(model, self.weights_dir, version)
        if self.lora:
            name = f"grpozoo-v{version}"
            self.client.post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path.resolve())}, False)
            previous, self.model_name = self.model_name, name
            if previous != self.base_name:
                self.client.post("/v1/unload_lora_adapter", {"lora_name": previous}, False)
        else:
            rpc = {"method": "grpozoo_reload_weights", "kwargs": {"weights_path": str(path.resolve())}}
            self.client.post("/collective_rpc", rpc, False)
            self.client.post("/reset_prefix_cache", {}, False)
        self.version = version

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)



def server_command(
    python: str, model_path: str, host: str, port: int, lora_rank: int, cpu: bool
) -> tuple[list[str], dict[str, str]]:
    """The command line and the environment variables that start a vLLM server grpozoo can train
    against: token ids in, log-probs of the tempered distribution out (``processed_logprobs``),
    LoRA adapters loaded at run time up to rank ``lora_rank``, and the weight-reload route. On a
    CPU (``cpu``), float32 without graph capture, with a 2 GiB key/value cache."""
    argv = [
        python, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path, "--host", host,
        "--port", str(port), "--logprobs-mode", "processed_logprobs", "--enable-lora",
        "--max-lora-rank", str(lora_rank), "--max-model-len", "2048",
    ]
    argv += ["--worker-extension-cls", "grpozoo_vllm_worker.WeightSync"]
    env = {
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_SERVER_DEV_MODE": "1", "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(WORKER_EXTENSION), os.environ.get("PYTHONPATH")])),
    }
    if cpu:
        argv += ["--dtype", "float32", "--enforce-eager"]
        env["VLLM_CPU_KVCACHE_SPACE"] = "2"
    return argv, env
