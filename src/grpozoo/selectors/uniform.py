"""Uniform selection: every train row once per epoch, in a seeded order that changes each epoch."""

from __future__ import annotations

import random
from typing import Any

from grpozoo.registry import selectors
from grpozoo.rollouts import Rollouts


@selectors.register("uniform")
class UniformSelector:
    """``next(k)`` returns the next ``k`` row indices; ``state_dict`` is the data position (and the seed)."""

    def __init__(self, num_rows: int, seed: int = 0):
        if num_rows <= 0:
            raise ValueError("the task has no train rows to select from")
        self.num_rows = num_rows
        self.seed = seed
        self.position = 0  # rows handed out so far, over all epochs
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(self.num_rows))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._orders = {epoch: order}  # only the current epoch is kept
        return self._orders[epoch]

    def next(self, k: int) -> list[int]:
        rows = []
        for _ in range(k):
            epoch, offset = divmod(self.position, self.num_rows)
            rows.append(self._order(epoch)[offset])
            self.position += 1
        return rows

    def update(self, rows: list[int], batch: Rollouts) -> None:
        """Uniform selection keeps no statistics."""

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the data position and the seed of the order (older checkpoints hold no seed)."""
        self.position = int(state["position"])
        if state.get("seed", self.seed) != self.seed:
            self.seed, self._orders = int(state["seed"]), {}
