"""Bundle selection: each step's prompts come in bundles of consecutive task rows (RiskPO)."""

from __future__ import annotations

from typing import Any

from grpozoo.registry import selectors
from grpozoo.rollouts import Rollouts
from grpozoo.selectors.uniform import UniformSelector


@selectors.register("riskpo_bundles")
class RiskpoBundleSelector:
    """RiskPO bundles (Ren et al. 2025, "RiskPO: Risk-based Policy Optimization via Verifiable Reward
    for LLM Post-Training", arXiv:2510.00911): the train rows are cut into bundles of
    ``bundle_size`` consecutive rows (the last bundle wraps around to the first rows, so every
    bundle is full), and each step takes ``k / bundle_size`` whole bundles, each bundle's rows
    consecutive and in order, bundles in a seeded order that changes each epoch.

    The ``riskpo`` advantage then cuts the step's prompts (in group order) into bundles of the same
    size, so with equal ``bundle_size`` its bundles are exactly these: questions that sit next to
    each other in the data (in the paper's data, similar ones). ``k`` must be a multiple of
    ``bundle_size``. State: the position in the bundle order.
    GUESS: ``bundle_size = 5`` (the paper's scripts).
    """

    def __init__(self, num_rows: int, seed: int = 0, bundle_size: int = 5):
        if num_rows <= 0:
            raise ValueError("the task has no train rows to select from")
        if bundle_size < 1:
            raise ValueError(f"riskpo_bundles: bundle_size must be >= 1, got {bundle_size}")
        self.num_rows, self.bundle_size = num_rows, bundle_size
        self.num_bundles = -(-num_rows // bundle_size)
        self.order = UniformSelector(self.num_bundles, seed)

    def bundle(self, index: int) -> list[int]:
        """The rows of bundle ``index``: ``index·size … index·size + size − 1`` (mod the row count)."""
        start = index * self.bundle_size
        return [(start + i) % self.num_rows for i in range(self.bundle_size)]

    def next(self, k: int) -> list[int]:
        if k % self.bundle_size:
            size = self.bundle_size
            raise ValueError(
                f"riskpo_bundles: rollout.prompts_per_step={k} is not a multiple of bundle_size={size}; set "
                f"prompts_per_step to a multiple of it (e.g. {size * max(1, round(k / size))}) or the selector's "
                f"bundle_size to a divisor of {k}"
            )
        return [row for b in self.order.next(k // self.bundle_size) for row in self.bundle(b)]

    def update(self, rows: list[int], batch: Rollouts) -> None:
        """Bundles keep no statistics."""

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order.load_state_dict(state["order"])
