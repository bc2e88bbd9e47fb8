"""Guided rollouts for all-fail groups (``algorithm.guidance``): the trainer owns a :class:`Guidance`
and hands it each sampling round's batch; the math of which rows learn is in
:mod:`grpozoo.algos.guidance`. Three papers share it: Zhang et al. 2025, "Scaf-GRPO: Scaffolded Group
Relative Policy Optimization for Enhancing LLM Reasoning" (arXiv:2510.19807), tiered hints; Liu et
al. 2025, "GHPO: Adaptive Guidance for Stable and Efficient LLM Reinforcement Learning"
(arXiv:2507.10628), solution prefixes; Nath et al. 2025, "Adaptive Guidance Accelerates Reinforcement
Learning of Reasoning Models" (arXiv:2506.13923), Guide-GRPO's unhinted learning."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import torch

from grpozoo.algos import guidance
from grpozoo.config import GuidanceConfig
from grpozoo.rollouts import Rollouts, required
from grpozoo.tasks.base import Task, render_prompt

# generate(prompts, examples, samples per prompt) -> the sampled rollouts
Generate = Callable[[list[str], list[dict], int], Rollouts]
# score(batch): sets the batch's answers, rewards, reward parts and task scores
Score = Callable[[Rollouts], None]


class Guidance:
    """Hinted rollouts for the all-fail groups of a sampling round, from ``cfg`` (the run's
    ``algorithm.guidance``): the task gives each row's messages and hints, the tokenizer renders the
    hinted prompts (and cuts solution prefixes), ``generate`` samples and ``score`` scores.
    ``group_size`` is the number of hinted rollouts per stuck prompt when
    ``cfg.samples_per_level`` is unset."""

    def __init__(
        self, cfg: GuidanceConfig, group_size: int, task: Task, tokenizer, generate: Generate, score: Score
    ):
        self.cfg = cfg
        self.samples = cfg.samples_per_level or group_size
        self.task = task
        self.tokenizer = tokenizer
        self.generate = generate
        self.score = score

    def rescue(self, batch: Rollouts, metrics: dict[str, float]) -> tuple[Rollouts, torch.Tensor]:
        """Hinted rollouts for the all-fail groups of ``batch`` (sampled at ``batch.step`` of
        ``batch.total_steps``): each stuck prompt is sampled again with its level-1 hint in the
        prompt, then level 2, … until a hinted rollout succeeds; hinted rollouts then replace failed
        ones (:func:`grpozoo.algos.guidance.substitution`). Returns the batch with the hinted rollouts
        appended (``hint_level`` ≥ 1) and ``use [B']``, the rows that learn. Hint tokens sit in the
        prompt, so they never receive loss; with ``learn_with="unhinted"`` the hinted rows carry the
        unhinted prompt and are marked ``off_policy`` (their old log-probs are the sampler's).
        ``metrics`` (a ``defaultdict(float)``) gains the ``guidance/…`` counts and the generation time."""
        g = self.cfg
        use = torch.ones(batch.batch_size, dtype=torch.bool)
        if g.mode == "off" or not guidance.guidance_active(batch.step, batch.total_steps, g.start_fraction):
            return batch, use
        stuck = guidance.stuck_groups(self.success_scores(batch), batch.group_ids, g.success_threshold)
        first_row = {int(batch.group_ids[i]): i for i in reversed(stuck.nonzero().squeeze(1).tolist())}
        encode, decode = partial(_encode, self.tokenizer), partial(_decode, self.tokenizer)
        levels = {
            group: guidance.hint_levels(batch.examples[i].get(g.column), g.mode, g.prefix_fractions, encode, decode)
            for group, i in first_row.items()
        }
        metrics["guidance/stuck_groups"] += len(first_row)
        hinted: list[Rollouts] = []
        pending = [group for group in first_row if levels[group]]
        level = 0
        while pending:
            this_level = [group for group in pending if level < len(levels[group])]
            if not this_level:
                break
            hints = [levels[grp][level] for grp in this_level]
            out = self.hinted(batch, [first_row[grp] for grp in this_level], hints, metrics)
            out.hint_level = torch.full((out.batch_size,), level + 1, dtype=torch.long)
            solved = set(out.group_ids[self.success_scores(out) >= g.success_threshold].tolist())
            hinted.append(out)
            metrics["guidance/hinted_rollouts"] += out.batch_size
            metrics["guidance/rescued_groups"] += len(solved)
            metrics["guidance/hint_level_sum"] += (level + 1) * len(solved)
            pending = [group for group in this_level if group not in solved]
            level += 1
        if not hinted:
            return batch, use
        merged = Rollouts.concat([batch, *hinted], renumber_groups=False)
        success = self.success_scores(merged) >= g.success_threshold
        stuck_all = torch.cat([stuck, torch.zeros(merged.batch_size - batch.batch_size, dtype=torch.bool)])
        assert merged.hint_level is not None  # set on every hinted round, filled with 0 for the sampled one
        use = guidance.substitution(
            merged.group_ids, merged.hint_level > 0, success, stuck_all, g.max_replaced, g.replace
        )
        return merged, use

    def hinted(
        self, batch: Rollouts, rows: list[int], hints: list[str], metrics: dict[str, float] | None = None
    ) -> Rollouts:
        """Sample and score the rollouts of ``batch`` rows' prompts with ``hints`` appended
        (``self.samples`` each, in the row's group). With ``learn_with="unhinted"`` the result
        carries the row's own, unhinted prompt and ``off_policy`` True."""
        g = self.cfg
        examples = [batch.examples[i] for i in rows]
        prompts = [
            render_prompt(self.tokenizer, guidance.hinted_messages(self.task.messages(e), h, g.template))
            for e, h in zip(examples, hints, strict=True)
        ]
        started = time.perf_counter()
        out = self.generate(prompts, examples, self.samples)
        if metrics is not None:
            metrics["time/generation_s"] += time.perf_counter() - started
        index = torch.tensor(rows).repeat_interleave(self.samples)
        out.group_ids = batch.group_ids[index]
        out.row_ids = batch.row_ids[index] if batch.row_ids is not None else None
        out.step, out.total_steps, out.state = batch.step, batch.total_steps, batch.state
        self.score(out)  # scored as sampled: with the hint in the prompt
        if g.learn_with == "unhinted":
            out = replace(
                out,
                prompt_ids=batch.prompt_ids[index],
                prompt_mask=batch.prompt_mask[index],
                prompts=[batch.prompts[i] for i in index.tolist()],
                off_policy=torch.ones(out.batch_size, dtype=torch.bool),
            )
        return out

    def success_scores(self, batch: Rollouts) -> torch.Tensor:
        """What guidance counts as success: the verifier's score or the total reward."""
        if self.cfg.success_on == "task_score":
            return required(batch.task_scores, "batch.task_scores", "guidance (success_on='task_score')")
        return required(batch.rewards, "batch.rewards", "guidance (success_on='reward')")


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)
