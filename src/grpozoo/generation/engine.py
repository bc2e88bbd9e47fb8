"""The generation engine interface, and the choice of engine from ``generation.engine``.

An engine samples rollouts (``generate``), takes the learner's new weights after each update
(``sync``: it samples with weight version ``version`` afterwards), and releases what it holds
(``close``). Sampling parameters mean the same in every engine: log-probs are those of the tempered
model distribution before top-k/top-p truncation, an EOS ends a completion and is part of it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from grpozoo.config import GenerationConfig
from grpozoo.errors import ConfigError
from grpozoo.generation.hf import HFGenerator, SamplingParams
from grpozoo.generation.samples import Prompt
from grpozoo.rollouts import Rollouts


class Engine(Protocol):
    @property
    def version(self) -> int:
        """The weight version it samples with: the number of optimiser steps behind its weights."""
        ...

    def generate(
        self, prompts: Sequence[Prompt], examples: list[dict[str, Any]], n: int | list[int], params: SamplingParams
    ) -> Rollouts:
        """``n`` completions (or ``n[i]``) of each prompt: rendered text, or token ids to continue."""
        ...

    def sync(self, model, version: int) -> None: ...

    def close(self) -> None: ...


class EngineWrapper:
    """An engine that changes how another one samples (:class:`~grpozoo.generation.episodes.EpisodeEngine`,
    :class:`~grpozoo.training.distributed.GatheringEngine`): the weight version, syncs and release
    are the wrapped ``engine``'s."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @property
    def version(self) -> int:
        return self.engine.version

    def sync(self, model, version: int) -> None:
        self.engine.sync(model, version)

    def close(self) -> None:
        self.engine.close()


def make_engine(cfg: GenerationConfig, sampling: SamplingParams, model, tokenizer, weights_dir: Path) -> Engine:
    """The engine ``cfg`` names, sampling as ``model`` does with the run's ``sampling`` parameters
    (refused where the engine cannot honour them); a server engine exchanges weights through
    ``weights_dir`` (unless ``generation.weights_dir`` says where)."""
    if cfg.engine == "hf":
        return HFGenerator(model, tokenizer)
    problems = engine_sampling_problems(sampling)
    if problems:
        raise ConfigError(
            f"generation.engine={cfg.engine} cannot sample with {' and '.join(problems)}: vLLM reports the "
            f"log-probs of the distribution after top-k/top-p truncation, grpozoo's are before it (what the "
            f"learner recomputes); or keep them with generation.engine=hf"
        )
    if cfg.engine == "vllm_server":
        from grpozoo.generation.vllm_server import VLLMServerEngine

        return VLLMServerEngine(cfg, model, tokenizer, Path(cfg.weights_dir) if cfg.weights_dir else weights_dir)
    from grpozoo.generation.vllm_local import VLLMEngine

    return VLLMEngine(cfg, model, tokenizer)


def engine_sampling_problems(params: SamplingParams) -> list[str]:
    """What a vLLM engine cannot honour as grpozoo means it: vLLM reports the log-probs of the
    distribution after top-k/top-p truncation (its ``processed_logprobs``), grpozoo's are before it
    (what the learner recomputes), so the rollout-correction weights would be wrong."""
    problems = []
    if params.top_k:
        problems.append(f"rollout.top_k={params.top_k} (use 0)")
    if params.top_p < 1.0:
        problems.append(f"rollout.top_p={params.top_p} (use 1.0)")
    return problems

