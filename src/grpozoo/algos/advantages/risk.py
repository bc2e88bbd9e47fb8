"""Risk-measure advantages (RiskPO): a bundle-level score against online quantiles of its distribution.

Shapes: ``rewards [B]``, ``group_ids [B]``; a "paper" is the k-th completion of every prompt in a
bundle of consecutive prompts.
"""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.advantages.trackers import component_state
from grpozoo.algos.groups import group_mean
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts


def rvar_advantage(
    scores: torch.Tensor, q_low: float, q_high: float, alpha: float = 0.2, beta: float = 0.8
) -> torch.Tensor:
    """Range-VaR advantage (RiskPO, Ren et al. 2025):
    ``[max(S−q_d,0) − max(S−q_u,0) + q_d − q_u] / (β − α)``.

    Constant ``(q_d − q_u)/(β − α)`` below ``q_d``, linear ``(S − q_u)/(β − α)`` between the
    quantiles, 0 above ``q_u``.
    """
    return ((scores - q_low).clamp(min=0) - (scores - q_high).clamp(min=0) + q_low - q_high) / (beta - alpha)


def cvar_advantage(scores: torch.Tensor, q_low: float, alpha: float = 0.2) -> torch.Tensor:
    """Lower-tail CVaR advantage (RiskPO, Ren et al. 2025): ``−max(q_d − S, 0) / α``."""
    return -(q_low - scores).clamp(min=0) / alpha


def mvar_advantage(
    scores: torch.Tensor,
    q_low: float,
    q_high: float,
    alpha: float = 0.2,
    beta: float = 0.8,
    weight: float = 1.5,
) -> torch.Tensor:
    """Mixed-VaR advantage (RiskPO, Ren et al. 2025): ``(w·A_cvar + A_rvar) / (w + 1)``;
    non-decreasing in ``S``."""
    rvar = rvar_advantage(scores, q_low, q_high, alpha, beta)
    return (weight * cvar_advantage(scores, q_low, alpha) + rvar) / (weight + 1)


def update_quantile(q: float, scores: torch.Tensor, level: float, lr: float = 0.1) -> float:
    """One stochastic-approximation step towards the ``level``-quantile of ``scores`` (RiskPO):
    ``q ← q + lr·(level − mean 1[S < q])``. Its fixed point is the empirical ``level``-quantile."""
    below = (scores < q).double().mean().item() if scores.numel() else level
    return q + lr * (level - below)


def paper_ids_and_scores(
    rewards: torch.Tensor, group_ids: torch.Tensor, bundle_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """RiskPO bundling (Ren et al. 2025): ``(paper id [B], paper score [B])``.

    Prompts (groups, in ``group_ids`` order) are cut into bundles of ``bundle_size`` consecutive
    prompts (the last bundle may be smaller); paper ``k`` of a bundle holds the k-th completion
    (in batch order) of each of its prompts. Its score is ``bundle_size × mean reward`` of the paper,
    i.e. ``S_k = Σ_q r_{q,k}`` for a full bundle, and on the same scale for a smaller bundle or
    when prompts have unequal numbers of completions.
    """
    _, dense = torch.unique(group_ids, return_inverse=True)
    order = torch.sort(dense, stable=True).indices
    counts = torch.bincount(dense)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(dense)
    rank[order] = torch.arange(dense.numel()) - starts[dense[order]]
    width = int(counts.max().item()) if counts.numel() else 1
    papers = (dense // bundle_size) * width + rank
    return papers, bundle_size * group_mean(rewards.double(), papers)


@advantages.register("riskpo", needs_group=False)
def riskpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts | None = None,
    bundle_size: int = 5,
    mode: Literal["mvar", "rvar", "cvar"] = "mvar",
    alpha: float = 0.2,
    beta: float = 0.8,
    weight: float = 1.5,
    quantile_lr: float = 0.1,
) -> torch.Tensor:
    """RiskPO advantage (Ren et al. 2025, "RiskPO: Risk-based Policy Optimization via Verifiable Reward
    for LLM Post-Training", arXiv:2510.00911).

    Bundles ``bundle_size`` consecutive prompts, scores each paper (the k-th completion of every
    prompt of the bundle) by its summed reward ``S``, and gives each completion its paper's
    advantage against the tracked ``α``/``β`` quantiles ``q_d``/``q_u`` of the paper scores:
    ``mode="mvar"`` (default) ``(w·A_cvar + A_rvar)/(w+1)``, ``"rvar"`` or ``"cvar"`` alone
    ("uniform" credit: every response of a paper gets the same value). All values are ≤ 0: papers
    above ``q_u`` get no gradient, the lower tail the most.

    The quantile tracker lives in ``ctx.state["riskpo"]`` as ``{"q_low", "q_high", "updates"}``
    (floats) and is updated once per call, ``q ← q + lr·(level − mean 1[S < q])`` over this step's
    papers, before the advantages are computed. GUESS: ``bundle_size = 5`` (the paper's scripts);
    the tracker starts at the first batch's empirical quantiles; scores of a smaller last bundle
    are rescaled to the full-bundle range (see :func:`paper_ids_and_scores`). Papers span the prompts
    of a bundle, so one completion per prompt is enough (no group needed). Shapes:
    ``rewards [B]``, ``group_ids [B]`` -> ``[B]``.
    """
    if not 0.0 < alpha < beta < 1.0:
        raise ValueError(f"riskpo: need 0 < alpha < beta < 1, got alpha={alpha}, beta={beta}")
    if bundle_size < 1:
        raise ValueError(f"riskpo: bundle_size must be >= 1, got {bundle_size}")
    papers, scores = paper_ids_and_scores(rewards, group_ids, bundle_size)
    unique_papers, paper_of_row = torch.unique(papers, return_inverse=True)
    paper_scores = scores.new_zeros(unique_papers.numel()).scatter_(0, paper_of_row, scores)

    state = component_state(ctx, "riskpo")
    if "q_low" not in state:
        empty = paper_scores.numel() == 0
        state["q_low"] = 0.0 if empty else torch.quantile(paper_scores, alpha).item()
        state["q_high"] = 0.0 if empty else torch.quantile(paper_scores, beta).item()
        state["updates"] = 0
    else:
        state["q_low"] = update_quantile(state["q_low"], paper_scores, alpha, quantile_lr)
        state["q_high"] = update_quantile(state["q_high"], paper_scores, beta, quantile_lr)
        state["updates"] += 1
    q_low, q_high = min(state["q_low"], state["q_high"]), max(state["q_low"], state["q_high"])

    if mode == "mvar":
        out = mvar_advantage(scores, q_low, q_high, alpha, beta, weight)
    elif mode == "rvar":
        out = rvar_advantage(scores, q_low, q_high, alpha, beta)
    elif mode == "cvar":
        out = cvar_advantage(scores, q_low, alpha)
    else:
        raise ValueError(f"riskpo: mode={mode!r} is not one of 'mvar', 'rvar', 'cvar'")
    return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)
