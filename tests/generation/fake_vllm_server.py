"""A stand-in for a vLLM server, on 127.0.0.1 in a thread: the routes grpozoo's ``vllm_server``
engine calls, answered as vLLM answers them, by a tiny model sampling with grpozoo's own sampler.
Weights pushed to it are really loaded (a LoRA adapter directory with peft, full weights from
safetensors), so a test can check that after a sync the server samples with the learner's weights.

``behaviour`` scripts a misbehaving server: ``"ok"``, ``"malformed"`` (a completion answer that is
not JSON), ``"slow"`` (answers completions after ``delay_s``), ``"error"`` (HTTP 500 on
completions)."""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from grpozoo.generation.sampling import sample_tokens


class FakeVLLMServer:
    def __init__(self, model_dir: Path, behaviour: str = "ok", delay_s: float = 0.0):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir, self.behaviour, self.delay_s = str(model_dir), behaviour, delay_s
        self.base = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.models = {self.model_dir: self.base}  # served name -> model
        self.requests: list[tuple[str, dict]] = []  # (path, body) of every POST
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeVLLMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ----------------------------------------------------------------------------- routes
    def completions(self, body: dict) -> dict:
        model = self.models[body["model"]]
        prompt = torch.tensor([body["prompt"]])
        eos = list(body.get("stop_token_ids") or [self.tokenizer.eos_token_id])
        with self.lock:
            sampled = sample_tokens(
                model, prompt, torch.ones_like(prompt), [body["n"]], body["max_tokens"], eos,
                self.tokenizer.pad_token_id, temperature=body["temperature"],
                min_new_tokens=body.get("min_tokens", 0),
            )
        choices = []
        for j in range(body["n"]):
            ids = sampled.ids[j].tolist()
            end = next((k + 1 for k, t in enumerate(ids) if t in eos), len(ids))
            choices.append({
                "index": j,
                "token_ids": ids[:end],
                "logprobs": {"token_logprobs": sampled.logprobs[j, :end].tolist()},
                "finish_reason": "stop" if ids[end - 1] in eos else "length",
            })
        return {"choices": choices[::-1]}  # out of order, as a server may answer: the client sorts

    def load_lora_adapter(self, body: dict) -> None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(copy.deepcopy(self.base), body["lora_path"]).eval()
        self.models[body["lora_name"]] = model

    def load_full_weights(self, path: str) -> None:
        from safetensors.torch import load_file

        state = load_file(str(Path(path) / "model.safetensors"))
        self.base.load_state_dict(state, strict=False)

    def handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def reply(self, code: int, payload, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self.reply(200, {"data": [{"id": name} for name in fake.models]})
                else:
                    self.reply(404, {"error": self.path})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                fake.requests.append((self.path, body))
                if self.path == "/v1/completions":
                    if fake.behaviour == "malformed":
                        return self.reply(200, None, raw=b"<html>not json")
                    if fake.behaviour == "error":
                        return self.reply(500, {"error": "engine dead"})
                    if fake.behaviour == "slow":
                        time.sleep(fake.delay_s)
                    return self.reply(200, fake.completions(body))
                if self.path == "/v1/load_lora_adapter":
                    fake.load_lora_adapter(body)
                elif self.path == "/v1/unload_lora_adapter":
                    fake.models.pop(body["lora_name"])
                elif self.path == "/collective_rpc" and body.get("method") == "grpozoo_reload_weights":
                    if fake.behaviour != "stale":
                        fake.load_full_weights(body["kwargs"]["weights_path"])
                elif self.path != "/reset_prefix_cache":
                    return self.reply(404, {"error": self.path})
                self.reply(200, None, raw=b"Success")  # vLLM answers these routes in plain text

        return Handler
