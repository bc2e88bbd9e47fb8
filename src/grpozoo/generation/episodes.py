"""Multi-turn rollouts: model turns and environment turns alternating, over any engine.

:class:`EpisodeEngine` is an engine (the same ``generate``) that wraps another. It samples every
prompt's first turn with that engine; then, for each row whose turn ended with an end-of-turn
token, the row's environment (:mod:`grpozoo.environments`) answers; its message is rendered by the
tokenizer's chat template exactly as a conversation holding it would be, appended to the row's
tokens, and the engine continues from the row's exact token ids (never decoded and tokenised
again), up to ``max_turns`` model turns. A row's completion tokens are the whole trajectory after
the prompt; ``tool_mask`` marks the environment's tokens, which are in the sequence (the model reads
them) but carry no sampling log-prob and never get loss. ``rollout.max_new_tokens`` bounds the whole
trajectory: a turn is cut where the budget ends.

A row's completion *text*, which rewards and verifiers read, is the model's own turns only (joined
by newlines): a tool's output is not the model's answer, and a verifier reading the whole exchange
would credit an answer the model never gave (the number a tool printed). Each row reports
``trajectory`` (the whole exchange as text), ``turns``, ``tool_calls`` and ``episode_end`` (why its
episode ended: see :mod:`grpozoo.environments`) as columns of its task row, which reward functions
receive, and ``environment_parts``, which the reward stage logs beside its parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from grpozoo.environments import ANSWERED, BUDGET, MAX_TURNS, TOOL_CRASH, TOOL_TIMEOUT, Environment
from grpozoo.generation.engine import EngineWrapper
from grpozoo.generation.hf import SamplingParams, per_prompt_counts
from grpozoo.generation.samples import Prompt
from grpozoo.rollouts import Rollouts

ENDINGS = (ANSWERED, MAX_TURNS, BUDGET, TOOL_TIMEOUT, TOOL_CRASH)


def environment_text(tokenizer, message: dict[str, str]) -> str:
    """The text a chat template puts after a model turn's end-of-turn token (which the model
    sampled) through the start of the next model turn, around ``message``: e.g. for ChatML
    ``"\\n<|im_start|>tool\\n{content}<|im_end|>\\n<|im_start|>assistant\\n"``. A template that
    refuses the message's role gets it as a user message."""
    probe = [{"role": "user", "content": "?"}, {"role": "assistant", "content": "!"}]
    before = tokenizer.apply_chat_template(probe, tokenize=False)
    try:
        after = tokenizer.apply_chat_template([*probe, message], tokenize=False, add_generation_prompt=True)
    except Exception:  # a template that knows only user and assistant turns (jinja raises what it likes)
        after = tokenizer.apply_chat_template([*probe, {"role": "user", "content": message["content"]}],
                                              tokenize=False, add_generation_prompt=True)
    if not after.startswith(before):
        raise ValueError("multi-turn rollouts need a chat template that renders a conversation as the "
                         "rendering of its first turns followed by the next turn; this one does not")
    end = tokenizer.eos_token or ""
    cut = before.rfind(end) if end else -1
    between = before[cut + len(end):] if cut >= 0 else ""  # what the template writes after the turn's end
    return between + after[len(before):]


class EpisodeEngine(EngineWrapper):
    """Episodes of up to ``max_turns`` model turns over ``engine``, each row with its own environment
    from ``make_environment()``."""

    def __init__(self, engine, tokenizer, make_environment: Callable[[], Environment], max_turns: int):
        if max_turns < 1:
            raise ValueError(f"rollout.max_turns={max_turns}: at least 1")
        super().__init__(engine)
        self.tokenizer, self.make_environment, self.max_turns = tokenizer, make_environment, max_turns

    def generate(
        self, prompts: Sequence[Prompt], examples: list[dict[str, Any]], n: int | list[int], params: SamplingParams
    ) -> Rollouts:
        counts = per_prompt_counts(n, len(prompts))
        first = self.engine.generate(prompts, examples, counts, params)
        rows = first.batch_size
        lengths = first.completion_mask.sum(dim=1).tolist()
        prompt_ids = [ids[mask.bool()].tolist() for ids, mask in zip(first.prompt_ids, first.prompt_mask, strict=True)]
        tokens = [first.completion_ids[i, : lengths[i]].tolist() for i in range(rows)]
        logprobs = [first.sampling_logprobs[i, : lengths[i]].tolist() for i in range(rows)]
        entropies = None if first.entropies is None else [first.entropies[i, : lengths[i]].tolist() for i in range(rows)]
        from_environment = [[0] * lengths[i] for i in range(rows)]
        last_turn = list(first.completions)
        said = [[text] for text in first.completions]  # each row's model turns, as text
        cut_short = first.truncated.tolist()  # the budget ended the row's last turn
        environments = [self.make_environment() for _ in range(rows)]
        for environment, example in zip(environments, first.examples, strict=True):
            environment.reset(example)
        turns = [1] * rows
        ended: list[str | None] = [None] * rows
        parts: list[dict[str, float]] = [{} for _ in range(rows)]
        active = list(range(rows))
        while active:
            going_on = []
            for i in active:
                if cut_short[i]:
                    ended[i] = BUDGET
                    continue
                reply = environments[i].step(last_turn[i])
                for name, value in reply.parts.items():
                    parts[i][name] = parts[i].get(name, 0.0) + value
                if reply.message is None:
                    ended[i] = reply.ended or ANSWERED
                elif turns[i] >= self.max_turns:
                    ended[i] = MAX_TURNS
                else:
                    added = self.tokenizer(environment_text(self.tokenizer, reply.message),
                                           add_special_tokens=False)["input_ids"]
                    if len(tokens[i]) + len(added) >= params.max_new_tokens:  # no room left for a turn
                        ended[i] = BUDGET
                        continue
                    tokens[i] += added
                    logprobs[i] += [0.0] * len(added)
                    from_environment[i] += [1] * len(added)
                    if entropies is not None:
                        entropies[i] += [0.0] * len(added)
                    going_on.append(i)
            if not going_on:
                break
            room = {i: params.max_new_tokens - len(tokens[i]) for i in going_on}
            turn = self.engine.generate([prompt_ids[i] + tokens[i] for i in going_on],
                                        [first.examples[i] for i in going_on], 1,
                                        replace(params, max_new_tokens=max(room.values()),
                                                min_new_tokens=min(params.min_new_tokens, min(room.values()))))
            for k, i in enumerate(going_on):
                length = min(int(turn.completion_mask[k].sum()), room[i])  # cut at the row's own budget
                new = turn.completion_ids[k, :length].tolist()
                tokens[i] += new
                logprobs[i] += turn.sampling_logprobs[k, :length].tolist()
                from_environment[i] += [0] * length
                if entropies is not None:
                    entropies[i] += (turn.entropies[k, :length].tolist() if turn.entropies is not None
                                     else [0.0] * length)
                last_turn[i] = self.tokenizer.decode(new, skip_special_tokens=True)
                said[i].append(last_turn[i])
                cut_short[i] = bool(turn.truncated[k]) or length < int(turn.completion_mask[k].sum())
                turns[i] += 1
            active = going_on
        return self.assemble(first, tokens, logprobs, entropies, from_environment, cut_short, turns, ended, parts,
                             said)

    def assemble(self, first: Rollouts, tokens, logprobs, entropies, from_environment, cut_short, turns, ended,
                 parts, said) -> Rollouts:
        """The episodes as one batch: ``first``'s prompts and groups, the trajectories as completions."""
        rows = first.batch_size
        width = max(1, max(len(t) for t in tokens))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

        def padded(values, fill, dtype):
            return torch.tensor([v + [fill] * (width - len(v)) for v in values], dtype=dtype)

        completion_ids = padded(tokens, pad, torch.long)
        mask = padded([[1] * len(t) for t in tokens], 0, torch.long)
        calls = [parts[i].get("tool_calls", 0.0) for i in range(rows)]
        examples = [{**example, "turns": turns[i], "tool_calls": int(calls[i]), "episode_end": ended[i],
                     "trajectory": self.tokenizer.decode(tokens[i], skip_special_tokens=True)}
                    for i, example in enumerate(first.examples)]
        names = sorted({name for p in parts for name in p} | {"tool_calls"})
        environment_parts = {name: torch.tensor([p.get(name, 0.0) for p in parts]) for name in names}
        environment_parts["turns"] = torch.tensor(turns, dtype=torch.float)
        for ending in ENDINGS:
            environment_parts[f"ended/{ending}"] = torch.tensor([float(e == ending) for e in ended])
        return replace(
            first,
            completion_ids=completion_ids,
            completion_mask=mask,
            sampling_logprobs=padded(logprobs, 0.0, torch.float),
            entropies=None if entropies is None else padded(entropies, 0.0, torch.float),
            tool_mask=padded(from_environment, 0, torch.long),
            truncated=torch.tensor(cut_short, dtype=torch.bool),
            completions=["\n".join(turns_said) for turns_said in said],  # the model's own words
            completion_token_texts=[[self.tokenizer.decode([t]) for t in row] for row in tokens],
            examples=examples,
            environment_parts=environment_parts,
        )


def with_tools(engine, tokenizer, rollout):
    """``engine`` as a run's ``rollout`` section asks: wrapped in :class:`EpisodeEngine` with one
    stateless tool environment (and sandbox) for every row where it names tools, else as it is."""
    if not rollout.tools:
        return engine
    from grpozoo.environments.tools import ToolEnvironment

    tools = ToolEnvironment(rollout.tools, rollout.tool_timeout_s)
    return EpisodeEngine(engine, tokenizer, lambda: tools, rollout.max_turns)
