"""The learner side of a step: the policy model, its optimiser and scheduler, the log-prob forwards,
and everything from the sampled rollouts to an update: the learner's on-demand fields (old and
reference log-probs), advantages, the after-advantages group filters, token weights, and the loss
(policy loss, KL, entropy bonus, aggregation). It never samples: :meth:`Learner.prepare` takes the
rollout side's learning batch, :meth:`Learner.learn` optimises on it."""

from __future__ import annotations

import copy
import weakref
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.autograd.graph import increment_version

from grpozoo import registry
from grpozoo.algos import guidance
from grpozoo.algos.advantages import AdvantageOutput, reward_with_kl
from grpozoo.algos.aggregation import BatchTotals
from grpozoo.algos.controllers import adaptive_entropy_coef, adaptive_kl_coef, scheduled_coef
from grpozoo.algos.filters import check_keep
from grpozoo.algos.kl import straight_through
from grpozoo.algos.losses import batch_statistics
from grpozoo.config import AlgorithmConfig, RolloutConfig, TrainConfig
from grpozoo.registry import AFTER_ADVANTAGES, LEARNER_SIDE
from grpozoo.rollouts import Rollouts, required
from grpozoo.training import distributed
from grpozoo.training.components import Components
from grpozoo.training.critics import CriticInputs, check_critic_run, hidden_states
from grpozoo.training.forward import completion_logprobs, micro_batches, rows_of, shared_prefix_logprobs
from grpozoo.training.lora_linear import fused_lora
from grpozoo.training.optimizers import build_optimizer
from grpozoo.training.providers import LearnerTools, Providers
from grpozoo.training.soft_forward import soft_completion_logprobs

# the sampler/learner log-prob gap of the first optimiser iteration, summed over micro-batches
GAP_SUM, GAP_TOKENS, GAP_MAX = "sampler_gap_sum", "sampler_gap_tokens", "sampler_gap_max"


def frozen_copy(model):
    """A frozen copy of ``model`` in eval mode: the reference policy of a full fine-tuning run."""
    reference = copy.deepcopy(model).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    return reference


class Learner:
    """Optimiser steps on learning batches. ``algo``, ``train`` and ``rollout`` are the run's config
    sections, read at each call; ``components`` the run's checked components (built before the model
    loads); ``needs`` the on-demand fields the run's components read; ``state`` is the run's component
    state (adaptive coefficients, dual variables), updated in place once per step; ``reference`` is
    the frozen reference model, or None (none wanted, or LoRA: the base model with adapters
    disabled); ``warn`` reports a skipped update."""

    def __init__(
        self,
        model,
        algo: AlgorithmConfig,
        train: TrainConfig,
        rollout: RolloutConfig,
        components: Components,
        needs: set[str],
        state: dict[str, Any],
        reference,
        warn: Callable[[str], None],
    ):
        self.model, self.algo, self.train, self.rollout = model, algo, train, rollout
        self.components, self.state, self.reference, self.warn = components, state, reference, warn
        self.loss_fn = registry.losses.get(algo.loss.name)
        self.loss_spec = registry.losses.spec(algo.loss.name)
        self.aggregate = registry.aggregations.get(algo.aggregation)
        self.kl_fn = registry.kl_estimators.get(algo.kl.estimator)
        # with shared_prefix each group's prompt runs once, so micro-batches keep groups whole; a
        # loss that needs whole groups gets them either way
        soft = rollout.soft_thinking.tokens > 0  # SofT-GRPO: soft steps read their recorded mixtures
        shared = train.shared_prefix and rollout.group_size > 1 and not soft
        self.forward = soft_completion_logprobs if soft else shared_prefix_logprobs if shared else completion_logprobs
        self.whole_groups = shared or self.loss_spec.whole_groups
        trainable = [p for p in model.parameters() if p.requires_grad]
        # by name (grpozoo.training.optimizers); the default, AdamW, is torch's fused kernel
        self.optimizer = build_optimizer(
            train.optimizer.name, train.optimizer.params, trainable, train.learning_rate, train.weight_decay
        )
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            train.lr_scheduler,
            self.optimizer,
            num_warmup_steps=train.warmup_steps,
            num_training_steps=train.steps * algo.num_iterations,
        )
        me = weakref.proxy(self)  # no reference cycle: a dropped trainer frees its model at once
        # one micro-batch's loss as a module's forward: under DDP where several processes learn
        self.loss_module = distributed.wrap(
            distributed.MicroBatchLoss(model, lambda mb, totals, statistics: me.micro_batch_loss(mb, totals, statistics))
        )
        check_critic_run(needs, algo.advantage.name, distributed.world_size())  # what a learned critic trains on
        tools = LearnerTools(lambda batch: me.policy_logprobs(batch), lambda batch: me.policy_entropies(batch),
                             lambda batch: me.reference_logprobs(batch),
                             hidden_states=lambda batch: me.policy_hidden_states(batch), advantage=algo.advantage)
        self.providers = Providers(needs, LEARNER_SIDE, tools)

    # ----------------------------------------------------------------------------- the learning batch
    def prepare(self, batch: Rollouts) -> Rollouts:
        """The batch that learns from the rollout side's learning ``batch``: the learner's on-demand
        fields, advantages (set on ``batch`` too), the after-advantages filters, token weights. A KL
        coefficient on a schedule (``algorithm.kl.schedule``) takes this step's value first."""
        kl = self.algo.kl
        if kl.schedule != "constant":
            self.state["kl_coef"] = scheduled_coef(
                batch.step, batch.total_steps, kl.coef_start, kl.coef, kl.schedule, kl.schedule_fraction
            )
        if batch.batch_size == 0:
            batch.advantages = torch.zeros(0)
            return batch
        self.providers.provide(batch)
        learning = self.advantages(batch)
        for f in self.components.filters(AFTER_ADVANTAGES):
            # dropped rows (e.g. DAPO's overlong ones) counted in their group's statistics; no loss
            if learning.batch_size:
                keep = check_keep(f.config.name, f.fn(learning, **f.config.params), learning.batch_size)
                learning = learning if bool(keep.all()) else learning.select(keep)
        learning.token_weights = self.token_weights(learning)
        return learning

    def advantages(self, batch: Rollouts) -> Rollouts:
        """Run the advantage estimator; returns the batch without the rows the estimator dropped.
        With the KL folded into the reward (``algorithm.kl.mode=reward``) the estimator sees the
        reward with the penalty ``kl_coef · kl`` of the sampling policy already in it, as its
        registration's ``kl_in_reward`` asks: per-token returns or the sequence return."""
        algo = self.algo
        rewards = required(batch.rewards, "batch.rewards", f"advantage estimator {algo.advantage.name!r}")
        if algo.kl.coef > 0 and algo.kl.mode == "reward":
            policy = batch.old_logprobs if batch.old_logprobs is not None else batch.sampling_logprobs
            penalty = self.state["kl_coef"] * self.kl_fn(policy, batch.ref_logprobs)
            kl_in_reward = self.components.advantage_spec.kl_in_reward
            rewards = reward_with_kl(kl_in_reward, rewards, penalty, batch.completion_mask)
        out = self.components.advantage_fn(rewards, batch.group_ids, batch, **algo.advantage.params)
        if not isinstance(out, AdvantageOutput):
            out = AdvantageOutput(out)
        batch.advantages, batch.extras = out.advantages, dict(out.extras)
        if out.keep is not None and not bool(out.keep.all()):
            return batch.select(out.keep)
        return batch

    def token_weights(self, batch: Rollouts) -> torch.Tensor | None:
        """The product of the token-weight components, or None without any."""
        weights = None
        for component, fn in zip(self.algo.token_weights, self.components.token_weight_fns, strict=True):
            w = fn(batch, **component.params).detach()
            weights = w if weights is None else weights * w
        return weights

    # ----------------------------------------------------------------------------- optimisation

    def learn(self, batch: Rollouts, rows: torch.Tensor | None = None) -> dict[str, float]:
        """``num_iterations`` optimiser steps on the batch, then the components' end-of-step updates.
        With several learner processes (:mod:`grpozoo.training.distributed`) every process holds the
        whole ``batch`` and backpropagates ``rows`` of it (by default its share of whole groups)."""
        if batch.batch_size == 0:
            self.warn("every completion was dropped before learning; no update this step")
            return {"loss": float("nan"), "grad_norm": 0.0, "entropy": float("nan")}
        totals = BatchTotals.of(batch.action_mask, self.rollout.max_new_tokens, batch.group_ids)
        if rows is None and distributed.world_size() > 1:
            rows = distributed.own_rows(batch.batch_size, batch.group_ids, distributed.world_size(), distributed.rank())
        if rows is None:
            split = micro_batches(batch, self.train.micro_batch_tokens, self.whole_groups)
        elif len(rows):  # micro-batches of this process's rows, numbered as rows of the whole batch
            own = micro_batches(batch.select(rows), self.train.micro_batch_tokens, self.whole_groups)
            split = [(rows[r], mb) for r, mb in own]
        else:
            split = []
        chunks = [mb for _, mb in split]
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.model.train()
        gap: dict[str, float] = {}
        for iteration in range(self.algo.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            statistics = self.loss_statistics(batch, split, old_is_current=iteration == 0)
            with fused_lora(self.model):  # LoRA layers as one autograd function each
                sums = self.accumulate_gradients(chunks, totals, statistics)
            sums = distributed.reduce_sums(sums, maxima=(GAP_MAX,))
            if iteration == 0:  # the policy that sampled, before any update
                gap = {name: sums.pop(name) for name in (GAP_SUM, GAP_TOKENS, GAP_MAX)}
            grad_norm = distributed.whole(torch.nn.utils.clip_grad_norm_(trainable, self.train.max_grad_norm))
            self.optimizer.step()
            # the fused step writes the weights without counting it in their version counters, which
            # caches of values derived from weights (the sampler's packed layers) check
            increment_version(trainable)
            self.scheduler.step()
        for name in (GAP_SUM, GAP_TOKENS, GAP_MAX):
            sums.pop(name, None)
        out = {"loss": sums.pop("loss"), "grad_norm": float(grad_norm)}
        if gap.get(GAP_TOKENS):  # the sampler's log-probs against the learner's, on the tokens sampled on-policy
            out["sampler/logprob_diff_mean"] = gap[GAP_SUM] / gap[GAP_TOKENS]
            out["sampler/logprob_diff_max"] = gap[GAP_MAX]
        out.update({name: value / max(totals.num_tokens, 1) for name, value in sums.items()})
        self.after_step(out)
        out.update({"kl_coef": self.state["kl_coef"], "entropy_coef": self.state["entropy_coef"]})
        return out

    def after_step(self, metrics: dict[str, float]) -> None:
        """Once per step: the loss's own state update (e.g. a dual variable), then the adaptive
        KL and entropy coefficients."""
        algo = self.algo
        hook = self.loss_spec.after_step
        if hook is not None:
            hook(self.state, metrics, **algo.loss.params)
        if algo.kl.coef > 0 and algo.kl.target is not None:
            self.state["kl_coef"] = adaptive_kl_coef(self.state["kl_coef"], metrics["kl"], algo.kl.target, algo.kl.horizon)
        if algo.entropy.target is not None:
            self.state["entropy_coef"] = adaptive_entropy_coef(
                self.state["entropy_coef"], metrics["entropy"], algo.entropy.target, algo.entropy.adapt_rate
            )

    def loss_statistics(
        self, batch: Rollouts, split: list[tuple[torch.Tensor, Rollouts]], old_is_current: bool
    ) -> list[dict[str, torch.Tensor]] | None:
        """A two-phase loss's statistics over the whole learning ``batch`` (see
        :class:`grpozoo.registry.LossSpec`), cut to each micro-batch of ``split`` (``(rows, sub-batch)``
        pairs from :func:`micro_batches`); None for a loss without statistics. Statistics of the
        current policy get its log-probs from one no-grad forward over the batch, or from
        ``batch.old_logprobs`` when ``old_is_current`` (the policy has not moved since they were
        computed: the first optimiser iteration) and no row learns off-policy."""
        spec, algo = self.loss_spec, self.algo
        if spec.statistics is None and spec.policy_statistics is None:
            return None
        if batch.advantages is None:
            raise ValueError("loss_statistics: the batch has no advantages yet; run the advantage stage first")
        logp = old = None
        if spec.policy_statistics is not None:
            on_policy = batch.off_policy is None or not bool(batch.off_policy.any())
            if old_is_current and on_policy and batch.old_logprobs is not None:
                logp = batch.old_logprobs
            else:
                logp = self.logprobs_without_grad(batch, self.model)
            old = batch.old_logprobs if batch.old_logprobs is not None else logp
            old = guidance.behaviour_logprobs(old, batch.sampling_logprobs, batch.off_policy)
        values = batch_statistics(
            algo.loss.name, algo.loss.params, batch.advantages, batch.action_mask.float(), batch, logp, old
        )
        return [rows_of(values, rows, mb.completion_mask.shape[1]) for rows, mb in split]

    def accumulate_gradients(
        self, chunks: list[Rollouts], totals: BatchTotals, statistics: list[dict[str, torch.Tensor]] | None = None
    ) -> dict[str, float]:
        """Backpropagate the loss of each micro-batch; the gradients add up to the whole batch's,
        because aggregations normalise by whole-batch ``totals`` and a two-phase loss receives its
        whole-batch ``statistics``, one dict per chunk (:meth:`loss_statistics`). Returns the loss
        and the masked sums of the per-token diagnostics."""
        algo = self.algo
        if statistics is None and (self.loss_spec.statistics or self.loss_spec.policy_statistics):
            raise ValueError(
                f"policy loss {algo.loss.name!r} takes statistics over the whole batch: pass "
                f"loss_statistics(batch, split, …) to accumulate_gradients"
            )
        sums: dict[str, float] = defaultdict(float)
        scale = distributed.world_size()  # DDP averages the processes' gradients; they must add up
        # a process without rows this step still joins the gradient exchange, with a zero loss
        items: list[tuple[int, Rollouts | None]] = list(enumerate(chunks)) or [(0, None)]
        if distributed.is_sharded(self.model):  # each forward gathers weights: every process runs as many
            items += [(0, None)] * (distributed.max_over_processes(len(items)) - len(items))
        no_sync = getattr(self.loss_module, "no_sync", None)  # DDP: exchange once, after the last
        for k, (i, mb) in enumerate(items):
            last = k == len(items) - 1
            with no_sync() if no_sync is not None and not last else nullcontext():
                given = statistics[i] if statistics is not None and mb is not None else None
                loss, diagnostics = self.loss_module(mb, totals, given)
                (loss * scale if scale > 1 else loss).backward()
            for name, value in diagnostics.items():
                sums[name] = max(sums[name], value) if name == GAP_MAX else sums[name] + value
        return sums

    def micro_batch_loss(
        self, mb: Rollouts, totals: BatchTotals, statistics: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """One micro-batch's aggregated loss (normalised by the whole batch's ``totals``) and the
        masked sums of its per-token diagnostics, the loss itself and the sampler gap among them."""
        algo = self.algo
        kl_coef, entropy_coef = self.state["kl_coef"], self.state["entropy_coef"]
        entropy_bonus = entropy_coef > 0 or algo.entropy.target is not None
        sums: dict[str, float] = {}
        mask = mb.action_mask.float()  # tool output is in the sequence, never learned
        with self.autocast(self.model):
            logp, entropy = self.forward(
                self.model, mb, self.rollout.temperature, with_entropy=True, entropy_grad=entropy_bonus
            )
        assert entropy is not None  # asked for with with_entropy=True
        on_policy = mb.action_mask.bool().to(logp.device)
        if mb.off_policy is not None:  # a hinted row was sampled from another prompt
            on_policy &= ~mb.off_policy.to(logp.device).unsqueeze(1)
        gap = (logp.detach() - mb.sampling_logprobs.to(logp.device))[on_policy].abs()
        sums[GAP_SUM] = float(gap.sum())
        sums[GAP_TOKENS] = gap.numel()
        sums[GAP_MAX] = float(gap.max()) if gap.numel() else 0.0
        old = mb.old_logprobs if mb.old_logprobs is not None else logp.detach()
        old = guidance.behaviour_logprobs(old, mb.sampling_logprobs, mb.off_policy)  # hinted rows: the sampler's
        given: dict[str, Any] = {}
        if statistics is not None:
            given["statistics"] = {name: value.to(logp.device) for name, value in statistics.items()}
        per_token, diagnostics = self.loss_fn(logp, old, mb.advantages, mask, mb, **algo.loss.params, **given)
        if mb.token_weights is not None:
            per_token = per_token * mb.token_weights
        if mb.ref_logprobs is not None:
            kl = self.kl_fn(logp, mb.ref_logprobs)
            if algo.kl.straight_through:
                kl = straight_through(kl, logp, mb.ref_logprobs)
            if algo.kl.mode == "loss":
                per_token = per_token + kl_coef * kl
            diagnostics["kl"] = kl.detach()
        if entropy_bonus:
            per_token = per_token - entropy_coef * entropy
        diagnostics["entropy"] = entropy.detach()
        loss = self.aggregate(per_token, mask, mb.group_ids, totals)
        sums["loss"] = loss.item()
        for name, value in diagnostics.items():
            sums[name] = float((value * mask).sum())
        return loss, sums

    def autocast(self, model) -> AbstractContextManager[Any]:
        """The learner's forwards' precision: with ``train.compute_dtype=bfloat16``, autocast to
        bfloat16 on the parameters' device (mixed precision: Micikevicius et al. 2017, "Mixed Precision
        Training", arXiv:1710.03740), the weights, gradients and AdamW state staying float32. The
        log-softmax is float32 either way: the fused output layer runs in float32
        (:mod:`grpozoo.training.fused_head`), the model's own logits are cast before it."""
        if self.train.compute_dtype == "float32":
            return nullcontext()
        return torch.autocast(device_type=next(model.parameters()).device.type, dtype=torch.bfloat16)

    @torch.no_grad()
    def logprobs_without_grad(self, batch: Rollouts, model, entropies: bool = False) -> torch.Tensor:
        """Log-probs ``[B, T]`` of the whole batch under ``model`` (or the token entropies, with
        ``entropies``), without building a graph."""
        out = torch.zeros_like(batch.sampling_logprobs)
        with fused_lora(model), self.autocast(model):
            for rows, mb in micro_batches(batch, self.train.micro_batch_tokens, self.whole_groups):
                logp, entropy = self.forward(model, mb, self.rollout.temperature, with_entropy=entropies)
                value = entropy if entropy is not None else logp
                out[rows, : value.shape[1]] = value.to(out.dtype)
        return out

    def policy_logprobs(self, batch: Rollouts) -> torch.Tensor:
        """Log-probs ``[B, T]`` of the batch under the current policy, without a graph."""
        return self.logprobs_without_grad(batch, self.model)

    def policy_entropies(self, batch: Rollouts) -> torch.Tensor:
        """The current policy's (tempered) entropy ``[B, T]`` at each completion token, without a graph."""
        return self.logprobs_without_grad(batch, self.model, entropies=True)

    def policy_hidden_states(self, batch: Rollouts) -> CriticInputs:
        """The current policy's detached last hidden states for a learned critic (no graph)."""
        with fused_lora(self.model), self.autocast(self.model):
            return hidden_states(self.model, batch, self.train.micro_batch_tokens)

    def reference_logprobs(self, batch: Rollouts) -> torch.Tensor:
        """Under LoRA the reference is the base model with adapters disabled: no second copy."""
        if self.reference is not None:
            return self.logprobs_without_grad(batch, self.reference)
        with self.model.disable_adapter():
            return self.logprobs_without_grad(batch, self.model)
