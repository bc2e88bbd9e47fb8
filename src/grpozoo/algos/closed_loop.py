"""Closed-loop weighting: the policy loss scaled by whether the previous updates improved the policy,
measured against a sliding window of past batch rewards kept in ``ctx.state``.

A token weight (``fn(ctx, **params) -> [B, T]``, see :mod:`grpozoo.algos.token_weights`): it runs
once per step, after the advantages, so it may update its state; the trainer multiplies it into
the per-token policy loss (not into the KL or entropy regularisers).
"""

from __future__ import annotations

import math

import torch

from grpozoo.algos.advantages.trackers import component_state
from grpozoo.registry import token_weights
from grpozoo.rollouts import Rollouts


def improvement_weight(history: list[float], current: float, kappa: float, eps: float = 1e-6) -> tuple[float, float]:
    """``(1 + kappa·tanh(ξ), ξ)`` with ``ξ = (J_t − mean(history)) / (std(history ∪ {J_t}) + eps)``
    (population std); ``ξ = 0`` and a weight of 1 with an empty history. The weight is > 1 iff
    ``J_t`` is above the window's mean, and lies in ``(1 − kappa, 1 + kappa)``."""
    if not history:
        return 1.0, 0.0
    values = [*history, current]
    mean_all = sum(values) / len(values)
    spread = math.sqrt(sum((v - mean_all) ** 2 for v in values) / len(values))
    xi = (current - sum(history) / len(history)) / (spread + eps)
    return 1.0 + kappa * math.tanh(xi), xi


@token_weights.register("pipo")
def pipo_weight(ctx: Rollouts, window: int = 8, kappa: float = 0.5, eps: float = 1e-6) -> torch.Tensor:
    """PIPO's closed-loop weight (Wang et al. 2026, "Policy Improvement Reinforcement Learning",
    arXiv:2604.00860): reinforce the learning signal after a measured improvement, suppress it after
    a drop.

    ``J_t`` is the batch mean reward (``ctx.rewards``) of step ``t``; the historical anchor is the
    mean of ``J`` over the previous ``window`` steps, kept in ``ctx.state["pipo"]["history"]`` as
    ``[step, J]`` pairs (checkpointed with the run). ``Δ_t = J_t − mean(J_{t−W..t−1})`` normalised by
    the window's spread gives ``ξ_t`` (:func:`improvement_weight`), and every real token gets the
    weight ``1 + kappa·tanh(ξ_t)``: > 1 iff ``Δ_t > 0``, exactly 1 when the rewards are constant (and
    on the first step). A second call in the same step (same ``ctx.step``) gives the same weight and
    records ``J_t`` once.
    The paper re-applies the previous batch's update with a policy-improvement reward built from
    ``ξ_t``; this is the minimal form that scales the current policy loss instead.
    GUESS: that form, ``window = 8``, ``kappa = 0.5``, and the std of the window (with ``J_t``) as
    the normaliser.
    Shapes: ``ctx.rewards [B]``, ``ctx.completion_mask [B, T]`` -> ``[B, T]`` (0 on padding).
    """
    if window < 1 or not 0.0 <= kappa < 1.0:
        raise ValueError(f"pipo: window must be ≥ 1 and kappa in [0, 1) (got {window}, {kappa})")
    mask = ctx.completion_mask.float()
    rewards = ctx.rewards
    if rewards is None or rewards.numel() == 0:
        return mask
    own = component_state(ctx, "pipo")
    history = [(int(s), float(j)) for s, j in own.get("history", []) if int(s) < ctx.step][-window:]
    current = float(rewards.float().mean())
    weight, xi = improvement_weight([j for _, j in history], current, kappa, eps)
    own["history"] = [[s, j] for s, j in [*history, (ctx.step, current)]][-window:]
    own["weight"], own["improvement"] = weight, xi
    return mask * weight
