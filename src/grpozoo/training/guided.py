"""Guided rollouts for all-fail groups (``algorithm.guidance``: Scaf-GRPO tiered hints, GHPO
solution prefixes, Guide-GRPO): the trainer's sampling round calls :func:`guided_rollouts`; the
math of which rows learn is in :mod:`grpozoo.algos.guidance`."""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import torch

from grpozoo.algos import guidance
from grpozoo.rollouts import Rollouts
from grpozoo.tasks.base import render_prompt

if TYPE_CHECKING:
    from grpozoo.training.trainer import Trainer


def guided_rollouts(trainer: Trainer, batch: Rollouts, metrics: dict[str, float]) -> tuple[Rollouts, torch.Tensor]:
    """Hinted rollouts for the all-fail groups of ``batch`` (``algorithm.guidance``; Scaf-GRPO,
    GHPO, Guide-GRPO): each stuck prompt is sampled again with its level-1 hint in the prompt,
    then level 2, … until a hinted rollout succeeds; hinted rollouts then replace failed ones
    (:func:`grpozoo.algos.guidance.substitution`). Returns the batch with the hinted rollouts
    appended (``hint_level`` ≥ 1) and ``use [B']``, the rows that learn. Hint tokens sit in the
    prompt, so they never receive loss; with ``learn_with="unhinted"`` the hinted rows carry the
    unhinted prompt and are marked ``off_policy`` (their old log-probs are the sampler's)."""
    g = trainer.cfg.algorithm.guidance
    use = torch.ones(batch.batch_size, dtype=torch.bool)
    if g.mode == "off" or not guidance.guidance_active(trainer.step, trainer.cfg.train.steps, g.start_fraction):
        return batch, use
    stuck = guidance.stuck_groups(success_scores(trainer, batch), batch.group_ids, g.success_threshold)
    first_row = {int(batch.group_ids[i]): i for i in reversed(stuck.nonzero().squeeze(1).tolist())}
    levels = {
        group: guidance.hint_levels(batch.examples[i].get(g.column), g.mode, g.prefix_fractions,
                                    partial(_encode, trainer.tokenizer), partial(_decode, trainer.tokenizer))
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
        out = hinted_rollouts(trainer, batch, [first_row[grp] for grp in this_level], hints, metrics)
        out.hint_level = torch.full((out.batch_size,), level + 1, dtype=torch.long)
        solved = set(out.group_ids[success_scores(trainer, out) >= g.success_threshold].tolist())
        hinted.append(out)
        metrics["guidance/hinted_rollouts"] += out.batch_size
        metrics["guidance/rescued_groups"] += len(solved)
        metrics["guidance/hint_level_sum"] += (level + 1) * len(solved)
        pending = [group for group in this_level if group not in solved]
        level += 1
    if not hinted:
        return batch, use
    merged = Rollouts.concat([batch, *hinted], renumber_groups=False)
    success = success_scores(trainer, merged) >= g.success_threshold
    stuck_all = torch.cat([stuck, torch.zeros(merged.batch_size - batch.batch_size, dtype=torch.bool)])
    use = guidance.substitution(
        merged.group_ids, merged.hint_level > 0, success, stuck_all, g.max_replaced, g.replace
    )
    return merged, use

def hinted_rollouts(
    trainer: Trainer, batch: Rollouts, rows: list[int], hints: list[str], metrics: dict[str, float] | None = None
) -> Rollouts:
    """Sample and score the rollouts of ``batch`` rows' prompts with ``hints`` appended
    (``guidance.samples_per_level`` each, in the row's group). With ``learn_with="unhinted"``
    the result carries the row's own, unhinted prompt and ``off_policy`` True."""
    g = trainer.cfg.algorithm.guidance
    examples = [batch.examples[i] for i in rows]
    prompts = [
        render_prompt(trainer.tokenizer, guidance.hinted_messages(trainer.task.messages(e), h, g.template))
        for e, h in zip(examples, hints, strict=True)
    ]
    n = g.samples_per_level or trainer.cfg.rollout.group_size
    started = time.perf_counter()
    out = trainer.generator.generate(prompts, examples, n, trainer.sampling)
    if metrics is not None:
        metrics["time/generation_s"] += time.perf_counter() - started
    index = torch.tensor(rows).repeat_interleave(n)
    out.group_ids = batch.group_ids[index]
    out.row_ids = batch.row_ids[index] if batch.row_ids is not None else None
    out.step, out.total_steps, out.state = batch.step, batch.total_steps, batch.state
    trainer.score(out)  # scored as sampled: with the hint in the prompt
    if g.learn_with == "unhinted":
        out = replace(
            out,
            prompt_ids=batch.prompt_ids[index],
            prompt_mask=batch.prompt_mask[index],
            prompts=[batch.prompts[i] for i in index.tolist()],
            off_policy=torch.ones(out.batch_size, dtype=torch.bool),
        )
    return out

def success_scores(trainer: Trainer, batch: Rollouts) -> torch.Tensor:
    """What guidance counts as success: the verifier's score or the total reward."""
    return batch.task_scores if trainer.cfg.algorithm.guidance.success_on == "task_score" else batch.rewards

def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]

def _decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)
