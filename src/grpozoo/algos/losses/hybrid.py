"""Hybrid objectives: reinforcement from sampled completions mixed with supervision from a
demonstration or a self-teacher that knows one, and the advantage regression that replaces the
clipped surrogate.

- GRAO (Wang et al. 2025, arXiv:2508.07750): advantage-weighted likelihood of the samples, imitation
  of the task row's demonstration (a row of the batch, ``ctx.demonstration``), and a pairwise term
  that prefers samples over the demonstration where they scored higher.
- SRPO (Li et al. 2026, arXiv:2604.02288): correct samples learn by GRPO's clipped surrogate, failed
  ones by self-distillation toward the policy given the demonstration (``ctx.teacher_logprobs``).
- Reg-GRPO (Park et al. 2025, arXiv:2506.07464): the group-normalised sequence log-ratio regressed
  onto the advantage.

Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]``; every loss returns
``(loss [B, T], diagnostics {name: [B, T]})`` with 0 on padding. The demonstrations and the
self-teacher come from :mod:`grpozoo.training.demonstrations`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from grpozoo.algos.groups import group_mean, group_sum
from grpozoo.algos.losses import broadcast_advantages, require_field, sequence_advantages
from grpozoo.algos.losses.clipped import clipped_surrogate
from grpozoo.algos.masked import keep_real, mask_outputs, on_tokens, row_mean, token_log_ratio, token_ratio
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts


def _on_cpu_groups(values: torch.Tensor, group_ids: torch.Tensor, reduce) -> torch.Tensor:
    """A group reduction (they run on the CPU) of ``values [B]``, back on ``values``' device."""
    return reduce(values.cpu(), group_ids.cpu()).to(values.device)


# --------------------------------------------------------------------------- GRAO


@losses.register("grao", needs={"demonstrations"}, whole_groups=True)
def grao_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    imitation_coef: float = 1.0,
    alignment_coef: float = 1.0,
    beta: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GRAO's Group Direct Alignment Loss (Wang et al. 2025, "Learning to Align, Aligning to Learn: A
    Unified Approach for Self-Optimized Alignment", arXiv:2508.07750).

    With ``l̄(y)`` a completion's mean token log-likelihood, per group of samples ``o_i`` and the
    task row's demonstration ``y`` (a row of the batch with ``ctx.demonstration`` True):

    ``L = −Σ_i Â_i·l̄(o_i) − λ₁·l̄(y) + λ₂·Σ_i w_i·softplus(−β·(l̄(o_i) − l̄(y)))``

    - exploration: on a sample's tokens ``−Â·logp`` (the advantage-weighted likelihood; token
      advantages ``[B, T]`` apply per token);
    - imitation: on the demonstration's tokens ``−λ₁·logp`` (``imitation_coef``), SFT on it;
    - alignment: ``w_i = max(r_i − r_y, 0)``, the reward by which sample ``i`` beats the
      demonstration; the logistic term pushes ``l̄(o_i)`` above ``l̄(y)`` for such samples
      (``alignment_coef``, ``beta``), put on every token of the sample.

    With ``aggregation: sequence_mean`` every completion's term counts once, as ``l̄`` does. With all
    ``Â = 0`` and ``λ₂ = 0`` the loss is SFT on the demonstrations.

    GUESS: the exact form (the paper's weights, the reward-difference weight ``w_i`` and the
    logistic form of the pairwise term) follows the description, not the paper's equations;
    ``imitation_coef = alignment_coef = beta = 1``. The demonstration is a member of its group, so
    its reward counts in the group's advantage statistics; its own advantage is unused. A group
    without a demonstration has no imitation or alignment term.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``;
    needs whole groups (a sample and its group's demonstration in one micro-batch).
    """
    demo = ctx.demonstration
    demo = torch.zeros(logp.shape[0], dtype=torch.bool) if demo is None else demo.bool()
    demo = demo.to(logp.device)
    is_demo = demo.to(logp.dtype).unsqueeze(1)
    adv = broadcast_advantages(advantages, logp).to(logp.dtype)
    exploration = -adv * logp
    imitation = -imitation_coef * logp
    per_token = is_demo * imitation + (1.0 - is_demo) * exploration

    alignment = torch.zeros_like(logp)
    if alignment_coef != 0.0 and bool(demo.any()):
        rewards = require_field(ctx.rewards, "rewards", "grao").to(logp.device, logp.dtype)
        mean_ll = row_mean(logp, mask)  # l̄ of every row, with its gradient
        demo_f = demo.to(logp.dtype)
        count = _on_cpu_groups(demo_f, ctx.group_ids, group_sum)
        has_demo = (count > 0) & ~demo
        per_group = count.clamp(min=1)
        demo_ll = _on_cpu_groups(demo_f * mean_ll, ctx.group_ids, group_sum) / per_group
        demo_reward = _on_cpu_groups(demo_f * rewards, ctx.group_ids, group_sum) / per_group
        weight = torch.where(has_demo, (rewards - demo_reward).clamp(min=0.0), torch.zeros_like(rewards))
        pairwise = alignment_coef * weight * F.softplus(-beta * (mean_ll - demo_ll))
        alignment = on_tokens(pairwise, mask)
    per_token = per_token + alignment
    diagnostics = {"demonstration_fraction": is_demo.expand_as(logp), "alignment_loss": alignment}
    return mask_outputs(per_token, diagnostics, mask)


# --------------------------------------------------------------------------- SRPO


@losses.register("srpo", needs={"privileged_prompts", "teacher_logprobs", "teacher_entropies"})
def srpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    distill_coef: float = 1.0,
    correct_threshold: float = 1.0,
    entropy_weighting: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SRPO, sample-routed policy optimisation (Li et al. 2026, "Unifying Group-Relative and
    Self-Distillation Policy Optimization via Sample Routing", arXiv:2604.02288).

    Each completion is routed by its outcome (``ctx.task_scores ≥ correct_threshold``):

    - correct: GRPO's clipped surrogate with its advantage, ``−min(ρ·Â, clip(ρ)·Â)``; no distillation;
    - failed: self-distillation toward the teacher ``π_T``, the same policy given the task row's
      demonstration in its prompt (``ctx.teacher_logprobs``, no gradient), with the per-token
      advantage ``a_t = λ·w_t·(log π_T(y_t) − log π_old(y_t))`` in the same clipped surrogate; the
      sample's own advantage is unused. On-policy this is the score-function gradient of the
      reverse KL ``KL(π_θ ‖ π_T)`` at the sampled token, and its value ``λ·w_t·(log π_old − log π_T)``
      the k1 estimate of it.

    ``w_t`` (with ``entropy_weighting``) is ``exp(−H_T,t)``, the teacher's confidence at the token
    (``ctx.teacher_entropies``), divided by its mean over the completion's tokens: a high-entropy,
    unreliable teacher token weighs less, and each completion's weights average 1.

    What differs: SDPO distils the teacher's whole next-token distribution (logit level); here only
    the sampled token's log-probs are read, the estimator above. GUESS: ``distill_coef λ = 1``; the
    row-wise normalisation of ``exp(−H)``; correct means a verifier score of 1
    (``correct_threshold``); the clip range is GRPO's. A row without a demonstration is its own
    teacher (``a_t = 0`` on-policy).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    """
    scores = require_field(ctx.task_scores, "task_scores", "srpo").to(logp.device)
    teacher = require_field(ctx.teacher_logprobs, "teacher_logprobs", "srpo").to(logp.device, logp.dtype)
    correct = (scores >= correct_threshold).unsqueeze(1)
    weight = distillation_weights(ctx, mask) if entropy_weighting else mask.to(logp.dtype)
    distill_adv = distill_coef * weight * token_log_ratio(teacher, old_logp.detach(), mask)
    adv = torch.where(correct, broadcast_advantages(advantages, logp).to(logp.dtype), distill_adv)
    loss, diagnostics = clipped_surrogate(token_ratio(logp, old_logp, mask), adv, eps_low, eps_high)
    diagnostics["distilled_fraction"] = (~correct).to(logp.dtype).expand_as(logp)
    diagnostics["teacher_log_ratio"] = torch.where(correct, 0.0, token_log_ratio(teacher, old_logp.detach(), mask))
    return mask_outputs(loss, diagnostics, mask)


def distillation_weights(ctx: Rollouts, mask: torch.Tensor) -> torch.Tensor:
    """SRPO's entropy-aware weights ``[B, T]``: ``exp(−H_T)`` of the teacher's entropy at each token
    (``ctx.teacher_entropies``), divided by its mean over the row's real tokens; 0 on padding."""
    entropies = require_field(ctx.teacher_entropies, "teacher_entropies", "srpo").to(mask.device)
    confidence = keep_real(torch.exp(-entropies.to(torch.float32)), mask)
    return keep_real(confidence / row_mean(confidence, mask).clamp(min=1e-12).unsqueeze(1), mask)


# --------------------------------------------------------------------------- Reg-GRPO


@losses.register("reg_grpo", whole_groups=True)
def reg_grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps: float = 1e-4,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Reg-GRPO, regressive GRPO (Park et al. 2025, "DeepVideo-R1: Video Reinforcement Fine-Tuning
    via Difficulty-aware Regressive GRPO", arXiv:2506.07464).

    The clipped surrogate becomes a regression of the policy's implied relative reward onto the
    advantage: with ``d_i = Σ_t (logp − old_logp)`` the sequence log-ratio and
    ``ψ_i = (d_i − mean_G d) / sqrt(var_G d + eps)`` its group normalisation (gradient through
    the mean and the variance too), the loss of sequence ``i`` is ``(Â_i − ψ_i)²``, put on each of its
    tokens; no clip, no min. It is 0 where ``ψ = Â``; from ``d = 0`` (on-policy) its gradient raises
    ``d_i`` where ``Â_i`` is above its group's mean advantage, with magnitude ``∝ 1/sqrt(eps)``
    (the gradient clip bounds the step).

    GUESS: the population variance and ``eps``; token advantages ``[B, T]`` enter as their row mean.
    Not built: the paper's difficulty-aware augmentation (harder or hinted inputs for all-correct and
    all-wrong groups; the hint half is the guided rollouts of ``algorithm.guidance``); video inputs.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``; needs whole
    groups.
    """
    d = token_log_ratio(logp, old_logp, mask).sum(dim=1)
    centred = d - _on_cpu_groups(d, ctx.group_ids, group_mean)
    variance = _on_cpu_groups(centred**2, ctx.group_ids, group_mean)
    psi = centred / torch.sqrt(variance + eps)
    adv = sequence_advantages(advantages, mask).to(logp.dtype)
    per_sequence = (adv - psi) ** 2
    diagnostics = {"regression_target_psi": on_tokens(psi, mask), "sequence_log_ratio": on_tokens(d, mask)}
    return mask_outputs(on_tokens(per_sequence, mask), diagnostics, mask)
