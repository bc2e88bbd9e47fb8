"""The rollout side of a step: choose prompts, sample them with the generation engine, score them,
guide all-fail groups, filter groups (refilling when a filter asks), and fill the on-demand fields
that need more samples. It returns :class:`Collected` rollouts; it never touches the optimiser, and
reads the policy's weights only through the engine, which the trainer syncs after each update."""

from __future__ import annotations

import time
import weakref
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from grpozoo.algos.filters import (
    NoLearnableGroupsError,
    check_keep,
    count_groups,
    first_groups,
    no_signal_message,
)
from grpozoo.config import RunConfig
from grpozoo.generation import Engine, SamplingParams
from grpozoo.registry import BEFORE_ADVANTAGES, ROLLOUT_SIDE
from grpozoo.rewards import RewardModel
from grpozoo.rollouts import Rollouts, required
from grpozoo.tasks.base import Task, render_prompt
from grpozoo.training.components import Components
from grpozoo.training.demonstrations import Demonstrations
from grpozoo.training.guided import Guidance
from grpozoo.training.providers import Providers, RolloutTools
from grpozoo.training.step_records import reward_columns


@dataclass
class Collected:
    """One step's rollouts: ``batch`` holds every rollout sampled (all rounds, hinted ones too, group
    ids distinct), ``rows [K]`` the indices of those that go on to learn, ``learning`` the sub-batch
    of those rows with its rollout-side on-demand fields, ``metrics`` the rounds' counts and
    ``generation_s`` the engine's share of the time."""

    batch: Rollouts
    rows: torch.Tensor
    learning: Rollouts
    metrics: dict[str, float]
    generation_s: float


class RolloutSide:
    """Owns the task, selector, engine, rewards, guidance and the before-advantages group filters.
    ``sampling`` holds the run's sampling parameters; ``needs`` the on-demand fields the run's
    components read (this side fills those its providers compute); ``state`` is the run's component
    state (sampled batches carry it to the components)."""

    def __init__(
        self,
        cfg: RunConfig,
        components: Components,
        task: Task,
        rewards: RewardModel,
        engine: Engine,
        sampling: SamplingParams,
        tokenizer: Any,
        needs: set[str],
        state: dict[str, Any],
    ):
        self.cfg, self.task, self.rewards, self.engine, self.sampling, self.tokenizer, self.state = (
            cfg, task, rewards, engine, sampling, tokenizer, state
        )
        algo, r = cfg.algorithm, cfg.rollout
        self.selector = components.selector_cls(len(task.train_rows), seed=cfg.train.seed, **algo.selector.params)
        self.filters = components.filters(BEFORE_ADVANTAGES)
        self.refill = components.refilling
        me = weakref.proxy(self)  # no reference cycle: a dropped trainer frees its model at once
        self.guidance = Guidance(
            algo.guidance, r.group_size, task, tokenizer,
            generate=lambda prompts, examples, n: engine.generate(prompts, examples, n, sampling),
            score=lambda batch: me.score(batch),
        )
        tools = RolloutTools(engine.generate, lambda batch, completions: me.reward_of(batch, completions),
                             tokenizer, sampling, algo.advantage, components.advantage_spec, rewards.policy,
                             messages=task.messages)
        # rows whose completion is the task row's worked solution, for runs that need demonstrations
        self.demonstrations = Demonstrations(needs, task, tokenizer, score=lambda batch: me.score(batch))
        self.providers = Providers(needs, ROLLOUT_SIDE, tools)

    def collect(self, step: int) -> Collected:
        """Sample step ``step``'s rollouts: select prompts, generate, score, update the selector, guide
        all-fail groups and run the before-advantages group filters. With a refilling filter (dynamic
        sampling), further rounds of ``rollout.prompts_per_step`` fresh prompts follow until that many
        groups survive or ``rollout.max_refill_rounds`` extra rounds are spent; the surplus beyond
        ``prompts_per_step`` groups is left out. No surviving group at all is an error."""
        r = self.cfg.rollout
        target = r.prompts_per_step
        max_rounds = 1 + (r.max_refill_rounds if self.refill else 0)
        rounds: list[Rollouts] = []
        uses: list[torch.Tensor] = []
        metrics: dict[str, float] = defaultdict(float)
        kept = 0
        while len(rounds) < max_rounds and kept < target:
            rows = self.selector.next(target)
            started = time.perf_counter()
            batch = self.generate(rows, step)
            metrics["time/generation_s"] += time.perf_counter() - started
            self.score(batch)
            self.selector.update(rows, batch)
            batch, use = self.guidance.rescue(batch, metrics)
            use = self.filter(batch, use)
            rounds.append(batch)
            uses.append(use)
            kept += count_groups(batch.group_ids, use)
        batch = Rollouts.concat(rounds)
        use = torch.cat(uses)
        if self.refill:
            if kept == 0:
                rewards = required(batch.rewards, "batch.rewards", "the refilling group filters")
                own = rewards if batch.hint_level is None else rewards[batch.hint_level == 0]
                raise NoLearnableGroupsError(
                    no_signal_message(self.refill, len(rounds), target, r.group_size, float(own.mean()),
                                      r.max_refill_rounds)
                )
            use = first_groups(batch.group_ids, use, target)
            metrics["filter/rounds"] = len(rounds)
        if "guidance/hint_level_sum" in metrics:  # the mean level that rescued a group (0: none did)
            metrics["guidance/hint_level"] = metrics.pop("guidance/hint_level_sum") / max(
                metrics["guidance/rescued_groups"], 1
            )
        if self.cfg.algorithm.group_filters:
            metrics["filter/kept_groups"] = count_groups(batch.group_ids, use)
            metrics["filter/sampled_groups"] = count_groups(batch.group_ids, torch.ones_like(use))
        batch, use = self.demonstrations.append(batch, use)
        rows = use.nonzero().squeeze(1)
        learning = batch if len(rows) == batch.batch_size else batch.select(rows)
        if learning.batch_size:
            self.providers.provide(learning)
        generation_s = metrics.pop("time/generation_s")
        return Collected(batch, rows, learning, dict(metrics), generation_s)

    def filter(self, batch: Rollouts, use: torch.Tensor) -> torch.Tensor:
        """``use`` narrowed by each before-advantages group filter, in order; each filter sees the
        rows the previous ones kept."""
        for f in self.filters:
            if not bool(use.any()):
                break
            rows = use.nonzero().squeeze(1)
            keep = check_keep(f.config.name, f.fn(batch.select(rows), **f.config.params), len(rows))
            use = use.clone()
            use[rows[~keep]] = False
        return use

    def generate(self, rows: list[int], step: int) -> Rollouts:
        """Sample the rollouts of task ``rows``: ``rollout.group_size`` each, or the per-row counts of a
        selector with ``allocate(rows, group_size)``, which split the same total."""
        examples = [self.task.train_rows[i] for i in rows]
        prompts = [render_prompt(self.tokenizer, self.task.messages(r)) for r in examples]
        group_size = self.cfg.rollout.group_size
        allocate = getattr(self.selector, "allocate", None)
        counts = list(allocate(rows, group_size)) if allocate is not None else [group_size] * len(rows)
        if len(counts) != len(rows) or sum(counts) != len(rows) * group_size:
            raise ValueError(
                f"selector {self.cfg.algorithm.selector.name!r} allocated {counts} rollouts to {len(rows)} "
                f"prompts; the counts must number one per prompt and sum to {len(rows) * group_size} "
                f"(rollout.prompts_per_step × rollout.group_size)"
            )
        batch = self.engine.generate(prompts, examples, counts, self.sampling)
        batch.row_ids = torch.tensor(rows, dtype=torch.long).repeat_interleave(torch.tensor(counts))
        batch.step, batch.total_steps, batch.state = step, self.cfg.train.steps, self.state
        return batch

    def score(self, batch: Rollouts) -> None:
        batch.answers = [self.task.extract(c) for c in batch.completions]
        batch.rewards, batch.reward_parts, batch.task_scores = self.reward_of(batch)

    def reward_of(
        self, batch: Rollouts, completions: list[str] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Total reward ``[B]``, its named parts and the task's verifier scores ``[B]`` of the
        batch's completions (or of ``completions`` standing in for them, row for row)."""
        completions = batch.completions if completions is None else completions
        task_scores = torch.tensor(
            [self.task.score(c, r) for c, r in zip(completions, batch.examples, strict=True)]
        )
        messages = [self.task.messages(row) for row in batch.examples]
        rewards, parts = self.rewards(completions, batch.prompts, reward_columns(batch, task_scores, messages))
        return rewards, parts, task_scores
