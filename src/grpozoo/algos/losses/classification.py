"""Discriminative (classification) objectives over a group: each completion gets a score, and
rewards are labels — the correct completions should score above the incorrect ones.

REAL (Zhai et al. 2026, arXiv:2602.05630: an anchored multi-label softmax, and its BCE variant) and
DisCO (Li et al. 2025, arXiv:2505.12366: a discriminative objective with a KL constraint). All are
group-level losses: they are registered with ``whole_groups=True`` and put each group's (or
sequence's) value on every real token of it.

Labels: within a group, a completion is *positive* when its reward equals the group's best reward
and *negative* otherwise; a group whose rewards are all equal (all correct / all wrong) has no
labels and contributes 0. With binary 0/1 rewards this is exactly the papers' correct / incorrect
split. The rewards are ``ctx.rewards`` (the row-mean advantage stands in when a batch has none).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from grpozoo.algos.kl import kl_k3
from grpozoo.algos.losses import sequence_advantages
from grpozoo.algos.masked import keep_real, on_tokens, row_mean, token_log_ratio
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts


class Groups:
    """Dense group index of each row and the group-relative labels of a (whole-group) batch."""

    def __init__(self, ctx: Rollouts, advantages: torch.Tensor, mask: torch.Tensor):
        b, device = mask.shape[0], mask.device
        # no rewards in the batch: the sequence advantage labels it
        rewards = sequence_advantages(advantages, mask).detach() if ctx.rewards is None else ctx.rewards
        _, self.dense = torch.unique(ctx.group_ids.to(device), return_inverse=True)
        self.n = int(self.dense.max().item()) + 1 if b else 0
        r = rewards.to(device=device, dtype=torch.float64)
        best = r.new_full((self.n,), -torch.inf).scatter_reduce(0, self.dense, r, "amax")
        worst = r.new_full((self.n,), torch.inf).scatter_reduce(0, self.dense, r, "amin")
        valid = (best > worst)[self.dense]
        self.positive = valid & (r == best[self.dense])
        self.negative = valid & ~self.positive
        self.valid = valid

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Per-group sum of per-row ``values [B]`` -> ``[n]``."""
        return values.new_zeros(self.n).scatter_add(0, self.dense, values)

    def logsumexp(self, x: torch.Tensor, members: torch.Tensor, anchor: bool) -> torch.Tensor:
        """Per group ``log(Σ_{j ∈ members} exp x_j)`` -> ``[n]``; with ``anchor`` an extra logit 0
        joins the sum (``log(1 + Σ …)``). A group with no member gives 0 (with the anchor: log 1)."""
        detached = torch.where(members, x.detach(), torch.full_like(x, -torch.inf))
        start = x.new_zeros(self.n) if anchor else x.new_full((self.n,), -torch.inf)
        top = start.scatter_reduce(0, self.dense, detached, "amax")
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        shifted = torch.where(members, x - top[self.dense], torch.zeros_like(x))
        total = self.sum(torch.where(members, torch.exp(shifted), torch.zeros_like(x)))
        if anchor:
            total = total + torch.exp(-top)
        return top + torch.log(torch.where(total > 0, total, torch.ones_like(total)))


def _kl_to_old(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """k3 estimate of KL(π_old ‖ π_θ) per token from the old policy's samples, ``ρ − 1 − log ρ``
    (≥ 0, 0 at ρ = 1). ``[B, T]``."""
    return keep_real(kl_k3(old_logp, logp), mask)


def _diagnostics(score: torch.Tensor, groups: Groups, kl: torch.Tensor, mask: torch.Tensor) -> dict:
    return {
        "score": on_tokens(score.detach(), mask),
        "valid_group_fraction": on_tokens(groups.valid.to(score.dtype), mask),
        "kl_old": kl.detach(),
    }


@losses.register("real", whole_groups=True)
def real_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    tau: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """REAL (Zhai et al. 2026, "Rewards as Labels: Revisiting RLVR from a Classification Perspective",
    arXiv:2602.05630).

    Each completion's logit is its length-normalised log-ratio ``s_i = mean_t (logp − old_logp)``.
    Per question (group with both labels), an anchored multi-label softmax (anchor logit 0):
    ``loss_q = log(1 + Σ_neg exp(s_j/τ)) + log(1 + Σ_pos exp(−s_i/τ))``. No clipping.

    ``loss_q`` is put on every real token of its group; aggregation ``per_prompt_mean`` then gives
    the paper's ``Σ_q loss_q / #questions`` (every question counted, uniform ones adding 0).
    At ``s = 0`` with 1 positive and 3 negatives, ``τ = 0.5``: ``∂L/∂s_pos = −1``, ``∂L/∂s_neg = 0.5``.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages`` unused but for labels when
    ``ctx.rewards`` is missing -> ``[B, T]``. Needs whole groups in a micro-batch.
    Diagnostics: ``score`` (s_i), ``valid_group_fraction``, ``kl_old`` (k3 to the old policy, monitored only).
    """
    log_ratio = token_log_ratio(logp, old_logp, mask)
    score = row_mean(log_ratio, mask)
    groups = Groups(ctx, advantages, mask)
    z = score / tau
    loss_q = groups.logsumexp(z, groups.negative, anchor=True) + groups.logsumexp(
        -z, groups.positive, anchor=True
    )
    kl = _kl_to_old(logp, old_logp, mask)
    return on_tokens(loss_q[groups.dense], mask), _diagnostics(score, groups, kl, mask)


@losses.register("real_bce", whole_groups=True)
def real_bce_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    tau: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """REAL's plain-BCE variant (Zhai et al. 2026, arXiv:2602.05630):
    ``BCE_with_logits(s_i/τ, 1[r_i = max_group r])`` per completion of a group with both labels, 0 for
    completions of uniform groups; ``s_i`` as in ``real``.

    The value is put on every real token of its completion; aggregation ``sequence_mean`` averages
    over completions. The paper averages over the completions of *valid* groups only, so its loss is
    ours divided by the fraction of valid completions (a per-step scale, same direction).
    The positive's gradient weight ``(1/τ)·σ(−s_i/τ)`` is monotone decreasing in ``s_i`` and at most ``1/τ``.
    Shapes: ``logp, old_logp, mask [B, T]`` -> ``[B, T]``. Needs whole groups in a micro-batch (labels
    compare with the group's best reward).
    """
    log_ratio = token_log_ratio(logp, old_logp, mask)
    score = row_mean(log_ratio, mask)
    groups = Groups(ctx, advantages, mask)
    bce = F.binary_cross_entropy_with_logits(score / tau, groups.positive.to(score.dtype), reduction="none")
    bce = torch.where(groups.valid, bce, torch.zeros_like(bce))
    return on_tokens(bce, mask), _diagnostics(score, groups, _kl_to_old(logp, old_logp, mask), mask)


@losses.register("disco", whole_groups=True)
def disco_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    score: Literal["logL", "Lratio"] = "logL",
    objective: Literal["dro", "basic"] = "dro",
    tau: float | None = None,
    delta: float = 1e-4,
    beta: float = 1e3,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DisCO (Li et al. 2025, "DisCO: Reinforcing Large Reasoning Models with Discriminative Constrained
    Optimization", arXiv:2505.12366).

    Score per completion: ``"logL"`` ``s_i = mean_t logp`` or ``"Lratio"`` ``s_i = mean_t ρ``.
    Per question with both labels, the objective (maximised) is
    ``"dro"``: ``mean_pos s − τ·log mean_neg exp(s/τ)`` (log-sum-exp over negatives: the hardest
    ones dominate; as τ → 0 it tends to ``mean_pos s − max_neg s``), or ``"basic"`` (DisCO-b):
    ``mean_pos s − mean_neg s``. Uniform groups give 0. No clipping.

    Trust region: the constraint ``KL(π_old ‖ π_θ) ≤ δ`` (k3, token mean) enforced by the squared
    hinge whose gradient is ``max(β(KL − δ), 0)·∇KL`` (the code's ``sg(max(β(KL−δ),0))·KL``); below δ
    it contributes exactly no gradient. The authors measure KL over the whole batch; here **each
    group's** token-mean KL is constrained, a trust region per question. On a single on-policy pass
    KL = 0 and the constraint is inactive.

    ``loss_q = −objective_q + penalty_q`` on every real token of the group; use aggregation
    ``per_prompt_mean`` (the authors' ``Σ_q / #questions``). Defaults: δ = 1e-4, β = 1e3, τ = 10 for
    ``logL`` and 1 for ``Lratio`` (``tau=None`` picks them).
    Shapes: ``logp, old_logp, mask [B, T]`` -> ``[B, T]``. Needs whole groups in a micro-batch.
    """
    log_ratio = token_log_ratio(logp, old_logp, mask)
    if score == "logL":
        s = row_mean(logp, mask)
    elif score == "Lratio":
        s = row_mean(torch.exp(log_ratio), mask)
    else:
        raise ValueError(f"disco: score={score!r} is not 'logL' or 'Lratio'")
    t = tau if tau is not None else (10.0 if score == "logL" else 1.0)
    groups = Groups(ctx, advantages, mask)
    pos, neg = groups.positive.to(s.dtype), groups.negative.to(s.dtype)
    n_pos, n_neg = groups.sum(pos), groups.sum(neg)
    mean_pos = groups.sum(s * pos) / n_pos.clamp(min=1)
    if objective == "dro":
        neg_term = t * (
            groups.logsumexp(s / t, groups.negative, anchor=False) - torch.log(n_neg.clamp(min=1))
        )
    elif objective == "basic":
        neg_term = groups.sum(s * neg) / n_neg.clamp(min=1)
    else:
        raise ValueError(f"disco: objective={objective!r} is not 'dro' or 'basic'")
    objective_q = torch.where(n_pos > 0, mean_pos - neg_term, torch.zeros_like(mean_pos))
    kl = _kl_to_old(logp, old_logp, mask)
    kl_q = groups.sum(kl.sum(dim=1)) / groups.sum(mask.sum(dim=1).to(kl.dtype)).clamp(min=1)
    penalty_q = (beta * (kl_q - delta)).clamp(min=0).detach() * kl_q
    loss_q = -objective_q + penalty_q
    diagnostics = _diagnostics(s, groups, kl, mask)
    diagnostics["kl_constraint_active"] = on_tokens((kl_q > delta)[groups.dense].to(s.dtype), mask)
    return on_tokens(loss_q[groups.dense], mask), diagnostics
