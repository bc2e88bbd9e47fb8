"""The trainer: one short, linear step — collect, learn, sync, log.

Every algorithmic choice is a component looked up by name from the run configuration; the step
has no branch per algorithm. Two sides do the work:

* the **rollout side** (:class:`~grpozoo.training.rollout_side.RolloutSide`): selector, generation
  engine, rewards, guidance, before-advantages group filters, and the on-demand fields that need
  more samples; it returns the step's rollouts;
* the **learner side** (:class:`~grpozoo.training.learner.Learner`): the model, log-prob forwards,
  advantages, token weights, loss, aggregation and optimiser.

After each update the trainer syncs the learner's weights into the engine (a new weight version).
What components read beyond the sampled batch they declare where they are registered (``needs=…``);
registered providers on either side compute it only for runs that use such a component (see
docs/components.md).
"""

from __future__ import annotations

import time
import warnings
import weakref
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from grpozoo.config import LogConfig, RunConfig, save_config
from grpozoo.errors import ConfigError
from grpozoo.generation import SamplingParams, make_engine
from grpozoo.generation.episodes import with_tools
from grpozoo.generation.rethinking import with_rethinking
from grpozoo.generation.soft_engine import with_soft_thinking
from grpozoo.reporting.loggers import RunLoggers
from grpozoo.reporting.metrics import append_jsonl, read_jsonl, rewind_jsonl
from grpozoo.reporting.plots import plot_reward_curve
from grpozoo.rewards import PolicyHandle, RewardModel
from grpozoo.rollouts import required
from grpozoo.tasks import make_task
from grpozoo.tasks.hints import require_hints
from grpozoo.training import checkpoint as ckpt
from grpozoo.training import distributed
from grpozoo.training.allocator import keep_freed_memory
from grpozoo.training.components import build_components
from grpozoo.training.learner import Learner, frozen_copy
from grpozoo.training.model import check_trainable_dtype, load_policy
from grpozoo.training.providers import needs_of
from grpozoo.training.rollout_side import RolloutSide
from grpozoo.training.step_records import batch_metrics, sample_record, scatter_rows, signal_warnings


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
        distributed.init_from_environment(cfg.train.device)
        self.main = distributed.rank() == 0  # with several learner processes, the one that writes
        self.console = console if self.main else None
        # a default run directory is named after the clock: the first process names it for all
        self.run_dir = Path(run_dir or cfg.output_dir or distributed.from_first(default_run_dir(cfg)))
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if cfg.train.keep_freed_memory and cfg.train.device == "cpu":
            keep_freed_memory()
        algo = cfg.algorithm
        components = build_components(algo, cfg.rollout.group_size)
        check_trainable_dtype(cfg.model)
        needs = needs_of(algo)
        # persistent component state (trackers, dual variables, adaptive coefficients), checkpointed
        self.state: dict[str, Any] = {"kl_coef": algo.kl.coef, "entropy_coef": algo.entropy.coef}
        self.task = make_task(cfg.task)
        if algo.guidance.mode != "off":
            require_hints(self.task, algo.guidance.column, algo.guidance.mode)
        rewards = RewardModel(cfg.rewards, reward_functions or {})

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
        distributed.barrier()  # every process has looked before the first one writes
        if checkpoint is None:
            torch.manual_seed(cfg.train.seed)
        self.model, self.tokenizer = load_policy(
            cfg.model, cfg.train.device, init_from=checkpoint / "model" if checkpoint else None
        )
        wants_reference = "ref_logprobs" in needs and not cfg.model.lora.enabled
        reference = frozen_copy(self.model) if wants_reference else None
        processes = distributed.world_size()
        # FSDP: the learner keeps a share of the model; sampling, evaluation and saving read a whole copy
        self.whole = None
        if processes > 1 and cfg.train.distributed == "fsdp":
            self.whole = distributed.WholeCopy(self.model)
            distributed.shard(self.model)
        # rewards registered with needs_policy (an LLM judge) read the model being trained
        rewards.give_policy(PolicyHandle(self.model if self.whole is None else self.whole.model, self.tokenizer,
                                         cfg.train.device, cfg.model.name, cfg.model.dtype))
        owner = weakref.proxy(self)  # no reference cycle: a dropped trainer frees its model at once
        self.learner = Learner(
            self.model, algo, cfg.train, cfg.rollout, components, needs, self.state, reference=reference,
            warn=lambda message: owner.warn(message),
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        r = cfg.rollout
        sampling = SamplingParams(r.max_new_tokens, r.temperature, r.top_p, r.top_k, r.min_new_tokens)
        if processes > 1 and cfg.generation.engine != "hf":
            raise ConfigError(
                f"generation.engine={cfg.generation.engine} with {processes} learner processes: several "
                f"processes sample with generation.engine=hf only; train against a vLLM engine with one"
            )
        self.engine = make_engine(cfg.generation, sampling, self.whole_model(), self.tokenizer,
                                  self.run_dir / "engine_weights")
        self.engine = with_soft_thinking(self.engine, r)  # SofT-GRPO's soft steps where rollout.soft_thinking asks
        self.engine = with_tools(self.engine, self.tokenizer, r)  # multi-turn rollouts where tools are named
        self.engine = with_rethinking(self.engine, self.tokenizer, r, cfg.train.seed)  # where rollout.rethink asks
        if processes > 1:  # each process samples its share of every call's prompts
            self.engine = distributed.GatheringEngine(self.engine)
        self.rollouts = RolloutSide(
            cfg, components, self.task, rewards, self.engine, sampling, self.tokenizer, needs, self.state
        )
        if self.main:
            save_config(cfg, self.run_dir / "config.yaml")
        if checkpoint is not None:
            self._restore(checkpoint)
        # TensorBoard / trackio / wandb, when the log section asks (a missing package fails here, before any
        # step); a resumed run's events restart after its step
        self.loggers = RunLoggers(cfg if self.main else cfg.model_copy(update={"log": LogConfig()}),
                                  self.run_dir, self.step)

    # ----------------------------------------------------------------------------- set-up helpers
    def _restore(self, checkpoint: Path) -> None:
        state = ckpt.load_trainer_state(checkpoint)
        sharded = (checkpoint / ckpt.SHARDED_DIR).exists()
        if sharded != (self.whole is not None):
            raise ConfigError(
                f"{checkpoint} was saved by a {'sharded (FSDP)' if sharded else 'whole-model'} learner and this "
                f"run's learner is {'sharded' if self.whole is not None else 'whole'}: resume with the "
                f"train.distributed and --processes it was saved with"
            )
        if sharded:
            distributed.load_sharded_optimizer_state(self.model, self.learner.optimizer, checkpoint / ckpt.SHARDED_DIR)
        else:
            self.learner.optimizer.load_state_dict(state["optimizer"])
        self.learner.scheduler.load_state_dict(state["scheduler"])
        self.rollouts.selector.load_state_dict(state["selector"])
        if "components" in state:
            self.set_state(state["components"])
        ckpt.set_rng_state(state["rng"])
        self.step = state["step"]
        if self.main:
            for name in ("metrics.jsonl", "samples.jsonl", "eval.jsonl"):
                rewind_jsonl(self.run_dir / name, self.step)
        distributed.barrier()
        self.history = read_jsonl(self.run_dir / "metrics.jsonl")
        self.evals = read_jsonl(self.run_dir / "eval.jsonl")

    def set_state(self, components: dict[str, Any]) -> None:
        """Replace the component state in place: the learner and sampled batches share the dict."""
        self.state.clear()
        self.state.update(components)

    def whole_model(self):
        """The model with every weight whole and current: the learner's own, or under FSDP its whole
        copy, refreshed (collective: every process calls this at the same point)."""
        if self.whole is None:
            return self.model
        self.whole.refresh(self.model, self.step)
        return self.whole.model

    def save(self) -> Path:
        """The checkpoint of this step (every process calls this; the first writes the model and state)."""
        model = self.whole_model()
        state = {
            "scheduler": self.learner.scheduler.state_dict(),
            "selector": self.rollouts.selector.state_dict(),
            "components": self.state,
        }
        sharded = None
        if self.whole is not None:  # each process saves its share of the optimiser state
            sharded = distributed.sharded_optimizer_state(self.model, self.learner.optimizer)
        elif self.main:  # every process holds the same state
            state["optimizer"] = self.learner.optimizer.state_dict()
        return ckpt.save_checkpoint(self.run_dir, self.step, model, self.tokenizer, state,
                                    self.cfg.train.keep_checkpoints, sharded)

    def warn(self, message: str) -> None:
        if not self.main:  # said once, by the process that writes
            return
        if self.console is not None:
            self.console.print(f"[bold yellow]WARNING[/] step {self.step}: {message}")
        else:
            warnings.warn(f"step {self.step}: {message}", stacklevel=2)

    # ----------------------------------------------------------------------------- the step
    def train_step(self) -> dict[str, Any]:
        """One step: sync the last update's weights into the engine, collect rollouts (rollout side),
        learn from them (learner side), log. Returns the step's metrics.

        The sync opens the step rather than closing the last one: an engine that fails then (a server
        gone) fails before this step changed anything, so the last step's checkpoint stands
        (:func:`~grpozoo.training.fit.checkpoint_on_failure`)."""
        start = time.perf_counter()
        self.engine.sync(self.whole_model(), self.step)  # nothing to do when the engine has these weights
        self.step += 1
        synced = time.perf_counter()
        collected = self.rollouts.collect(self.step)
        batch = collected.batch
        learning_batch = self.learner.prepare(collected.learning)
        learn_metrics = self.learner.learn(learning_batch)
        end = time.perf_counter()
        # every sampled row's advantage, for the sample log: NaN on the rows that did not learn
        advantages = required(collected.learning.advantages, "advantages", "the sample log")
        batch.advantages = scatter_rows(advantages, collected.rows, batch.batch_size)
        sampled = batch.own_samples  # no hint, no demonstration
        own = batch if bool(sampled.all()) else batch.select(sampled)
        demonstrations = learning_batch.demonstration  # rows that learn, not counted as kept samples
        learned = learning_batch.batch_size - (int(demonstrations.sum()) if demonstrations is not None else 0)
        completion_tokens = float(batch.completion_mask.sum())
        metrics = {
            "step": self.step,
            **batch_metrics(own, self.rollouts.rewards.parts),
            **self.rollouts.rewards.timeout_metrics(),
            "kept_fraction": learned / own.batch_size,
            **collected.metrics,
            **learn_metrics,
            **self.rollouts.providers.take_metrics(),  # e.g. a critic's unparseable critiques
            **self.learner.providers.take_metrics(),  # e.g. a learned critic's loss
            "lr": self.learner.scheduler.get_last_lr()[0],
            "weight_version": self.engine.version,
            "time/generation_s": collected.generation_s,
            "time/sync_s": synced - start,
            "time/learning_s": end - synced - collected.generation_s,
            "time/step_s": end - start,
            "completion_tokens": completion_tokens,  # every round, hinted rollouts too
            "tokens_per_s": completion_tokens / collected.generation_s,
        }
        self.history.append(metrics)
        self.check_signal()
        if self.main:
            append_jsonl(self.run_dir / "metrics.jsonl", metrics)
            append_jsonl(self.run_dir / "samples.jsonl",
                         *(sample_record(self.step, batch, i) for i in range(batch.batch_size)))
        self.loggers.log_step(metrics, batch)
        return metrics

    def check_signal(self) -> None:
        """Warn loudly when the last steps carried almost no learning signal (:func:`signal_warnings`)."""
        for message in signal_warnings(self.history, self.cfg.rollout.max_new_tokens):
            self.warn(message)

    # ----------------------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, Any]:
        from grpozoo.evaluation import evaluate_held_out

        record = {"step": self.step, **evaluate_held_out(self.whole_model(), self.tokenizer, self.task, self.cfg)}
        self.evals.append(record)
        if self.main:
            append_jsonl(self.run_dir / "eval.jsonl", record)
        self.loggers.log_eval(record)
        return record

    def plot(self) -> None:
        if self.history and self.main:
            title = f"{self.cfg.recipe} on {self.task.name} ({Path(self.cfg.model.name).name})"
            plot_reward_curve(self.history, self.evals, self.run_dir / "reward_curve.png", title)
