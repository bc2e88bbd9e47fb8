"""Advantages from a learned critic: token-level GAE with action decomposition (POAD), extended GAE
that bootstraps at a truncation (T-PPO), and a probe's cross-rollout baseline (POISE).

The critic itself (a small head over the policy's detached hidden states, its own AdamW, its state
checkpointed with the run) lives in :mod:`grpozoo.training.critics`; it fills ``ctx.values``
``[B, T+1]`` (``V(s_t)``, ``s_t`` = the prompt and the first ``t`` completion tokens) or
``ctx.probe_values`` ``[B]`` before the estimator runs, and trains on the targets the estimator's
registration declares (``value_targets(ctx, **params) -> (targets, weights)``). The estimators'
``critic_*`` parameters are the head's, read by that provider.

Shapes: ``rewards [B]``, ``group_ids [B]``, ``mask [B, T]`` (1 on the policy's own tokens: tool
output is 0), ``values [B, T+1]``; the token-level estimators return ``[B, T]``, 0 off the mask.
"""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.groups import group_count, leave_one_out_mean
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts, required

Action = Literal["token", "line", "turn"]


def last_token(mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` bool: each row's last token on ``mask`` (none for an empty row)."""
    real = mask.bool()
    index = torch.arange(mask.shape[1]).expand(mask.shape)
    last = torch.where(real, index, -1).max(dim=1).values
    return real & (index == last.unsqueeze(1))


def action_ends(mask: torch.Tensor, action: Action, token_texts: list[list[str]] | None = None) -> torch.Tensor:
    """``[B, T]`` bool: the policy tokens (``mask``) that end an environment action. ``token``: every
    token is an action; ``turn``: the last token before a gap in ``mask`` (tool output follows) and the
    row's last token; ``line``: also every token whose text (``token_texts [B][L_i]``) holds a newline."""
    real = mask.bool()
    if action == "token":
        return real
    following = torch.zeros_like(real)
    following[:, :-1] = real[:, 1:]
    ends = real & ~following  # the next token is not the policy's: tool output or the end
    if action == "line":
        texts = required(token_texts, "ctx.completion_token_texts", "action='line'")
        for i, row in enumerate(texts):
            for t, text in enumerate(row[: mask.shape[1]]):
                if "\n" in text:
                    ends[i, t] |= bool(real[i, t])
    elif action != "turn":
        raise ValueError(f"action={action!r} is not one of 'token', 'line', 'turn'")
    return ends | last_token(mask)


def decomposed_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    ends: torch.Tensor,
    gamma: float,
    lam: float,
    truncated: torch.Tensor | None = None,
) -> torch.Tensor:
    """Token-level GAE under the Bellman backup with action decomposition (Wen et al. 2024,
    "Reinforcing Language Agents via Policy Optimization with Action Decomposition", arXiv:2405.15821),
    extended to responses cut short (Fan et al. 2025, "Truncated Proximal Policy Optimization",
    arXiv:2506.15050). ``[B, T]``, 0 off ``mask``.

    For a policy token ``t`` whose next policy token is ``t'`` (``L``, the end, for the last one):

    - inside an action (``ends[t]`` False): ``δ_t = V(s_t') − V(s_t)``, no reward, no discount;
    - at an action's last token: ``δ_t = r_t + γ·V(s_t') − V(s_t)``, with ``r_t = r`` at the row's last
      token and 0 elsewhere (outcome reward), and ``V(s_L) = 0`` after a complete response (terminal);
    - ``A_t = δ_t + c_t·A_t'`` with ``c_t = γλ`` at an action's end and 1 inside one, so discount
      exponents count actions, not tokens (GUESS: λ, like γ, applies only across action boundaries).

    With one-token actions (``ends = mask``) this is the standard GAE. A ``truncated`` row (``[B]``
    bool, the response was cut, not finished) is extended GAE: its last TD error is
    ``γ·V(s_L) − V(s_{L−1})``, bootstrapping with the value at the cut and no terminal reward.
    ``values [B, T+1]`` holds ``V(s_t)`` for ``t = 0 … T``; tool-output positions are skipped.
    """
    b, width = mask.shape
    device = values.device
    real, ends = mask.to(device).bool(), ends.to(device).bool()
    v = values.double()
    # the state after the row's last policy token (tool output never ends a completion, so it is L)
    index = torch.arange(width, device=device).expand(mask.shape)
    last = torch.where(real, index, -1).max(dim=1).values
    lengths = last + 1
    cut = torch.zeros(b, dtype=torch.bool, device=device) if truncated is None else truncated.to(device).bool()
    rows = torch.arange(b, device=device)
    zeros = torch.zeros(b, dtype=torch.float64, device=device)
    next_value = torch.where(cut, v[rows, lengths.clamp(max=width)], zeros)
    next_adv = zeros
    reward = torch.where(cut, 0.0, rewards.to(device).double())
    out = torch.zeros(b, width, dtype=torch.float64, device=device)
    for t in range(width - 1, -1, -1):
        on, end = real[:, t], ends[:, t]
        r_t = torch.where(index[:, t] == last, reward, 0.0)
        discount = torch.where(end, gamma, 1.0)
        delta = r_t + discount * next_value - v[:, t]
        adv = delta + torch.where(end, gamma * lam, 1.0) * next_adv
        out[:, t] = torch.where(on, adv, 0.0)
        next_value = torch.where(on, v[:, t], next_value)
        next_adv = torch.where(on, adv, next_adv)
    return out.to(values.dtype if values.is_floating_point() else torch.float32)


def action_returns(
    rewards: torch.Tensor, mask: torch.Tensor, ends: torch.Tensor, gamma: float
) -> torch.Tensor:
    """The Monte-Carlo return ``γ^k·r`` at each policy token ``[B, T]``, ``k`` the number of action
    boundaries between it and the end (0 off ``mask``): :func:`decomposed_gae` with zero values and
    λ = 1, the critic's regression target."""
    zeros = torch.zeros(mask.shape[0], mask.shape[1] + 1)
    return decomposed_gae(rewards, zeros, mask, ends, gamma, 1.0)


def value_targets(ctx: Rollouts, gamma: float, action: Action, train_on_truncated: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A token-level critic's regression targets and weights ``[B, T+1]`` (state ``s_t`` for the
    token ``t`` it precedes; the end state ``s_L`` gets weight 0): the Monte-Carlo return with γ per
    action (GUESS: λ = 1 for the critic, as VC-PPO's decoupled GAE advises: Yuan et al. 2025, "What's
    Behind PPO's Collapse in Long-CoT? Value Optimization Holds the Secret", arXiv:2503.01491), on the
    policy's tokens of rows that learn; ``train_on_truncated=False`` leaves truncated rows out."""
    rewards = required(ctx.rewards, "ctx.rewards", "value_targets")
    mask = ctx.action_mask
    ends = action_ends(mask, action, ctx.completion_token_texts)
    returns = action_returns(rewards, mask, ends, gamma)
    weights = mask.float()
    if not train_on_truncated:
        weights = weights * (~ctx.truncated.bool()).float().unsqueeze(1)
    pad = torch.zeros(mask.shape[0], 1)
    return torch.cat([returns.float(), pad], dim=1), torch.cat([weights, pad], dim=1)


# ---------------------------------------------------------------- POAD (token-level critic)


def _poad_targets(ctx: Rollouts, gamma: float = 1.0, lam: float = 0.95, action: Action = "turn", **_) -> tuple:
    return value_targets(ctx, gamma, action, train_on_truncated=True)


@advantages.register("poad", needs={"values"}, needs_group=False, value_targets=_poad_targets)
def poad_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    gamma: float = 1.0,
    lam: float = 0.95,
    action: Action = "turn",
    critic_hidden: int = 0,
    critic_lr: float = 1e-3,
) -> torch.Tensor:
    """POAD (Wen et al. 2024, "Reinforcing Language Agents via Policy Optimization with Action
    Decomposition", arXiv:2405.15821): token-level GAE over a token-level critic ``ctx.values
    [B, T+1]`` with the Bellman backup with action decomposition (:func:`decomposed_gae`): no reward
    and no discount inside an action, ``r + γ·V(next action's first state)`` at its last token.
    Returns ``[B, T]``.

    ``action``: what one environment action is: ``turn`` (the policy's tokens up to a tool's output,
    ``ctx.tool_mask``; a single-turn completion is one action), ``line``, or ``token``.
    GUESS: γ = 1 and λ = 0.95 (the paper's agent settings differ); ``critic_hidden`` (0: a linear head,
    else a 2-layer MLP of that width) and ``critic_lr`` (its AdamW) are the critic's, trained on the
    Monte-Carlo returns (:func:`value_targets`). Differs from the paper: the critic is a head on the
    policy's detached last hidden states, not a separate language model."""
    ends = action_ends(ctx.action_mask, action, ctx.completion_token_texts)
    values = required(ctx.values, "ctx.values", "advantage estimator 'poad'")
    return decomposed_gae(rewards, values, ctx.action_mask, ends, gamma, lam)


# ---------------------------------------------------------------- T-PPO (extended GAE)


def _t_ppo_targets(ctx: Rollouts, gamma: float = 1.0, lam: float = 0.95, **_) -> tuple:
    return value_targets(ctx, gamma, "token", train_on_truncated=False)


@advantages.register("t_ppo_egae", needs={"values"}, needs_group=False, value_targets=_t_ppo_targets)
def t_ppo_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    gamma: float = 1.0,
    lam: float = 0.95,
    critic_hidden: int = 0,
    critic_lr: float = 1e-3,
) -> torch.Tensor:
    """T-PPO's extended GAE (Fan et al. 2025, "Truncated Proximal Policy Optimization",
    arXiv:2506.15050): GAE over the token-level critic ``ctx.values [B, T+1]``, and on a response
    cut at the generation window (``ctx.truncated``) the last TD error bootstraps with ``V(s_T)``
    and takes no terminal reward, so the policy learns from unfinished responses; the critic
    trains only on completed ones (:func:`value_targets` with ``train_on_truncated=False``).
    Returns ``[B, T]``.

    GUESS: γ = 1, λ = 0.95; ``critic_hidden``/``critic_lr`` as for ``poad``. Differs from the
    paper: the window is ``rollout.max_new_tokens`` and a cut response is not resumed at the next
    step (its reward, whatever the verifier says, is ignored); the critic is a head on the
    policy's detached hidden states, not a separate value model."""
    values = required(ctx.values, "ctx.values", "advantage estimator 't_ppo_egae'")
    mask = ctx.action_mask
    return decomposed_gae(rewards, values, mask, mask, gamma, lam, truncated=ctx.truncated)


# ---------------------------------------------------------------- POISE (cross-rollout probe baseline)


def cross_rollout_baseline(
    predictions: torch.Tensor, group_ids: torch.Tensor, partner: Literal["others", "next"] = "others"
) -> torch.Tensor:
    """POISE's baseline ``[B]``: for rollout i, the probe's predictions of *other* rollouts of its
    prompt, never its own, so ``r_i − b_i`` stays unbiased although the probe reads whole
    trajectories. ``others``: the mean over the other members; ``next``: the next member of the group
    (cyclically; with G = 2 both pair i with j). A one-member group has no partner: its baseline is
    NaN (its own prediction is never used; the estimator gives it advantage 0)."""
    if partner == "others":
        base = leave_one_out_mean(predictions, group_ids)
    elif partner == "next":
        base = torch.empty_like(predictions)
        for g in group_ids.unique():
            rows = (group_ids == g).nonzero().squeeze(1)
            base[rows] = predictions[rows.roll(-1)]
    else:
        raise ValueError(f"partner={partner!r} is not 'others' or 'next'")
    return torch.where(group_count(group_ids) > 1, base, torch.nan)


def _poise_targets(ctx: Rollouts, **_) -> tuple[torch.Tensor, torch.Tensor]:
    rewards = required(ctx.rewards, "ctx.rewards", "poise's probe")
    return rewards.float().clamp(0.0, 1.0), torch.ones_like(rewards, dtype=torch.float32)


@advantages.register("poise", needs={"probe_values"}, value_targets=_poise_targets)
def poise_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    partner: Literal["others", "next"] = "others",
    critic_hidden: int = 0,
    critic_lr: float = 1e-3,
) -> torch.Tensor:
    """POISE (Choi, Lim et al. 2026, "Your Language Model is Its Own Critic: Reinforcement Learning
    with Value Estimation from Actor's Internal States", arXiv:2605.07579): ``A_i = r_i − b_i`` with
    ``b_i`` the probe's predicted P(reward = 1) of another rollout of the same prompt
    (:func:`cross_rollout_baseline` over ``ctx.probe_values [B]``). Returns ``[B]``; 0 for a rollout
    alone in its group.

    The probe (``grpozoo.training.critics``) reads detached features of the policy's own forward: the
    mean last hidden state over the prompt and over the response, and the mean, max and std of the
    token entropies; sigmoid output, trained online with BCE against the rewards clamped to [0, 1].
    GUESS: ``partner='others'`` (the paper pairs two rollouts, G = 2, where both choices agree), a
    linear probe (``critic_hidden=0``; else a 2-layer MLP of that width), one AdamW step at
    ``critic_lr`` per training step on the current batch only (the paper also replays recent rollouts)."""
    predictions = required(ctx.probe_values, "ctx.probe_values", "advantage estimator 'poise'")
    baseline = cross_rollout_baseline(predictions.to(rewards.dtype), group_ids, partner)
    return torch.where(baseline.isnan(), 0.0, rewards - baseline)
