"""Budget selectors: how many rollouts each prompt of the step gets, under a fixed total.

The prompts themselves come in the uniform epoch order; ``allocate(rows, group_size)`` splits the
step's budget ``len(rows) × group_size`` into per-prompt counts between ``n_min`` and ``n_max``.

- ``knapsack_rl``: maximise Σ v(Nᵢ, pᵢ) with v(N, p) = [1 − pᴺ − (1−p)ᴺ]·p(1−p)².
- ``xrpo``: extra rollouts to the prompts whose confidence interval shrinks most, plus a UCB bonus.
"""

from __future__ import annotations

import functools
import heapq
import math
import statistics
from collections.abc import Callable

import torch

from grpozoo.registry import selectors
from grpozoo.rollouts import Rollouts
from grpozoo.selectors.trackers import BetaTracker, PromptStats, Selector
from grpozoo.selectors.uniform import UniformSelector


def greedy_allocate(
    gain: Callable[[int, int], float],
    num: int,
    budget: int,
    n_min: int,
    n_max: int | None,
    who: str = "allocation",
) -> list[int]:
    """Counts ``[num]`` summing to ``budget`` with ``n_min ≤ Nᵢ ≤ n_max`` (no cap when ``None``):
    every prompt starts at ``n_min`` and each remaining rollout goes to the prompt whose next
    rollout gains most, ``gain(i, Nᵢ)`` (the value of giving prompt ``i`` its (Nᵢ+1)-th rollout).
    Ties go to the prompt with fewer rollouts, then the lower index, so equal prompts share evenly.

    When every prompt's marginal gain is non-increasing in N (a concave value), this greedy choice
    is the exact optimum of the knapsack ``max Σ vᵢ(Nᵢ)`` s.t. ``Σ Nᵢ = budget``.
    """
    if n_min < 1:
        raise ValueError(f"{who}: n_min must be >= 1 (every prompt needs a rollout), got {n_min}")
    if n_max is not None and n_max < n_min:
        raise ValueError(f"{who}: n_max={n_max} is below n_min={n_min}")
    if num * n_min > budget:
        raise ValueError(
            f"{who}: n_min={n_min} rollouts for each of {num} prompts exceeds the step's budget of {budget} "
            f"(rollout.prompts_per_step × rollout.group_size); lower n_min or raise rollout.group_size"
        )
    if n_max is not None and num * n_max < budget:
        raise ValueError(
            f"{who}: n_max={n_max} rollouts for each of {num} prompts cannot use the step's budget of {budget} "
            f"(rollout.prompts_per_step × rollout.group_size); raise n_max or lower rollout.group_size"
        )
    counts = [n_min] * num
    heap = [(-gain(i, n_min), n_min, i) for i in range(num) if n_max is None or n_min < n_max]
    heapq.heapify(heap)
    for _ in range(budget - num * n_min):
        _, _, i = heapq.heappop(heap)
        counts[i] += 1
        if n_max is None or counts[i] < n_max:
            heapq.heappush(heap, (-gain(i, counts[i]), counts[i], i))
    return counts


def knapsack_value(n: int, p: float) -> float:
    """Knapsack RL's value of ``n`` rollouts for a prompt of success rate ``p``:
    ``v(n, p) = [1 − pⁿ − (1−p)ⁿ]·p(1−p)²`` — the chance the group has a non-zero gradient times
    the information gain. Non-decreasing in n; 0 at p ∈ {0, 1}."""
    return (1.0 - p**n - (1.0 - p) ** n) * p * (1.0 - p) ** 2


def knapsack_allocation(
    p: list[float], budget: int, n_min: int = 2, n_max: int | None = None, who: str = "knapsack_rl"
) -> list[int]:
    """Rollouts per prompt maximising ``Σ v(Nᵢ, pᵢ)`` (:func:`knapsack_value`) with ``Σ Nᵢ = budget``,
    ``n_min ≤ Nᵢ ≤ n_max``, by greedy marginal gains (exact here: the marginal gain
    ``p(1−p)²·[pⁿ(1−p) + (1−p)ⁿp]`` decreases in n). Prompts with p ∈ {0, 1} gain nothing and get
    ``n_min`` unless every prompt is at zero gain, when the rest is shared evenly."""
    return greedy_allocate(
        lambda i, n: knapsack_value(n + 1, p[i]) - knapsack_value(n, p[i]), len(p), budget, n_min, n_max, who
    )


def check_bounds(who: str, n_min: int, n_max: int | None) -> None:
    if n_min < 1:
        raise ValueError(f"{who}: n_min must be >= 1, got {n_min}")
    if n_max is not None and n_max < n_min:
        raise ValueError(f"{who}: n_max={n_max} is below n_min={n_min}")


@selectors.register("knapsack_rl")
class KnapsackSelector(Selector):
    """Knapsack RL budget allocation (Li et al. 2025, "Knapsack RL: Unlocking Exploration of LLMs via
    Optimizing Budget Allocation", arXiv:2509.25849).

    Prompts come in the uniform epoch order; ``allocate(rows, group_size)`` gives prompt ``i``
    ``Nᵢ`` rollouts maximising ``Σ v(Nᵢ, pᵢ)`` (:func:`knapsack_allocation`) under the step's budget
    ``len(rows) × group_size`` with ``n_min ≤ Nᵢ ≤ n_max``. ``pᵢ`` is the posterior mean of a Beta
    tracker (the one single-stream SPO uses) over the prompt's success rate; with ``memory = 0`` it holds only
    the latest visit, ``p = (s + prior_alpha)/(G + prior_alpha + prior_beta)`` for s successes out of
    G (the paper's "success rate from the last epoch"), with ``memory = ρ`` older visits count ρ
    per visit. State: the data position, ``alpha``, ``beta [num_rows]`` and the generator.

    GUESS (the fallback for p ∈ {0, 1}): the Beta prior ``(0.5, 0.5)``
    keeps p strictly inside (0, 1), so a prompt never solved gets a small p and many rollouts, one
    always solved a p near 1 and few; an unseen prompt has p = 0.5. Also GUESS: ``n_min = 2`` (a
    group needs two rollouts for a non-zero advantage), ``n_max = None`` (no cap but the budget),
    cost = number of rollouts, ``memory = 0``, ``signal="task_score"``.
    """

    name = "knapsack_rl"
    state_attributes = ("order", "tracker")

    def __init__(
        self,
        num_rows: int,
        seed: int = 0,
        n_min: int = 2,
        n_max: int | None = None,
        memory: float = 0.0,
        prior_alpha: float = 0.5,
        prior_beta: float = 0.5,
        signal: str = "task_score",
    ):
        super().__init__(num_rows, seed, signal)
        check_bounds(self.name, n_min, n_max)
        if not 0.0 <= memory <= 1.0:
            raise ValueError(f"knapsack_rl: memory must be in [0, 1], got {memory}")
        self.n_min, self.n_max, self.memory = n_min, n_max, memory
        self.order = UniformSelector(num_rows, seed)
        self.tracker = BetaTracker(num_rows, prior_alpha, prior_beta, toward_prior=True)

    def next(self, k: int) -> list[int]:
        return self.order.next(k)

    def allocate(self, rows: list[int], group_size: int) -> list[int]:
        p = self.tracker.mean()[rows].tolist()
        return knapsack_allocation(p, len(rows) * group_size, self.n_min, self.n_max, self.name)

    def observe(self, row: int, values: list[float], indices: torch.Tensor, batch: Rollouts) -> None:
        self.tracker.observe(row, values, self.memory, once=True)


def student_t_two_sided(t: float, df: int) -> float:
    """``P(|T| < t)`` for Student's t with integer ``df`` ≥ 1, in closed form (Abramowitz & Stegun
    26.7.3–4, with θ = atan(t/√df))."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        term = total = math.cos(theta) if df > 1 else 0.0
        for k in range(3, df - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        return 2.0 / math.pi * (theta + s * total)
    term = total = 1.0
    for k in range(2, df - 1, 2):
        term *= c2 * (k - 1) / k
        total += term
    return s * total


@functools.lru_cache(maxsize=4096)
def student_t_quantile(q: float, df: int) -> float:
    """The ``q``-quantile (q ≥ 0.5) of Student's t with ``df`` degrees of freedom, by bisection on
    the exact CDF (the normal quantile beyond 1000 degrees of freedom, within 0.1%)."""
    if not 0.5 <= q < 1.0:
        raise ValueError(f"student_t_quantile: q must be in [0.5, 1), got {q}")
    if df > 1000:
        return statistics.NormalDist().inv_cdf(q)
    target = 2.0 * q - 1.0
    lo, hi = 0.0, 1.0
    while student_t_two_sided(hi, df) < target:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if student_t_two_sided(mid, df) < target else (lo, mid)
        if hi - lo < 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


def confidence_half_width(n: int, std: float, significance: float = 0.05) -> float:
    """XRPO's ``h(n) = t_{1−a/2, n−1}·s/√n``; infinite below two rollouts."""
    if n < 2:
        return math.inf
    return student_t_quantile(1.0 - significance / 2.0, n - 1) * std / math.sqrt(n)


def xrpo_priority(n: int, std: float, total: int, significance: float = 0.05, ucb_coef: float = 0.1) -> float:
    """XRPO's rollout priority: ``Π = [h(n) − h(n+1)] + λ·√(log(1+T)/n)`` for a prompt with n
    rollouts and reward std s, T rollouts in all so far. Decreases in n at fixed s; infinite for
    n = 1 (no spread estimate yet)."""
    if n < 1:
        raise ValueError(f"xrpo_priority: n must be >= 1, got {n}")
    exploit = confidence_half_width(n, std, significance) - confidence_half_width(n + 1, std, significance)
    return exploit + ucb_coef * math.sqrt(math.log1p(total) / n)


@selectors.register("xrpo")
class XrpoSelector(Selector):
    """XRPO rollout allocation (Bamba et al. 2025, "XRPO: Pushing the limits of GRPO with Targeted
    Exploration and Exploitation", arXiv:2510.06672).

    Prompts come in the uniform epoch order; ``allocate(rows, group_size)`` starts every prompt at
    ``n_min`` and gives each further rollout of the budget ``len(rows) × group_size`` to the
    prompt of highest priority ``Π_q = [h_q(n_q) − h_q(n_q+1)] + λ√(log(1+T)/n_q)``
    (:func:`xrpo_priority`): ``n_q`` counts the prompt's rollouts in earlier steps plus those given
    so far in this one, ``s_q`` is the sample std of its past rewards, ``T`` the run's rollouts so
    far. Π decreases in n_q, so prompts with a wide confidence interval and few rollouts get more.
    State: the data position, per-row counts and reward sums (all time) and the generator.

    The paper allocates in rounds inside a step (a first round, then extra rollouts by Π); here
    the first round's role is played by the prompt's earlier visits, since counts are fixed before
    generation. Its in-context seeding and novelty sharpening are other components.
    GUESS: ``ucb_coef`` (λ) = 0.1, ``significance`` (a) = 0.05, ``prior_std = 0.5`` (the largest
    std of a 0/1 reward) for prompts with fewer than two past rollouts, ``n_min = 2``,
    ``n_max = None``; ``signal="reward"`` (raw, not clamped: the entry speaks of the reward std).
    """

    name = "xrpo"
    clamp = False
    state_attributes = ("order", "stats")

    def __init__(
        self,
        num_rows: int,
        seed: int = 0,
        n_min: int = 2,
        n_max: int | None = None,
        ucb_coef: float = 0.1,
        significance: float = 0.05,
        prior_std: float = 0.5,
        signal: str = "reward",
    ):
        super().__init__(num_rows, seed, signal)
        check_bounds(self.name, n_min, n_max)
        if not 0.0 < significance < 1.0:
            raise ValueError(f"xrpo: significance must be in (0, 1), got {significance}")
        if ucb_coef < 0 or prior_std < 0:
            raise ValueError(f"xrpo: ucb_coef={ucb_coef} and prior_std={prior_std} must be >= 0")
        self.n_min, self.n_max = n_min, n_max
        self.ucb_coef, self.significance, self.prior_std = ucb_coef, significance, prior_std
        self.order = UniformSelector(num_rows, seed)
        self.stats = PromptStats(num_rows)

    def next(self, k: int) -> list[int]:
        return self.order.next(k)

    def allocate(self, rows: list[int], group_size: int) -> list[int]:
        past = self.stats.count[rows].tolist()
        std = [self.prior_std if math.isnan(s) else s for s in self.stats.std()[rows].tolist()]
        total = int(self.stats.count.sum())

        def gain(i: int, n: int) -> float:
            return xrpo_priority(past[i] + n, std[i], total, self.significance, self.ucb_coef)

        return greedy_allocate(gain, len(rows), len(rows) * group_size, self.n_min, self.n_max, self.name)

    def observe(self, row: int, values: list[float], indices: torch.Tensor, batch: Rollouts) -> None:
        self.stats.observe(row, values)
