"""Advantage estimators whose baseline is a per-prompt tracker kept across steps in ``ctx.state``.

Shapes: ``rewards [B]``, ``group_ids [B]``, ``ctx.row_ids [B]`` (the task row, stable across steps).
"""

from __future__ import annotations

from typing import Any

import torch

from grpozoo.algos.groups import batch_whiten
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts


def component_state(ctx: Rollouts | None, name: str) -> dict[str, Any]:
    """The component's own dict in the run's persistent ``ctx.state`` (created on first use).

    Without a ctx (a direct call in a test) the state is a fresh dict that is not kept.
    """
    if ctx is None:
        return {}
    return ctx.state.setdefault(name, {})


def rho_from_divergence(
    divergence: float | torch.Tensor,
    d_half: float = 0.06,
    rho_min: float = 0.875,
    rho_max: float = 0.96,
) -> float | torch.Tensor:
    """Single-stream SPO's KL-adaptive forgetting factor (Xu & Ding 2025):
    ``ρ = clip(2^(−D/D_half), ρ_min, ρ_max)``.

    ``D`` is the mean-token |Δ log-prob| between the policy that last scored a prompt's stored
    response and the current policy; ``D = 0`` gives ``ρ = ρ_max = 0.96`` (the least forgetting),
    a large divergence ``ρ_min``. GUESS: ``rho_min = 0.875`` (the paper's abstract does not give it).
    Works on floats and on tensors alike.
    """
    if isinstance(divergence, torch.Tensor):
        return torch.exp2(-divergence / d_half).clamp(rho_min, rho_max)
    return min(max(2.0 ** (-float(divergence) / d_half), rho_min), rho_max)


def beta_tracker_update(alpha: float, beta: float, reward: float, rho: float) -> tuple[float, float]:
    """One discounted Beta-posterior update (single-stream SPO): ``α ← ρα + r``, ``β ← ρβ + (1 − r)``.

    With ``ρ = 1`` this is the ordinary Beta posterior count update for a Bernoulli observation.
    """
    return rho * alpha + reward, rho * beta + (1.0 - reward)


@advantages.register("spo_tracker", needs_group=False)
def spo_tracker_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts | None = None,
    rho: float = 0.96,
    prior_alpha: float = 0.5,
    prior_beta: float = 0.5,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Single-stream SPO baseline (Xu & Ding 2025, "Single-stream Policy Optimization",
    arXiv:2509.13232): a persistent per-prompt Beta tracker replaces the group baseline.

    For each row, ``A = r − p̂`` with ``p̂ = α/(α+β)`` of its prompt (keyed by ``ctx.row_ids``)
    taken BEFORE this step's observations, then the batch is normalised globally,
    ``(A − mean_B A)/(std_B A + eps)``. Afterwards each observation updates its prompt's tracker,
    ``α ← ρα + r``, ``β ← ρβ + (1 − r)`` (in batch order when a prompt appears several times). The
    tracker lives in ``ctx.state["spo_tracker"]`` as ``{"alpha": {row: float}, "beta": {row: float}}``.

    ``rho`` is FIXED: the paper's KL-adaptive ρ (:func:`rho_from_divergence`) needs the current
    policy's log-probs of the response the prompt was last scored with, which the pipeline does not
    provide. The default 0.96 is the value the paper's rule gives at zero divergence.
    GUESS: an unseen prompt starts at ``(prior_alpha, prior_beta) = (0.5, 0.5)`` (the paper
    initialises from offline samples, which a run here does not draw). Rewards are clamped to
    [0, 1] for the tracker update (the Beta model is for success rates); the advantage uses the
    raw reward. ``group_ids`` is ignored (single stream). Shapes: ``rewards [B]`` -> ``[B]``.
    Prioritised prompt sampling (√(p̂(1−p̂)) + 0.05) belongs to a selector, not here.
    """
    rows = ctx.row_ids if ctx is not None and ctx.row_ids is not None else group_ids
    keys = [int(k) for k in rows.tolist()]
    state = component_state(ctx, "spo_tracker")
    alphas: dict[int, float] = state.setdefault("alpha", {})
    betas: dict[int, float] = state.setdefault("beta", {})

    baseline = torch.tensor(
        [alphas.get(k, prior_alpha) / (alphas.get(k, prior_alpha) + betas.get(k, prior_beta)) for k in keys],
        dtype=torch.float64,
    )
    advantage = batch_whiten(rewards.double() - baseline, eps, unbiased=True)

    observed = rewards.double().clamp(0.0, 1.0).tolist()
    for key, reward in zip(keys, observed, strict=True):
        alphas[key], betas[key] = beta_tracker_update(
            alphas.get(key, prior_alpha), betas.get(key, prior_beta), reward, rho
        )
    return advantage.to(rewards.dtype if rewards.is_floating_point() else torch.float32)
