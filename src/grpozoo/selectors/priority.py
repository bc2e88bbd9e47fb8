"""Priority selectors: prompts drawn by a score of their running statistics, favouring prompts whose
outcome is still uncertain (success rate near 0.5), where a group carries the most signal.

- ``spo_priority``: weight √(p̂(1−p̂)) + 0.05 from SPO's per-prompt Beta tracker.
- ``vade``: Thompson sampling from a Beta posterior with two-scale decay towards the prior.
- ``mmr1_vas``: a share λ of the prompts by Variance Promotion Score, the rest uniform.
"""

from __future__ import annotations

import math

import torch

from grpozoo.registry import selectors
from grpozoo.rollouts import Rollouts
from grpozoo.selectors.trackers import BetaTracker, Probability, PromptStats, Selector, weighted_sample


def spo_priority_weight(p: Probability, floor: float = 0.05) -> Probability:
    """SPO's sampling weight: ``√(p̂(1−p̂)) + floor``; largest (0.55) at p̂ = 0.5, never below ``floor``."""
    if isinstance(p, torch.Tensor):
        return (p * (1 - p)).clamp(min=0).sqrt() + floor
    return math.sqrt(max(p * (1 - p), 0.0)) + floor


@selectors.register("spo_priority")
class SpoPrioritySelector(Selector):
    """SPO prioritised sampling (Xu & Ding 2025, "Single-stream Policy Optimization", arXiv:2509.13232):
    each step draws ``k`` distinct prompts with probability ∝ ``√(p̂(1−p̂)) + 0.05``.

    ``p̂ = α/(α+β)`` comes from a per-prompt Beta tracker updated with every observation ``r``
    (clamped to [0, 1]) as ``α ← ρα + r``, ``β ← ρβ + (1 − r)`` — the same update
    (:func:`~grpozoo.algos.advantages.trackers.beta_tracker_update`) and defaults as the
    ``spo_tracker`` advantage, so with ``signal="reward"`` both trackers agree. State: ``alpha``,
    ``beta [num_rows]`` and the generator.

    ``rho`` is fixed at 0.96 (the paper's KL-adaptive ρ at zero divergence). GUESS: unseen prompts
    start at the prior ``(0.5, 0.5)`` (p̂ = 0.5, the largest weight) instead of offline samples;
    ``signal="task_score"`` (the verifier's pass rate).
    """

    name = "spo_priority"
    state_attributes = ("tracker",)

    def __init__(
        self,
        num_rows: int,
        seed: int = 0,
        rho: float = 0.96,
        floor: float = 0.05,
        prior_alpha: float = 0.5,
        prior_beta: float = 0.5,
        signal: str = "task_score",
    ):
        super().__init__(num_rows, seed, signal)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"spo_priority: rho must be in [0, 1], got {rho}")
        if floor <= 0:
            raise ValueError(f"spo_priority: floor must be > 0 so every prompt can be drawn, got {floor}")
        self.rho, self.floor = rho, floor
        self.tracker = BetaTracker(num_rows, prior_alpha, prior_beta)

    def weights(self) -> torch.Tensor:
        return spo_priority_weight(self.tracker.mean(), self.floor)

    def next(self, k: int) -> list[int]:
        self.check_k(k)
        return weighted_sample(self.weights(), k, self.generator)

    def observe(self, row: int, values: list[float], indices: torch.Tensor, batch: Rollouts) -> None:
        self.tracker.observe(row, values, self.rho)


def sample_beta(alpha: torch.Tensor, beta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Draws ``p̃ ~ Beta(α, β)`` elementwise from ``generator`` (as ``X/(X+Y)``, X ~ Γ(α), Y ~ Γ(β))."""
    x = torch._standard_gamma(alpha, generator=generator)  # what torch.distributions.Beta uses
    y = torch._standard_gamma(beta, generator=generator)
    return x / (x + y).clamp(min=torch.finfo(x.dtype).tiny)


@selectors.register("vade")
class VadeSelector(Selector):
    """VADE Thompson sampling (Hu et al. 2025, "VADE: Variance-Aware Dynamic Sampling via Online
    Sample-Level Difficulty Estimation for Multimodal RL", arXiv:2511.18902).

    Each prompt keeps a Beta(α, β) posterior over its success probability, updated with its
    rollouts' successes and failures (observations clamped to [0, 1]). ``next(k)`` draws a
    candidate pool of ``pool_factor·k`` prompts uniformly (all rows when ``pool_factor`` is 0 or the
    pool would cover them), samples ``p̃ ~ Beta(α, β)`` for each candidate and keeps the ``k`` with
    the largest ``p̃(1 − p̃)`` (closest to 0.5): a prompt that always succeeds (or always fails) is
    picked rarely, an uncertain one often.

    Two-scale decay towards the prior ``Beta(prior_alpha, prior_beta)``: at every update all
    prompts' evidence shrinks by ``global_decay`` (the slow scale: estimates of prompts not seen for
    long return to the prior), and a prompt's evidence shrinks by ``local_decay`` each time it is
    observed again, before its new counts are added (the fast scale). State: ``alpha``, ``beta
    [num_rows]`` and the generator.

    GUESS: the selection rule top-k by ``p̃(1 − p̃)`` (the minimal form of
    the information-gain criterion); ``local_decay = 0.9``, ``global_decay = 0.99``;
    ``pool_factor = 4``; prior ``Beta(1, 1)``; ``signal="task_score"``.
    """

    name = "vade"
    state_attributes = ("tracker",)

    def __init__(
        self,
        num_rows: int,
        seed: int = 0,
        local_decay: float = 0.9,
        global_decay: float = 0.99,
        pool_factor: int = 4,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
        signal: str = "task_score",
    ):
        super().__init__(num_rows, seed, signal)
        for key, value in (("local_decay", local_decay), ("global_decay", global_decay)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"vade: {key} must be in [0, 1], got {value}")
        if pool_factor < 0:
            raise ValueError(
                f"vade: pool_factor must be >= 0 (0: every row is a candidate), got {pool_factor}"
            )
        self.local_decay, self.global_decay, self.pool_factor = local_decay, global_decay, pool_factor
        self.tracker = BetaTracker(num_rows, prior_alpha, prior_beta, toward_prior=True)

    def next(self, k: int) -> list[int]:
        self.check_k(k)
        pool_size = self.pool_factor * k
        if self.pool_factor == 0 or pool_size >= self.num_rows:
            pool = torch.arange(self.num_rows)
        else:
            pool = torch.randperm(self.num_rows, generator=self.generator)[:pool_size]
        draws = sample_beta(self.tracker.alpha[pool], self.tracker.beta[pool], self.generator)
        order = torch.argsort(draws * (1 - draws), descending=True, stable=True)
        return pool[order[:k]].tolist()

    def update(self, rows: list[int], batch: Rollouts) -> None:
        self.tracker.decay(self.global_decay)
        super().update(rows, batch)

    def observe(self, row: int, values: list[float], indices: torch.Tensor, batch: Rollouts) -> None:
        self.tracker.observe(row, values, self.local_decay, once=True)


def outcome_variance(p: Probability) -> Probability:
    """MMR1's Outcome Variance Score: ``OVS = p̂(1 − p̂)``, 0.25 at p̂ = 0.5, 0 at p̂ ∈ {0, 1}."""
    return p * (1 - p)


def trajectory_diversity(completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> float:
    """MMR1's Trajectory Diversity Score of one group ``[G, T]``: the mean pairwise Jaccard
    distance ``1 − |Sᵢ ∩ Sⱼ| / |Sᵢ ∪ Sⱼ|`` between the sets of token ids of the completions.

    1 when no two completions share a token, 0 when all use the same tokens; 0 for a group of one.
    GUESS: the paper's summary leaves the exact dissimilarity open ("mean pairwise dissimilarity").
    """
    sets = [set(ids[mask.bool()].tolist()) for ids, mask in zip(completion_ids, completion_mask, strict=True)]
    distances = []
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            union = len(sets[i] | sets[j])
            distances.append(1.0 - len(sets[i] & sets[j]) / union if union else 0.0)
    return sum(distances) / len(distances) if distances else 0.0


@selectors.register("mmr1_vas")
class Mmr1VasSelector(Selector):
    """MMR1 Variance-Aware Sampling (Leng et al. 2025, "MMR1: Enhancing Multimodal Reasoning with
    Variance-Aware Sampling and Open Resources", arXiv:2509.21268).

    Variance Promotion Score per prompt ``VPS = outcome_weight·OVS + diversity_weight·TDS`` with
    ``OVS = p̂(1 − p̂)`` (:func:`outcome_variance`, p̂ the mean signal of the prompt's latest group)
    and TDS the latest group's trajectory diversity (:func:`trajectory_diversity`). Each step draws
    a share ``fraction`` (λ) of the ``k`` prompts with probability ∝ VPS (distinct, positive VPS
    only) and the rest uniformly at random among the other rows. The number drawn by VPS is
    ``⌊λk⌋`` plus one with probability ``λk − ⌊λk⌋``, so its expected share is exactly λ; with
    λ = 0 the sampler is uniform, with λ = 1 a prompt with VPS = 0 is never drawn (unless fewer
    than k prompts have a positive VPS, when the uniform share fills the rest). The VPS used for
    sampling is refreshed every ``refresh_every`` steps. ``last_vps_count`` is how many of the last
    ``next`` call's prompts came from the VPS share. State: the latest p̂ and TDS per row, the VPS
    snapshot, the step counter and the generator.

    GUESS: ``fraction = 0.5``; ``outcome_weight = 1``,
    ``diversity_weight = 0.25`` (so TDS ∈ [0, 1] weighs like the OVS range [0, 0.25]);
    ``refresh_every = 1``; TDS as the token-set Jaccard distance; a prompt never observed scores the
    largest possible VPS (``0.25·outcome_weight + diversity_weight``), so unexplored prompts come
    first; ``signal="task_score"``.
    """

    name = "mmr1_vas"
    state_attributes = ("stats", "diversity", "snapshot", "calls")

    def __init__(
        self,
        num_rows: int,
        seed: int = 0,
        fraction: float = 0.5,
        outcome_weight: float = 1.0,
        diversity_weight: float = 0.25,
        refresh_every: int = 1,
        signal: str = "task_score",
    ):
        super().__init__(num_rows, seed, signal)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"mmr1_vas: fraction (λ) must be in [0, 1], got {fraction}")
        if outcome_weight < 0 or diversity_weight < 0 or outcome_weight + diversity_weight == 0:
            raise ValueError(
                f"mmr1_vas: outcome_weight={outcome_weight} and diversity_weight={diversity_weight} must be "
                f">= 0 and not both 0"
            )
        if refresh_every < 1:
            raise ValueError(f"mmr1_vas: refresh_every must be >= 1, got {refresh_every}")
        self.fraction, self.refresh_every = fraction, refresh_every
        self.outcome_weight, self.diversity_weight = outcome_weight, diversity_weight
        self.stats = PromptStats(num_rows)
        self.diversity = torch.full((num_rows,), float("nan"), dtype=torch.float64)
        self.snapshot = self.scores()
        self.calls = 0
        self.last_vps_count = 0

    def scores(self) -> torch.Tensor:
        """Current VPS ``[num_rows]`` from the latest statistics."""
        vps = (
            self.outcome_weight * outcome_variance(self.stats.latest) + self.diversity_weight * self.diversity
        )
        unseen = 0.25 * self.outcome_weight + self.diversity_weight
        return torch.where(vps.isnan(), torch.full_like(vps, unseen), vps).clamp(min=0)

    def next(self, k: int) -> list[int]:
        self.check_k(k)
        if self.calls % self.refresh_every == 0:
            self.snapshot = self.scores()
        self.calls += 1
        share = self.fraction * k
        wanted = int(share) + int(
            bool(torch.rand((), generator=self.generator, dtype=torch.float64) < share - int(share))
        )
        vps = self.snapshot
        chosen = weighted_sample(vps, min(wanted, int((vps > 0).sum())), self.generator)
        self.last_vps_count = len(chosen)
        rest = torch.ones(self.num_rows, dtype=torch.float64)
        rest[chosen] = 0.0
        return chosen + weighted_sample(rest, k - len(chosen), self.generator)

    def observe(self, row: int, values: list[float], indices: torch.Tensor, batch: Rollouts) -> None:
        self.stats.observe(row, values)
        self.diversity[row] = trajectory_diversity(
            batch.completion_ids[indices], batch.completion_mask[indices]
        )
