"""Per-prompt running statistics and the base class of the stateful selectors.

A stateful selector keeps its statistics keyed by task-row index (one slot per train row, as
tensors of length ``num_rows``) and its random generator in ``state_dict()``, which the trainer
saves in every checkpoint, so a resumed run selects exactly what an uninterrupted run would.

The observation of a prompt is the per-completion ``signal`` of its group in the step's batch:
``"task_score"`` (the task's verifier score, i.e. the pass rate) or ``"reward"`` (the total
reward). Trackers of success probabilities clamp it to [0, 1]; NaN (a reward that timed out) is
not an observation.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, TypeVar

import torch

from grpozoo.algos.advantages.trackers import beta_tracker_update
from grpozoo.rollouts import Rollouts

SIGNALS = ("task_score", "reward")

# a per-prompt statistic given for every prompt (a tensor) or for one (a float), returned alike
Probability = TypeVar("Probability", torch.Tensor, float)


class BetaTracker:
    """A discounted Beta(α, β) posterior per prompt over its success probability (single-stream SPO;
    shared with VADE and Knapsack RL): ``p̂ = α/(α+β)``.

    Each observation ``r ∈ [0, 1]`` applies SPO's update :func:`beta_tracker_update`,
    ``α ← ρα + r``, ``β ← ρβ + (1 − r)``; with ``ρ = 1`` it is the ordinary posterior count update.
    ``toward_prior`` discounts only the evidence above the prior (``α − α₀``), so forgetting moves
    the posterior back to the prior instead of towards zero counts (VADE's decay). ``once``
    discounts once per visit (a group of observations) instead of once per observation.
    Shapes: ``alpha``, ``beta`` ``[num_rows]`` float64.
    """

    def __init__(self, num_rows: int, prior_alpha: float, prior_beta: float, toward_prior: bool = False):
        if prior_alpha <= 0 or prior_beta <= 0:
            raise ValueError(
                f"Beta prior must be positive, got prior_alpha={prior_alpha}, prior_beta={prior_beta}"
            )
        self.prior_alpha, self.prior_beta, self.toward_prior = (
            float(prior_alpha),
            float(prior_beta),
            toward_prior,
        )
        self.alpha = torch.full((num_rows,), self.prior_alpha, dtype=torch.float64)
        self.beta = torch.full((num_rows,), self.prior_beta, dtype=torch.float64)

    def observe(self, row: int, values: list[float], rho: float, once: bool = False) -> None:
        """Update prompt ``row`` with the observations ``values`` (each in [0, 1]), in order."""
        a, b = float(self.alpha[row]), float(self.beta[row])
        if self.toward_prior:
            a, b = a - self.prior_alpha, b - self.prior_beta
        for i, r in enumerate(values):
            a, b = beta_tracker_update(a, b, r, rho if (i == 0 or not once) else 1.0)
        if self.toward_prior:
            a, b = a + self.prior_alpha, b + self.prior_beta
        self.alpha[row], self.beta[row] = a, b

    def decay(self, rho: float) -> None:
        """Discount every prompt's evidence towards the prior: ``α ← α₀ + ρ(α − α₀)`` (likewise β)."""
        self.alpha = self.prior_alpha + rho * (self.alpha - self.prior_alpha)
        self.beta = self.prior_beta + rho * (self.beta - self.prior_beta)

    def mean(self) -> torch.Tensor:
        """``p̂ [num_rows]``; the prior mean for prompts never observed."""
        return self.alpha / (self.alpha + self.beta)

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha.clone(), "beta": self.beta.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alpha, self.beta = (
            restored(self.alpha, state["alpha"], "alpha"),
            restored(self.beta, state["beta"], "beta"),
        )


class PromptStats:
    """Counts, sums and the latest visit's mean of each prompt's observations.

    ``count [num_rows]`` observations so far, ``total``/``total_sq`` their sum and sum of squares
    (all time), ``latest`` the mean of the most recent visit (NaN: never observed).
    """

    def __init__(self, num_rows: int):
        self.count = torch.zeros(num_rows, dtype=torch.long)
        self.total = torch.zeros(num_rows, dtype=torch.float64)
        self.total_sq = torch.zeros(num_rows, dtype=torch.float64)
        self.latest = torch.full((num_rows,), float("nan"), dtype=torch.float64)

    def observe(self, row: int, values: list[float]) -> None:
        v = torch.tensor(values, dtype=torch.float64)
        self.count[row] += len(values)
        self.total[row] += v.sum()
        self.total_sq[row] += (v**2).sum()
        self.latest[row] = v.mean()

    def std(self) -> torch.Tensor:
        """Sample standard deviation (Bessel-corrected) of all observations; NaN below two."""
        n = self.count.double()
        var = (self.total_sq - self.total**2 / n.clamp(min=1)) / (n - 1).clamp(min=1)
        return torch.where(n >= 2, var.clamp(min=0).sqrt(), torch.full_like(var, float("nan")))

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).clone() for k in ("count", "total", "total_sq", "latest")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("count", "total", "total_sq", "latest"):
            setattr(self, k, restored(getattr(self, k), state[k], k))


def restored(current: torch.Tensor, saved: torch.Tensor, name: str) -> torch.Tensor:
    """A copy of the checkpoint's per-prompt tensor ``saved``, checked against the run's shape."""
    if saved.shape != current.shape:
        raise ValueError(
            f"selector state {name!r} in the checkpoint has shape {tuple(saved.shape)} but this run needs "
            f"{tuple(current.shape)} (one entry per train row): resume with the same task and task.train_size"
        )
    return saved.clone()


def signal_values(batch: Rollouts, signal: str) -> torch.Tensor:
    """The per-completion observation ``[B]`` float64 a selector learns from."""
    values = batch.task_scores if signal == "task_score" else batch.rewards
    if values is None:
        raise ValueError(
            f"selector signal={signal!r}: the batch has no {signal} yet (score it before update)"
        )
    return values.double()


def group_observations(
    batch: Rollouts, signal: str, clamp: bool
) -> Iterator[tuple[int, list[float], torch.Tensor]]:
    """``(row, values, indices)`` for each group (one visit of one prompt) of the batch, in group
    order: the task row (``batch.row_ids``), its completions' signal (NaN dropped; clamped to
    [0, 1] with ``clamp``) and their positions in the batch. Groups with no valid value are skipped."""
    if batch.row_ids is None:
        raise ValueError("a stateful selector needs batch.row_ids (the task row of every completion)")
    values = signal_values(batch, signal)
    if clamp:
        values = values.clamp(0.0, 1.0)
    for group in batch.group_ids.unique().tolist():
        indices = (batch.group_ids == group).nonzero().squeeze(1)
        observed = values[indices]
        valid = ~observed.isnan()
        if valid.any():
            yield int(batch.row_ids[indices[0]]), observed[valid].tolist(), indices[valid]


def weighted_sample(weights: torch.Tensor, k: int, generator: torch.Generator) -> list[int]:
    """``k`` distinct indices drawn in turn with probability ∝ ``weights`` among those not yet
    drawn (``torch.multinomial`` without replacement). Needs ``k`` ≤ the number of positive weights."""
    if k == 0:
        return []
    return torch.multinomial(weights.double(), k, replacement=False, generator=generator).tolist()


class Selector(ABC):
    """Base of the stateful selectors: a seeded ``torch.Generator``, per-prompt statistics, and
    ``state_dict``/``load_state_dict`` covering both.

    Subclasses list their state in ``state_attributes`` (tensors, numbers, or objects with their
    own ``state_dict``), implement ``next(k)``, and ``observe(row, values, indices, batch)`` for
    each group of the scored batch; ``after_update(batch)`` runs once per step after the groups.
    Contract (the trainer's): ``next(k) -> list[int]`` task rows; ``update(rows, batch)`` after
    scoring; optionally ``allocate(rows, group_size) -> list[int]`` rollouts per row.
    """

    name = "selector"
    clamp = True  # observations are success probabilities in [0, 1]
    state_attributes: tuple[str, ...] = ()

    def __init__(self, num_rows: int, seed: int = 0, signal: str = "task_score"):
        if num_rows <= 0:
            raise ValueError("the task has no train rows to select from")
        if signal not in SIGNALS:
            raise ValueError(f"selector {self.name!r}: signal={signal!r} is not one of {SIGNALS}")
        self.num_rows, self.seed, self.signal = num_rows, seed, signal
        self.generator = torch.Generator().manual_seed(seed)

    def check_k(self, k: int) -> None:
        if k > self.num_rows:
            raise ValueError(
                f"selector {self.name!r} draws distinct prompts per step: rollout.prompts_per_step={k} exceeds "
                f"the task's {self.num_rows} train rows; lower prompts_per_step or raise task.train_size"
            )

    def update(self, rows: list[int], batch: Rollouts) -> None:
        for row, values, indices in group_observations(batch, self.signal, self.clamp):
            self.observe(row, values, indices, batch)
        self.after_update(batch)

    @abstractmethod
    def observe(self, row: int, values: list[float], indices: torch.Tensor, batch: Rollouts) -> None:
        """Learn from one group of the scored batch: task ``row``, its completions' ``values`` and
        their positions ``indices`` in ``batch``."""

    def after_update(self, batch: Rollouts) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """Once per step, after every group was observed."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"rng": self.generator.get_state()}
        for name in self.state_attributes:
            value = getattr(self, name)
            if hasattr(value, "state_dict"):
                state[name] = value.state_dict()
            elif isinstance(value, torch.Tensor):
                state[name] = value.clone()
            else:
                state[name] = copy.deepcopy(value)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["rng"])
        for name in self.state_attributes:
            value, saved = getattr(self, name), state[name]
            if hasattr(value, "load_state_dict"):
                value.load_state_dict(saved)
            elif isinstance(value, torch.Tensor):
                setattr(self, name, restored(value, saved, name))
            else:
                setattr(self, name, copy.deepcopy(saved))
