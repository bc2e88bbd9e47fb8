"""Forced rethinking (Wang et al. 2025, "VL-Rethinker: Incentivizing Self-Reflection of
Vision-Language Models with Reinforcement Learning", arXiv:2504.08837): a share of the finished
first-pass completions gets a rethinking trigger ("Wait, let me double-check…") in place of its
end-of-turn token, and the model goes on from there.

:class:`RethinkingEngine` wraps any engine (the same ``generate``): it samples the first pass with
it, picks the rows to rethink (:func:`rethink_rows`), appends the trigger's tokens to each picked
row's exact token ids (never decoded and tokenised again) and continues them with the same engine,
within the row's own ``max_new_tokens`` budget. The trigger sits once in the completion, where the
first pass ended; it is text the model did not sample, so by default it is marked in ``tool_mask``
(in the sequence, read by the model, never learned) and carries no sampling log-prob. A rethought
row's text is its first pass, the trigger and the continuation, so the verifier reads its final,
rethought answer. The rows report ``rethought`` (1.0 where forced) in ``environment_parts``, logged
beside the reward parts. Every sampling through the run's engine is rethought alike, the extra
samples of rollout-side providers (a greedy baseline) and hinted rollouts included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from grpozoo.config import RethinkConfig
from grpozoo.generation.engine import EngineWrapper
from grpozoo.generation.hf import SamplingParams, per_prompt_counts
from grpozoo.generation.samples import Prompt
from grpozoo.rollouts import Rollouts

# GUESS: one trigger (the paper draws from a few such phrases); the run's rollout.rethink.trigger
DEFAULT_TRIGGER: str = RethinkConfig.model_fields["trigger"].default


def rethink_rows(
    finished: torch.Tensor, room: torch.Tensor, fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """``[B]`` bool: the first-pass rows to rethink. A row qualifies when it ``finished`` (ended with
    its end-of-turn token, not cut by the budget) and has ``room > 0`` tokens left after the trigger;
    each qualifying row is picked with probability ``fraction`` (one uniform draw per row, from
    ``generator``, so the pick is reproducible). ``finished``, ``room`` ``[B]``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"rethinking fraction must lie in [0, 1], got {fraction}")
    draws = torch.rand(finished.shape[0], generator=generator)
    return finished.bool() & (room > 0) & (draws < fraction)


class RethinkingEngine(EngineWrapper):
    """Forced rethinking over ``engine``: a ``fraction`` of the finished rows continue after
    ``trigger``. ``learn_trigger=False`` marks the trigger's tokens in ``tool_mask`` (never learned);
    ``seed`` seeds the picks, afresh for each weight version, so a run repeats its picks.

    GUESS: the trigger text, ``fraction`` (the run's ``rollout.rethink.fraction``), picking rows at
    random among the finished ones, no filtering of the rethought rows by correctness (the paper
    leaves it open), and ``learn_trigger = False``."""

    def __init__(self, engine, tokenizer, fraction: float, trigger: str = DEFAULT_TRIGGER,
                 learn_trigger: bool = False, seed: int = 0):
        super().__init__(engine)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"rollout.rethink.fraction={fraction}: give a share in [0, 1]")
        self.tokenizer, self.fraction, self.learn_trigger, self.seed = tokenizer, fraction, learn_trigger, seed
        self.trigger_ids: list[int] = tokenizer(trigger, add_special_tokens=False)["input_ids"]
        if not self.trigger_ids:
            raise ValueError("rollout.rethink.trigger is empty: give the text that starts the rethinking")
        self._picks_version: int | None = None
        self.generator = torch.Generator()

    def picks(self) -> torch.Generator:
        """The generator of this weight version's picks (reseeded when the version changes)."""
        if self._picks_version != self.version:
            self._picks_version = self.version
            self.generator.manual_seed(self.seed * 1_000_003 + self.version)
        return self.generator

    def generate(
        self, prompts: Sequence[Prompt], examples: list[dict[str, Any]], n: int | list[int], params: SamplingParams
    ) -> Rollouts:
        counts = per_prompt_counts(n, len(prompts))
        first = self.engine.generate(prompts, examples, counts, params)
        rows = first.batch_size
        lengths = first.completion_lengths
        # the end-of-turn token makes way for the trigger
        room = params.max_new_tokens - (lengths - 1) - len(self.trigger_ids)
        chosen = rethink_rows(~first.truncated & (lengths > 0), room, self.fraction, self.picks())
        picked = chosen.nonzero().squeeze(1).tolist()
        rethought = torch.zeros(rows)
        if not picked:
            return replace(first, environment_parts={**first.environment_parts, "rethought": rethought})
        tokens = [first.completion_ids[i, : int(lengths[i])].tolist() for i in range(rows)]
        logprobs = [first.sampling_logprobs[i, : int(lengths[i])].tolist() for i in range(rows)]
        entropies = None if first.entropies is None else [
            first.entropies[i, : int(lengths[i])].tolist() for i in range(rows)]
        written = [([0] * int(lengths[i]) if first.tool_mask is None else
                    first.tool_mask[i, : int(lengths[i])].tolist()) for i in range(rows)]
        mark = 0 if self.learn_trigger else 1
        for i in picked:
            del tokens[i][-1], logprobs[i][-1], written[i][-1]
            tokens[i] += self.trigger_ids
            logprobs[i] += [0.0] * len(self.trigger_ids)
            written[i] += [mark] * len(self.trigger_ids)
            if entropies is not None:
                del entropies[i][-1]
                entropies[i] += [0.0] * len(self.trigger_ids)
        prompt_ids = [first.prompt_ids[i][first.prompt_mask[i].bool()].tolist() for i in picked]
        budget = {i: int(room[i]) for i in picked}
        more = self.engine.generate(
            [p + tokens[i] for p, i in zip(prompt_ids, picked, strict=True)], [first.examples[i] for i in picked], 1,
            replace(params, max_new_tokens=max(budget.values()),
                    min_new_tokens=min(params.min_new_tokens, min(budget.values()))),
        )
        truncated = first.truncated.clone()
        texts = list(first.completions)  # the text rewards read (a multi-turn row's: the model's turns)
        token_texts = [list(t) for t in first.completion_token_texts] if first.completion_token_texts else None
        trigger = self.tokenizer.decode(self.trigger_ids)
        for k, i in enumerate(picked):
            sampled = int(more.completion_mask[k].sum())
            length = min(sampled, budget[i])  # cut at the row's own budget
            new = more.completion_ids[k, :length].tolist()
            texts[i] += trigger + self.tokenizer.decode(new, skip_special_tokens=True)
            if token_texts is not None:
                token_texts[i] = token_texts[i][: int(lengths[i]) - 1] + [
                    self.tokenizer.decode([t]) for t in self.trigger_ids + new]
            tokens[i] += new
            logprobs[i] += more.sampling_logprobs[k, :length].tolist()
            written[i] += [0] * length
            if entropies is not None:
                entropies[i] += (more.entropies[k, :length].tolist() if more.entropies is not None
                                 else [0.0] * length)
            truncated[i] = bool(more.truncated[k]) or length < sampled
            rethought[i] = 1.0
        return self.assemble(first, tokens, logprobs, entropies, written, truncated, rethought, texts, token_texts)

    def assemble(self, first: Rollouts, tokens, logprobs, entropies, written, truncated, rethought, texts,
                 token_texts) -> Rollouts:
        """The first pass with the picked rows rethought: token fields re-padded to the longest row."""
        width = max(1, max(len(t) for t in tokens))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

        def padded(values, fill, dtype):
            return torch.tensor([v + [fill] * (width - len(v)) for v in values], dtype=dtype)

        any_written = first.tool_mask is not None or not self.learn_trigger
        return replace(
            first,
            completion_ids=padded(tokens, pad, torch.long),
            completion_mask=padded([[1] * len(t) for t in tokens], 0, torch.long),
            sampling_logprobs=padded(logprobs, 0.0, torch.float),
            entropies=None if entropies is None else padded(entropies, 0.0, torch.float),
            tool_mask=padded(written, 0, torch.long) if any_written else None,
            truncated=truncated,
            completions=texts,
            completion_token_texts=token_texts,
            environment_parts={**first.environment_parts, "rethought": rethought},
        )


def with_rethinking(engine, tokenizer, rollout, seed: int = 0):
    """``engine`` as a run's ``rollout`` section asks: wrapped in :class:`RethinkingEngine` where
    ``rollout.rethink.fraction`` is above 0, else as it is."""
    rethink = rollout.rethink
    if rethink.fraction <= 0:
        return engine
    return RethinkingEngine(engine, tokenizer, rethink.fraction, rethink.trigger, rethink.learn_trigger, seed)
