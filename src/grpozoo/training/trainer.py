"""The trainer: one short, linear step — select, generate, reward, advantages, token weights,
learn, log.

Every algorithmic choice is a component looked up by name from the run configuration; the loop
has no branch per algorithm. The trainer is the rollout side (sampling, scoring, guidance, filters,
advantages); its :class:`~grpozoo.training.learner.Learner` is the learning side (model, optimiser,
loss). What components read beyond the sampled batch (old or reference log-probs, a greedy baseline,
Monte-Carlo segment values) they declare where they are registered (``needs=…``), and
:class:`~grpozoo.training.providers.Providers` computes it only for runs that use such a component
(see docs/components.md).
"""

from __future__ import annotations

import time
import warnings
import weakref
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from grpozoo import registry
from grpozoo.algos.advantages import AdvantageOutput, check_estimator_run, reward_with_kl
from grpozoo.algos.filters import (
    AFTER_ADVANTAGES,
    NoLearnableGroupsError,
    check_keep,
    count_groups,
    first_groups,
    no_signal_message,
)
from grpozoo.config import RunConfig, save_config
from grpozoo.generation import HFGenerator, SamplingParams
from grpozoo.reporting.loggers import RunLoggers
from grpozoo.reporting.metrics import append_jsonl, read_jsonl, rewind_jsonl
from grpozoo.reporting.plots import plot_reward_curve
from grpozoo.rewards import RewardModel
from grpozoo.rollouts import Rollouts, required
from grpozoo.tasks import make_task
from grpozoo.tasks.base import render_prompt
from grpozoo.tasks.hints import require_hints
from grpozoo.training import checkpoint as ckpt
from grpozoo.training.allocator import keep_freed_memory
from grpozoo.training.guided import Guidance
from grpozoo.training.learner import Learner, frozen_copy
from grpozoo.training.model import load_policy
from grpozoo.training.providers import Providers, needs_of
from grpozoo.training.step_records import (
    batch_metrics,
    reward_columns,
    sample_record,
    scatter_rows,
    signal_warnings,
)


def default_run_dir(cfg: RunConfig) -> Path:
    task = Path(cfg.task.name).stem
    return Path("runs") / f"{cfg.recipe}-{task}-{datetime.now():%Y%m%d-%H%M%S}"


class Trainer:
    """Builds every component from ``cfg`` and runs the steps; ``resume`` continues a run directory."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path | None = None,
        resume: bool = False,
        reward_functions: dict[str, Callable[..., Any]] | None = None,
        console=None,
    ):
        self.cfg = cfg
        self.console = console
        self.run_dir = Path(run_dir or cfg.output_dir or default_run_dir(cfg))
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if cfg.train.keep_freed_memory and cfg.train.device == "cpu":
            keep_freed_memory()
        algo = cfg.algorithm
        self.advantage_fn = registry.advantages.get(algo.advantage.name)
        self.token_weight_fns = [registry.token_weights.get(c.name) for c in algo.token_weights]
        registry.check_params("advantage estimator", algo.advantage.name, self.advantage_fn, algo.advantage.params, 2)
        for component, fn in zip(algo.token_weights, self.token_weight_fns, strict=True):
            registry.check_params("token weighting", component.name, fn, component.params, 0)
        registry.check_params("policy loss", algo.loss.name, registry.losses.get(algo.loss.name), algo.loss.params, 4)
        # group filters: (config, function, stage); a refilling one asks for more rounds of prompts
        self.group_filters = []
        for component in algo.group_filters:
            fn = registry.group_filters.get(component.name)
            registry.check_params("group filter", component.name, fn, component.params, 1)
            self.group_filters.append((component, fn, registry.group_filters.spec(component.name).stage_for(component.params)))
        self.refill = [
            c.name
            for c, _, stage in self.group_filters
            if stage != AFTER_ADVANTAGES and registry.group_filters.spec(c.name).refill
        ]
        self.advantage_spec = registry.advantages.spec(algo.advantage.name)
        kl_in_reward = algo.kl.coef > 0 and algo.kl.mode == "reward"
        check_estimator_run(algo.advantage.name, cfg.rollout.group_size, kl_in_reward)
        needs = needs_of(algo)
        # persistent component state (trackers, dual variables, adaptive coefficients), checkpointed
        self.state: dict[str, Any] = {"kl_coef": algo.kl.coef, "entropy_coef": algo.entropy.coef}
        selector_cls = registry.selectors.get(algo.selector.name)
        self.task = make_task(cfg.task)
        if algo.guidance.mode != "off":
            require_hints(self.task, algo.guidance.column, algo.guidance.mode)
        self.rewards = RewardModel(cfg.rewards, reward_functions or {})
        registry.check_params("selector", algo.selector.name, selector_cls, algo.selector.params, 2)
        self.selector = selector_cls(len(self.task.train_rows), seed=cfg.train.seed, **algo.selector.params)

        self.step = 0
        self.history: list[dict[str, Any]] = []  # metrics.jsonl, kept in memory
        self.evals: list[dict[str, Any]] = []  # eval.jsonl, kept in memory
        checkpoint = ckpt.latest_checkpoint(self.run_dir) if resume else None
        if resume and checkpoint is None:
            raise FileNotFoundError(f"--resume: {str(self.run_dir)!r} holds no checkpoint to resume from")
        if not resume and (self.run_dir / "metrics.jsonl").exists():
            raise FileExistsError(
                f"run directory {str(self.run_dir)!r} already holds a run: continue it with "
                f"--resume {self.run_dir}, or choose another --output"
            )
        if checkpoint is None:
            torch.manual_seed(cfg.train.seed)
        self.model, self.tokenizer = load_policy(
            cfg.model, cfg.train.device, init_from=checkpoint / "model" if checkpoint else None
        )
        wants_reference = "ref_logprobs" in needs and not cfg.model.lora.enabled
        self.generator = HFGenerator(self.model, self.tokenizer)
        r = cfg.rollout
        self.sampling = SamplingParams(r.max_new_tokens, r.temperature, r.top_p, r.top_k, r.min_new_tokens)
        owner = weakref.proxy(self)  # no reference cycle: a dropped trainer frees its model at once
        self.guidance = Guidance(
            algo.guidance, r.group_size, self.task, self.tokenizer,
            generate=lambda prompts, examples, n: owner.generator.generate(prompts, examples, n, owner.sampling),
            score=lambda batch: owner.score(batch),
        )
        self.learner = Learner(
            self.model, algo, cfg.train, r, self.state,
            reference=frozen_copy(self.model) if wants_reference else None,
            warn=lambda message: owner.warn(message),
        )
        self.providers = Providers(
            needs, algo.advantage, self.advantage_spec, self.tokenizer, self.sampling,
            generate=lambda prompts, examples, n, sampling: owner.generator.generate(prompts, examples, n, sampling),
            reward_of=lambda batch, completions: owner.reward_of(batch, completions),
            policy_logprobs=self.learner.policy_logprobs,
            reference_logprobs=self.learner.reference_logprobs,
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.run_dir / "config.yaml")
        if checkpoint is not None:
            self._restore(checkpoint)
        # TensorBoard / trackio, when the log section asks (a missing package fails here, before any
        # step); a resumed run's events restart after its step
        self.loggers = RunLoggers(cfg, self.run_dir, self.step)

    # ----------------------------------------------------------------------------- set-up helpers
    def _restore(self, checkpoint: Path) -> None:
        state = ckpt.load_trainer_state(checkpoint)
        self.learner.optimizer.load_state_dict(state["optimizer"])
        self.learner.scheduler.load_state_dict(state["scheduler"])
        self.selector.load_state_dict(state["selector"])
        if "components" in state:
            self.set_state(state["components"])
        ckpt.set_rng_state(state["rng"])
        self.step = state["step"]
        for name in ("metrics.jsonl", "samples.jsonl", "eval.jsonl"):
            rewind_jsonl(self.run_dir / name, self.step)
        self.history = read_jsonl(self.run_dir / "metrics.jsonl")
        self.evals = read_jsonl(self.run_dir / "eval.jsonl")

    def set_state(self, components: dict[str, Any]) -> None:
        """Replace the component state in place: the learner and sampled batches share the dict."""
        self.state.clear()
        self.state.update(components)

    def save(self) -> Path:
        state = {
            "optimizer": self.learner.optimizer.state_dict(),
            "scheduler": self.learner.scheduler.state_dict(),
            "selector": self.selector.state_dict(),
            "components": self.state,
        }
        return ckpt.save_checkpoint(
            self.run_dir, self.step, self.model, self.tokenizer, state, self.cfg.train.keep_checkpoints
        )

    def warn(self, message: str) -> None:
        if self.console is not None:
            self.console.print(f"[bold yellow]WARNING[/] step {self.step}: {message}")
        else:
            warnings.warn(f"step {self.step}: {message}", stacklevel=2)

    # ----------------------------------------------------------------------------- the step
    def train_step(self) -> dict[str, Any]:
        """One step: select, generate, reward, guide, filter (refilling), advantages, token weights,
        learn, log. Returns the step's metrics."""
        self.step += 1
        start = time.perf_counter()
        batch, learning_rows, collect_metrics = self.collect()
        generation_s = collect_metrics.pop("time/generation_s")  # the generator's share of collecting
        learning_batch = self.prepare(batch, learning_rows)
        learn_metrics = self.learner.learn(learning_batch)
        end = time.perf_counter()
        own = batch if batch.hint_level is None else batch.select(batch.hint_level == 0)  # no hint
        completion_tokens = float(batch.completion_mask.sum())
        metrics = {
            "step": self.step,
            **batch_metrics(own, self.rewards.parts),
            **self.rewards.timeout_metrics(),
            "kept_fraction": learning_batch.batch_size / own.batch_size,
            **collect_metrics,
            **learn_metrics,
            "lr": self.learner.scheduler.get_last_lr()[0],
            "time/generation_s": generation_s,
            "time/learning_s": end - start - generation_s,
            "time/step_s": end - start,
            "completion_tokens": completion_tokens,  # every round, hinted rollouts too
            "tokens_per_s": completion_tokens / generation_s,
        }
        self.history.append(metrics)
        self.check_signal()
        append_jsonl(self.run_dir / "metrics.jsonl", metrics)
        append_jsonl(self.run_dir / "samples.jsonl", *(sample_record(self.step, batch, i) for i in range(batch.batch_size)))
        self.loggers.log_step(metrics, batch)
        return metrics

    # ----------------------------------------------------------------------------- sampling rounds
    def collect(self) -> tuple[Rollouts, torch.Tensor, dict[str, float]]:
        """Sample the step's rollouts: select prompts, generate, score, update the selector, guide
        all-fail groups and run the group filters that act before the advantages. With a refilling
        filter (dynamic sampling), further rounds of ``rollout.prompts_per_step`` fresh prompts follow
        until that many groups survive or ``rollout.max_refill_rounds`` extra rounds are spent; the
        surplus beyond ``prompts_per_step`` groups is left out. No surviving group at all is an error.

        Returns every rollout sampled (all rounds, hinted ones included, group ids distinct), the
        indices of the rows that go on to the advantages, and the rounds' metrics."""
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
            batch = self.generate(rows)
            metrics["time/generation_s"] += time.perf_counter() - started
            self.score(batch)
            self.selector.update(rows, batch)
            batch, use = self.guidance.rescue(batch, metrics)
            use = self.filter_before_advantages(batch, use)
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
        if self.group_filters:
            metrics["filter/kept_groups"] = count_groups(batch.group_ids, use)
            metrics["filter/sampled_groups"] = count_groups(batch.group_ids, torch.ones_like(use))
        return batch, use.nonzero().squeeze(1), dict(metrics)

    def prepare(self, batch: Rollouts, rows: torch.Tensor) -> Rollouts:
        """The batch that learns from the sampled ``batch``'s ``rows``: on-demand fields, advantages
        (set on ``batch`` too, NaN on rows that do not learn), the after-advantages filters, token
        weights."""
        learn_input = batch if len(rows) == batch.batch_size else batch.select(rows)
        if learn_input.batch_size == 0:
            batch.advantages = torch.full((batch.batch_size,), float("nan"))
            learn_input.advantages = torch.zeros(0)
            return learn_input
        self.providers.provide(learn_input)
        learning_batch = self.advantages(learn_input)
        if learn_input is not batch:
            assert learn_input.advantages is not None  # set by the advantage stage
            batch.advantages = scatter_rows(learn_input.advantages, rows, batch.batch_size)
        learning_batch = self.filter_after_advantages(learning_batch)
        learning_batch.token_weights = self.token_weights(learning_batch)
        return learning_batch

    def filter_before_advantages(self, batch: Rollouts, use: torch.Tensor) -> torch.Tensor:
        """``use`` narrowed by each group filter of the before-advantages stage, in order; each
        filter sees the rows the previous ones kept."""
        for component, fn, stage in self.group_filters:
            if stage == AFTER_ADVANTAGES or not bool(use.any()):
                continue
            rows = use.nonzero().squeeze(1)
            keep = check_keep(component.name, fn(batch.select(rows), **component.params), len(rows))
            use = use.clone()
            use[rows[~keep]] = False
        return use

    def filter_after_advantages(self, batch: Rollouts) -> Rollouts:
        """The learning batch without the rows the after-advantages filters drop (e.g. truncated
        completions under DAPO's overlong filtering): they counted in their group's statistics, and
        receive no loss."""
        for component, fn, stage in self.group_filters:
            if stage != AFTER_ADVANTAGES or batch.batch_size == 0:
                continue
            keep = check_keep(component.name, fn(batch, **component.params), batch.batch_size)
            if not bool(keep.all()):
                batch = batch.select(keep)
        return batch

    def generate(self, rows: list[int]) -> Rollouts:
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
        batch = self.generator.generate(prompts, examples, counts, self.sampling)
        batch.row_ids = torch.tensor(rows, dtype=torch.long).repeat_interleave(torch.tensor(counts))
        batch.step, batch.total_steps, batch.state = self.step, self.cfg.train.steps, self.state
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
        rewards, parts = self.rewards(completions, batch.prompts, reward_columns(batch, task_scores))
        return rewards, parts, task_scores

    # ----------------------------------------------------------------------------- advantages and weights
    def advantages(self, batch: Rollouts) -> Rollouts:
        """Run the advantage estimator; returns the batch that learns, without the rows the estimator
        dropped. With the KL folded into the reward (``algorithm.kl.mode=reward``) the estimator sees
        the reward with the penalty ``kl_coef · kl`` of the sampling policy already in it, as its
        registration's ``kl_in_reward`` asks: per-token returns or the sequence return."""
        algo = self.cfg.algorithm
        rewards = required(batch.rewards, "batch.rewards", f"advantage estimator {algo.advantage.name!r}")
        if algo.kl.coef > 0 and algo.kl.mode == "reward":
            policy = batch.old_logprobs if batch.old_logprobs is not None else batch.sampling_logprobs
            penalty = self.state["kl_coef"] * self.learner.kl_fn(policy, batch.ref_logprobs)
            rewards = reward_with_kl(self.advantage_spec.kl_in_reward, rewards, penalty, batch.completion_mask)
        out = self.advantage_fn(rewards, batch.group_ids, batch, **algo.advantage.params)
        if not isinstance(out, AdvantageOutput):
            out = AdvantageOutput(out)
        batch.advantages, batch.extras = out.advantages, dict(out.extras)
        if out.keep is not None and not bool(out.keep.all()):
            return batch.select(out.keep)
        return batch

    def token_weights(self, batch: Rollouts) -> torch.Tensor | None:
        weights = None
        for component, fn in zip(self.cfg.algorithm.token_weights, self.token_weight_fns, strict=True):
            w = fn(batch, **component.params).detach()
            weights = w if weights is None else weights * w
        return weights

    def check_signal(self) -> None:
        """Warn loudly when the last steps carried almost no learning signal (:func:`signal_warnings`)."""
        for message in signal_warnings(self.history, self.cfg.rollout.max_new_tokens):
            self.warn(message)

    # ----------------------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, Any]:
        from grpozoo.evaluation import evaluate_held_out

        record = {"step": self.step, **evaluate_held_out(self.model, self.tokenizer, self.task, self.cfg)}
        self.evals.append(record)
        append_jsonl(self.run_dir / "eval.jsonl", record)
        self.loggers.log_eval(record)
        return record

    def plot(self) -> None:
        if self.history:
            title = f"{self.cfg.recipe} on {self.task.name} ({Path(self.cfg.model.name).name})"
            plot_reward_curve(self.history, self.evals, self.run_dir / "reward_curve.png", title)
