"""A value-based objective: the policy's log-probs as the advantage part of a Q-function, regressed
on a conservative one-step Bellman target (B-Coder).

Shapes: ``logp, old_logp, mask [B, T]``; ``ctx.values [B, T+1]`` a learned critic's ``V(s_t)``
(``grpozoo.training.critics``); the loss is ``[B, T]``, 0 off the mask.
"""

from __future__ import annotations

import torch

from grpozoo.algos.advantages.critics import decomposed_gae
from grpozoo.algos.losses import require_field
from grpozoo.algos.masked import mask_outputs
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts


def bellman_residuals(
    logp: torch.Tensor, values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, gamma: float,
    alpha: float, truncated: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Q(s_t, a_t) − y_t`` ``[B, T]`` with ``Q(s_t, a_t) = α·log π(a_t|s_t) + V(s_t)`` and the target
    ``y_t = r_t + γ·V(s_{t+1})`` (``r_t`` the reward at the last token, ``V`` of the end state 0, or
    ``V(s_T)`` with no reward where ``truncated``): ``α·logp_t − δ_t``, ``δ_t`` the critic's one-step
    TD error (:func:`decomposed_gae` with λ = 0). ``values`` is detached."""
    width = mask.shape[1]
    td = decomposed_gae(rewards, values[:, : width + 1].detach().to(logp.device), mask, mask, gamma, 0.0, truncated)
    return alpha * logp - td.to(logp.dtype)


@losses.register("b_coder_bellman", needs={"values"})
def b_coder_bellman_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    gamma: float = 1.0,
    alpha: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """B-Coder's value-based objective (Yu et al. 2023, "B-Coder: Value-Based Deep Reinforcement
    Learning for Program Synthesis", arXiv:2310.03173), the mechanism this library can build: a
    Q-function whose advantage part is the language model's own output, ``Q(s, a) = α·log π(a|s) +
    V(s)``, so at the start of training it is the pre-trained model (the paper's initialisation from
    the LM's logits), regressed on a conservative Bellman target: per token
    ``½·(Q(s_t, a_t) − (r_t + γ·V(s_{t+1})))²``, the next state valued under the policy that sampled
    it (``ctx.values [B, T+1]``, a learned critic, detached) rather than by a maximum over ``Q``,
    which overestimates. The gradient reaches the policy through ``log π`` only; ``advantages`` are
    not read. Diagnostics: ``bellman_residual`` (the signed ``Q − y``).

    Differs from the paper: ``log π`` (logits minus their log-sum-exp) in place of the logits minus
    their maximum; ``V`` a head on the policy's detached hidden states trained on Monte-Carlo returns,
    not a value network pre-trained on the dataset; the target's next action is the sampled one, not
    the frozen pre-trained policy's greedy choice; on-policy samples only (no replay of human
    programs); no re-ranking of programs by the learned value. GUESS: ``alpha=1``, ``gamma=1``."""
    values = require_field(ctx.values, "values", "b_coder_bellman")
    rewards = require_field(ctx.rewards, "rewards", "b_coder_bellman")
    residual = bellman_residuals(logp, values, rewards.to(logp.device), mask, gamma, alpha,
                                 ctx.truncated.to(logp.device))
    return mask_outputs(0.5 * residual**2, {"bellman_residual": residual}, mask)
