"""Curriculum selectors: prompts drawn by how close their latest accuracy is to a target difficulty.

- ``fg_expo``: FG-ExPO's Gaussian curriculum, weight ∝ exp(−(acc − 0.5)²/(2σ²)).
"""

from __future__ import annotations

import math

import torch

from grpozoo.registry import selectors
from grpozoo.rollouts import Rollouts
from grpozoo.selectors.trackers import Probability, PromptStats, Selector, weighted_sample


def gaussian_curriculum_weight(
    accuracy: Probability, center: float = 0.5, sigma: float = 0.2
) -> Probability:
    """FG-ExPO's curriculum weight: ``exp(−(acc − center)²/(2σ²))``; 1 at ``acc = center``,
    symmetric about it (w(0.3) = w(0.7) for center 0.5)."""
    if isinstance(accuracy, torch.Tensor):
        return torch.exp(-((accuracy - center) ** 2) / (2 * sigma**2))
    return math.exp(-((accuracy - center) ** 2) / (2 * sigma**2))


@selectors.register("fg_expo")
class FgExpoSelector(Selector):
    """FG-ExPO Gaussian curriculum sampling (Lin et al. 2026, "FG-ExPO: Frontier-Guided
    Exploration-Prioritized Policy Optimization via Adaptive KL and Gaussian Curriculum",
    arXiv:2605.11403).

    Each step draws ``k`` distinct prompts with probability ∝ ``exp(−(acc_q − 0.5)²/(2σ²))``
    (:func:`gaussian_curriculum_weight`), ``acc_q`` the mean verifier score of the prompt's latest
    group: prompts at the frontier of the model's ability (half solved) come most often. State: the
    latest accuracy per row and the generator. The paper's adaptive KL coefficient is not a selector.

    GUESS: ``sigma = 0.2``; a prompt never observed counts as
    ``unseen_accuracy = 0.5`` (the largest weight, so unexplored prompts come early);
    ``signal="task_score"``.
    """

    name = "fg_expo"
    state_attributes = ("stats",)

    def __init__(
        self,
        num_rows: int,
        seed: int = 0,
        sigma: float = 0.2,
        center: float = 0.5,
        unseen_accuracy: float = 0.5,
        signal: str = "task_score",
    ):
        super().__init__(num_rows, seed, signal)
        if sigma <= 0:
            raise ValueError(f"fg_expo: sigma must be > 0, got {sigma}")
        if not 0.0 <= unseen_accuracy <= 1.0:
            raise ValueError(f"fg_expo: unseen_accuracy must be in [0, 1], got {unseen_accuracy}")
        self.sigma, self.center, self.unseen_accuracy = sigma, center, unseen_accuracy
        self.stats = PromptStats(num_rows)

    def weights(self) -> torch.Tensor:
        accuracy = self.stats.latest.nan_to_num(self.unseen_accuracy)
        # a tiny floor keeps every prompt drawable even far from the centre
        return gaussian_curriculum_weight(accuracy, self.center, self.sigma).clamp(min=1e-12)

    def next(self, k: int) -> list[int]:
        self.check_k(k)
        return weighted_sample(self.weights(), k, self.generator)

    def observe(self, row: int, values: list[float], indices: torch.Tensor, batch: Rollouts) -> None:
        self.stats.observe(row, values)
