"""A task row's demonstration (its worked solution) as the hybrid SFT + RL objectives read it, in two
forms, each for the runs whose components ask for it (``needs``):

* ``demonstrations``: one more row per learning group whose completion is the demonstration, not a
  sample (``ctx.demonstration`` True there), so the learner's own forward gives the policy's
  log-probs of it, with their gradient (GRAO's imitation of the reference answer: Wang et al. 2025,
  "Learning to Align, Aligning to Learn: A Unified Approach for Self-Optimized Alignment",
  arXiv:2508.07750). The row is scored like a sample and counts in its group.
* ``privileged_prompts``: each row's prompt with the demonstration in its last user message
  (``ctx.privileged_prompts``), the context of a self-teacher: the same policy scoring the sampled
  tokens knowing a solution (``teacher_logprobs``, ``teacher_entropies``; SRPO: Li et al. 2026,
  "Unifying Group-Relative and Self-Distillation Policy Optimization via Sample Routing",
  arXiv:2604.02288).

The demonstration is the row's ``solution`` column, else the most concrete of its ``hints`` (the
whole worked solution where hints were derived from one, :mod:`grpozoo.tasks.hints`); reasoning-gym
tasks with worked solutions (:mod:`grpozoo.tasks.solutions`) carry one in every row. A row without
one gets no demonstration row and is its own teacher (its privileged prompt is its prompt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from grpozoo.algos.guidance import hinted_messages
from grpozoo.errors import ConfigError
from grpozoo.generation.samples import left_padded, prompt_token_ids, rollouts_from_samples
from grpozoo.rollouts import Rollouts
from grpozoo.tasks.base import Task, render_prompt
from grpozoo.tasks.solutions import how_to_give_solutions

DEMONSTRATIONS = "demonstrations"
PRIVILEGED_PROMPTS = "privileged_prompts"
# GUESS: how the self-teacher is told the solution (appended to the last user message)
PRIVILEGED_TEMPLATE = "\n\nA correct solution, for reference:\n{hint}\n\nNow answer the question."

Messages = Callable[[dict[str, Any]], list[dict[str, str]]]


def demonstration_text(row: dict[str, Any]) -> str | None:
    """The demonstration of a task row: its ``solution``, else the last (most concrete) of its
    ``hints``; None when it has neither (or only empty text)."""
    solution = row.get("solution")
    if isinstance(solution, str) and solution.strip():
        return solution.strip()
    hints = row.get("hints")
    tiers = [hints] if isinstance(hints, str) else list(hints) if isinstance(hints, list | tuple) else []
    tiers = [t for t in tiers if isinstance(t, str) and t.strip()]
    return tiers[-1].strip() if tiers else None


def require_demonstrations(task: Task, needs: set[str]) -> None:
    """Fail at start-up when a run whose components read demonstrations trains on a task none of
    whose train rows has one; the message says how to give them."""
    asked = sorted(needs & {DEMONSTRATIONS, PRIVILEGED_PROMPTS})
    if not asked or any(demonstration_text(row) is not None for row in task.train_rows):
        return
    raise ConfigError(
        f"this run's components read {', '.join(asked)}: a worked solution of each task row, but no train "
        f"row of task {task.name!r} has one " + how_to_give_solutions(task.train_rows, hints=True)
    )


def privileged_prompts(batch: Rollouts, messages: Messages, tokenizer) -> list[list[int]]:
    """``[B]`` token ids of each row's prompt with its demonstration in the last user message
    (:data:`PRIVILEGED_TEMPLATE`); a row without a demonstration keeps its own prompt."""
    out = []
    for i, row in enumerate(batch.examples):
        text = demonstration_text(row)
        if text is None:
            out.append(batch.prompt_ids[i][batch.prompt_mask[i].bool()].tolist())
            continue
        rendered = render_prompt(tokenizer, hinted_messages(messages(row), text, PRIVILEGED_TEMPLATE))
        out.append(prompt_token_ids(tokenizer, [rendered])[0])
    return out


def with_privileged_prompts(batch: Rollouts, prompts: list[list[int]]) -> Rollouts:
    """A copy of ``batch`` whose prompts are ``prompts`` (``[B]`` token ids, left-padded here): the
    batch a self-teacher scores."""
    ids, mask = left_padded(prompts, pad=0)
    return replace(batch, prompt_ids=ids, prompt_mask=mask)


class Demonstrations:
    """Appends one demonstration row per learning group to a step's rollouts, for runs that need
    ``demonstrations`` (otherwise :meth:`append` returns the batch as it is). ``score`` scores
    them as it scores samples."""

    def __init__(self, needs: set[str], task: Task, tokenizer, score: Callable[[Rollouts], None]):
        require_demonstrations(task, needs)
        self.enabled = DEMONSTRATIONS in needs
        self.tokenizer = tokenizer
        self.score = score

    def append(self, batch: Rollouts, use: torch.Tensor) -> tuple[Rollouts, torch.Tensor]:
        """``batch`` with a demonstration row appended for each group with a row in ``use`` whose
        task row has a demonstration, and ``use`` extended to learn from them.

        A demonstration row has the prompt of its group's first row, the demonstration's tokens
        and EOS as its completion, ``off_policy`` and ``demonstration`` True, and the
        demonstrator's log-probs (0) and entropies (0) as its sampler's: it was not sampled, and its
        behaviour policy is certain. It is scored as a sample; it may be longer than
        ``rollout.max_new_tokens``."""
        if not self.enabled or not bool(use.any()):
            return batch, use
        first: dict[int, int] = {}
        for i in use.nonzero().squeeze(1).tolist():
            first.setdefault(int(batch.group_ids[i]), i)
        rows = [i for i in first.values() if demonstration_text(batch.examples[i]) is not None]
        if not rows:
            return batch, use
        tok = self.tokenizer
        texts = [demonstration_text(batch.examples[i]) for i in rows]
        eos = tok.eos_token_id
        completions = [tok(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
        version = int(batch.weight_version.max()) if batch.weight_version is not None else 0
        demo = rollouts_from_samples(
            tok, [batch.prompts[i] for i in rows],
            [batch.prompt_ids[i][batch.prompt_mask[i].bool()].tolist() for i in rows],
            [batch.examples[i] for i in rows], [1] * len(rows),
            [(ids, [0.0] * len(ids)) for ids in completions], [eos], version,
        )
        index = torch.tensor(rows)
        demo.group_ids = batch.group_ids[index]
        demo.row_ids = batch.row_ids[index] if batch.row_ids is not None else None
        demo.step, demo.total_steps, demo.state = batch.step, batch.total_steps, batch.state
        demo.off_policy = torch.ones(len(rows), dtype=torch.bool)
        demo.demonstration = torch.ones(len(rows), dtype=torch.bool)
        if batch.entropies is not None:
            demo.entropies = torch.zeros(demo.completion_mask.shape)
        demo.environment_parts = {k: torch.zeros(len(rows), dtype=v.dtype) for k, v in batch.environment_parts.items()}
        self.score(demo)
        merged = Rollouts.concat([batch, demo], renumber_groups=False)
        return merged, torch.cat([use, torch.ones(len(rows), dtype=torch.bool)])
