"""Replay selection: prompts whose groups carried a learning signal come back (VL-Rethinker)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from grpozoo.registry import selectors
from grpozoo.rollouts import Rollouts
from grpozoo.selectors.trackers import Selector, weighted_sample
from grpozoo.selectors.uniform import UniformSelector


def mean_abs_advantage(values: torch.Tensor, tolerance: float = 1e-6, eps: float = 1e-6) -> float:
    """Mean ``|A|`` of one group's GRPO advantages ``A = (r − mean)/(std + eps)`` (Bessel-corrected
    std), from its rewards ``[G]``; 0 when the group's reward spread is at most ``tolerance``
    (all-equal rewards: every advantage is 0) or it has a single member."""
    if values.numel() < 2 or float(values.max() - values.min()) <= tolerance:
        return 0.0
    return float(((values - values.mean()).abs() / (values.std() + eps)).mean())


@selectors.register("vl_rethinker_ssr")
class SelectiveReplaySelector(Selector):
    """VL-Rethinker Selective Sample Replay at the prompt level (Wang et al. 2025, "VL-Rethinker:
    Incentivizing Self-Reflection of Vision-Language Models with Reinforcement Learning",
    arXiv:2504.08837).

    A replay buffer holds the prompts whose latest group had a non-zero advantage, each with its
    priority ``|A|`` = the mean absolute GRPO advantage of that group (:func:`mean_abs_advantage`);
    a prompt whose latest group is all-equal leaves the buffer, so it never holds a ``|A| = 0``
    entry. The buffer keeps the ``capacity`` most recently refreshed prompts. When a step's batch
    had ``m`` groups without signal, the next step tops up: ``min(m, ⌊max_replay_fraction·k⌋,
    buffer size)`` of its ``k`` prompts are drawn from the buffer with probability ∝ ``|A|^alpha``
    (distinct, not among the step's fresh prompts) and the rest come in the uniform epoch order.
    State: the data position, per-row priority (0 = not in the buffer) and refresh stamp, the
    shortfall of the last step, and the generator.

    The paper replays the stored samples themselves (off-policy, their ratio clipped); here the
    replayed prompts are generated again by the current policy, so they stay on-policy and the
    trainer needs no off-policy batch. Forced rethinking is a generation feature, not a selector.
    GUESS: ``alpha = 1``, ``capacity = 256``,
    ``max_replay_fraction = 0.5``, the shortfall rule above, ``signal="reward"`` (the advantage is
    of the reward), ``tolerance = 1e-6`` for "all-equal".
    """

    name = "vl_rethinker_ssr"
    clamp = False
    state_attributes = ("order", "priority", "stamp", "updates", "shortfall")

    def __init__(
        self,
        num_rows: int,
        seed: int = 0,
        alpha: float = 1.0,
        capacity: int = 256,
        max_replay_fraction: float = 0.5,
        tolerance: float = 1e-6,
        signal: str = "reward",
    ):
        super().__init__(num_rows, seed, signal)
        if alpha < 0:
            raise ValueError(f"vl_rethinker_ssr: alpha must be >= 0, got {alpha}")
        if capacity < 1:
            raise ValueError(f"vl_rethinker_ssr: capacity must be >= 1, got {capacity}")
        if not 0.0 <= max_replay_fraction <= 1.0:
            raise ValueError(
                f"vl_rethinker_ssr: max_replay_fraction must be in [0, 1], got {max_replay_fraction}"
            )
        self.alpha, self.capacity, self.max_replay_fraction, self.tolerance = (
            alpha,
            capacity,
            max_replay_fraction,
            tolerance,
        )
        self.order = UniformSelector(num_rows, seed)
        self.priority = torch.zeros(num_rows, dtype=torch.float64)
        self.stamp = torch.full((num_rows,), -1, dtype=torch.long)
        self.updates = 0
        self.shortfall = 0
        self.last_replayed: list[int] = []

    def buffer(self) -> list[int]:
        return self.priority.nonzero().squeeze(1).tolist()

    def draw_replay(self, m: int, exclude: Sequence[int] = ()) -> list[int]:
        """``m`` distinct buffered prompts (fewer if the buffer runs out) drawn ∝ ``|A|^alpha``."""
        weights = torch.where(self.priority > 0, self.priority**self.alpha, torch.zeros_like(self.priority))
        weights[list(exclude)] = 0.0
        return weighted_sample(weights, min(m, int((weights > 0).sum())), self.generator)

    def next(self, k: int) -> list[int]:
        wanted = min(self.shortfall, int(self.max_replay_fraction * k), len(self.buffer()))
        fresh = self.order.next(k - wanted)
        self.last_replayed = self.draw_replay(wanted, exclude=fresh)
        fresh += self.order.next(wanted - len(self.last_replayed))
        return fresh + self.last_replayed

    def update(self, rows: list[int], batch: Rollouts) -> None:
        self.updates += 1
        self.shortfall = 0
        super().update(rows, batch)

    def observe(self, row: int, values: list[float], indices: torch.Tensor, batch: Rollouts) -> None:
        priority = mean_abs_advantage(torch.tensor(values, dtype=torch.float64), self.tolerance)
        self.priority[row] = priority
        self.stamp[row] = self.updates
        self.shortfall += priority == 0.0

    def after_update(self, batch: Rollouts) -> None:
        held = self.buffer()
        if len(held) > self.capacity:
            held.sort(key=lambda r: (int(self.stamp[r]), float(self.priority[r])), reverse=True)
            self.priority[held[self.capacity :]] = 0.0
