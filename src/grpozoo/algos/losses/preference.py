"""Preference and pairwise objectives over a group: the completions of one prompt become pairs
(winner, loser) or a ranking, and the loss compares them.

TRPA (Su et al. 2025, arXiv:2504.04524: DPO-style pairs across rule-defined preference levels with
a trust region to the old policy), CoPG (Flet-Berliac et al. 2024, arXiv:2406.19185: regression of
the regularised reward gap of every pair), POWER-DL (Rashidinejad & Tian 2024, arXiv:2412.09544:
length-weighted robust rewards with dynamic labels), the DPO stage of VerIPO (Li et al. 2025,
arXiv:2505.19000: one best-vs-worst pair per group) and Rank-GRPO's rank-level ratio (Zhu et al.
2025, arXiv:2510.20150).

The pairwise losses compare rows of a group: they are registered with ``whole_groups=True`` and put
each group's value, the mean of its pairs' losses, on every real token of the group's completions;
aggregation ``per_prompt_mean`` then gives the mean over groups (a group without a pair adds 0).
Shapes: ``logp, old_logp, mask [B, T]``; every loss returns ``(loss [B, T], diagnostics {name: [B, T]})``
with 0 on padding. Pairs are built from ``ctx.rewards`` (higher is preferred); a batch without
rewards uses the row-mean advantage instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from grpozoo.algos.kl import kl_k3
from grpozoo.algos.losses import broadcast_advantages, require_field, sequence_advantages
from grpozoo.algos.losses.classification import Groups
from grpozoo.algos.losses.clipped import clipped_surrogate
from grpozoo.algos.losses.sequence import segment_mean, subsentence_ids
from grpozoo.algos.masked import keep_real, mask_outputs, on_tokens, row_mean, token_log_ratio
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts

PairMode = Literal["cross_level", "best_worst", "all"]

# GUESS (Rank-GRPO): one item per line of the generated list
LIST_ITEM_DELIMITERS = ("\n",)


def list_item_ids(texts: Sequence[Sequence[str]], num_tokens: int) -> torch.Tensor:
    """Item labels ``[B, num_tokens]`` (long) of generated lists: a new item starts after every token
    whose text ends with a newline (the newline closes its item). ``texts`` is
    ``ctx.completion_token_texts`` ``[B][L_i]``; SSPO's :func:`subsentence_ids` with lines as segments."""
    return subsentence_ids(texts, num_tokens, LIST_ITEM_DELIMITERS)


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class PreferencePairs:
    """Pairs of rows of the same group: ``winner [P]``, ``loser [P]`` (long row indices) and
    ``group [P]``, the dense group index (``groups.dense``) of each pair."""

    winner: torch.Tensor
    loser: torch.Tensor
    group: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.winner.numel())


def preference_pairs(
    rewards: torch.Tensor,
    dense_groups: torch.Tensor,
    mode: PairMode,
    lengths: torch.Tensor | None = None,
) -> PreferencePairs:
    """The pairs a group's completions form, from ``rewards [B]`` (higher preferred) and
    ``dense_groups [B]`` (group index ``0 … n−1``):

    - ``"cross_level"``: every (i, j) of a group with ``r_i > r_j`` (a reward value is a preference
      level; two completions of the same level are never paired);
    - ``"best_worst"``: one pair per group, a completion with the group's best reward over one with
      its worst, when best > worst. Among tied best completions the longest wins (``lengths [B]``; the
      first in batch order without lengths), among tied worst the first in batch order loses;
    - ``"all"``: every unordered pair ``i < j`` of a group whatever the rewards (CoPG), ``winner`` the
      earlier row.
    """
    b, device = rewards.shape[0], rewards.device
    same = dense_groups.unsqueeze(0) == dense_groups.unsqueeze(1)
    r = rewards.to(torch.float64)
    if mode == "cross_level":
        chosen = same & (r.unsqueeze(1) > r.unsqueeze(0))
    elif mode == "all":
        chosen = same & torch.ones(b, b, dtype=torch.bool, device=device).triu(diagonal=1)
    elif mode == "best_worst":
        index = torch.arange(b, device=device)
        # the best row: highest reward, then (optionally) longest, then earliest
        key_len = lengths.to(torch.float64) if lengths is not None else torch.zeros_like(r)
        better = (r.unsqueeze(0) > r.unsqueeze(1)) | (
            (r.unsqueeze(0) == r.unsqueeze(1))
            & ((key_len.unsqueeze(0) > key_len.unsqueeze(1))
               | ((key_len.unsqueeze(0) == key_len.unsqueeze(1)) & (index.unsqueeze(0) < index.unsqueeze(1))))
        )  # better[i, j]: row j beats row i as the group's best
        is_best = ~(same & better).any(dim=1)
        worse = (r.unsqueeze(0) < r.unsqueeze(1)) | (
            (r.unsqueeze(0) == r.unsqueeze(1)) & (index.unsqueeze(0) < index.unsqueeze(1))
        )  # worse[i, j]: row j beats row i as the group's worst
        is_worst = ~(same & worse).any(dim=1)
        chosen = same & is_best.unsqueeze(1) & is_worst.unsqueeze(0) & (r.unsqueeze(1) > r.unsqueeze(0))
    else:
        raise ValueError(f"preference pairs: mode={mode!r} is not 'cross_level', 'best_worst' or 'all'")
    winner, loser = chosen.nonzero(as_tuple=True)
    return PreferencePairs(winner, loser, dense_groups[winner])


def _labelled_groups(ctx: Rollouts, advantages: torch.Tensor, mask: torch.Tensor) -> tuple[Groups, torch.Tensor]:
    """The batch's groups and the rewards that rank their rows (``ctx.rewards``, else the row-mean
    advantage), ``[B]`` float64 on the mask's device."""
    groups = Groups(ctx, advantages, mask)
    rewards = sequence_advantages(advantages, mask).detach() if ctx.rewards is None else ctx.rewards
    return groups, rewards.to(device=mask.device, dtype=torch.float64)


def _pair_mean_per_group(values: torch.Tensor, pairs: PreferencePairs, groups: Groups) -> torch.Tensor:
    """Mean of per-pair ``values [P]`` over each group's pairs -> ``[n]`` (0 for a group without)."""
    total = values.new_zeros(groups.n).scatter_add(0, pairs.group, values)
    count = values.new_zeros(groups.n).scatter_add(0, pairs.group, torch.ones_like(values))
    return total / count.clamp(min=1)


def _group_outputs(
    loss_q: torch.Tensor,
    pairs: PreferencePairs,
    groups: Groups,
    mask: torch.Tensor,
    margin: torch.Tensor,
    extra: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``loss_q [n]`` on every real token of its group, with the diagnostics every pairwise loss
    logs: ``pair_margin`` (its group's mean pair logit) and ``paired_fraction`` (1 on rows of groups
    with a pair)."""
    has_pair = torch.zeros(groups.n, dtype=torch.bool, device=mask.device)
    has_pair[pairs.group] = True
    diagnostics = {
        "pair_margin": on_tokens(_pair_mean_per_group(margin.detach(), pairs, groups)[groups.dense], mask),
        "paired_fraction": on_tokens(has_pair[groups.dense].to(loss_q.dtype), mask),
        **(extra or {}),
    }
    return mask_outputs(on_tokens(loss_q[groups.dense], mask), diagnostics, mask)


def _sequence_log_ratio(logp: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``log π(y)/π_ref(y) = Σ_t (logp − ref)`` per row (token log-ratios clamped), ``[B]``."""
    return token_log_ratio(logp, ref, mask).sum(dim=1)


# --------------------------------------------------------------------------- TRPA


def trpa_pair_logits(
    scores: torch.Tensor,
    rewards: torch.Tensor,
    pairs: PreferencePairs,
    beta: float,
    anisotropy: float,
    top_level: float,
) -> torch.Tensor:
    """TRPA's pair logit ``h = β·a·(s_w − s_l)`` ``[P]`` from per-row scores ``s [B]``, with the
    Kahneman-Tversky weight ``a = anisotropy`` when the winner is at the top level
    (``r_w ≥ top_level``), else 1."""
    weight = torch.where(
        rewards[pairs.winner] >= top_level,
        torch.full_like(scores[pairs.winner], anisotropy),
        torch.ones_like(scores[pairs.winner]),
    )
    return beta * weight * (scores[pairs.winner] - scores[pairs.loser])


@losses.register("trpa", whole_groups=True, needs={"ref_logprobs"})
def trpa_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    beta: float = 0.1,
    anisotropy: float = 2.5,
    top_level: float = 1.0,
    trust_region_coef: float = 0.001,
    pairs: PairMode = "cross_level",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """TRPA (Su et al. 2025, "Trust Region Preference Approximation: A simple and stable
    reinforcement learning algorithm for LLM reasoning", arXiv:2504.04524).

    Rule-defined preference levels: a reward value is a level (the paper's levels, e.g. "correct
    and formatted > correct > formatted > neither", are what a rule-based reward's values encode).
    Every pair of completions of a group at different levels is a preference pair (winner at the
    higher level). With the length-normalised log-ratio to the reference
    ``s_i = mean_t (logp − ref_logp)``, a pair's loss is ``−log σ(h)``, ``h = β·a·(s_w − s_l)``
    (:func:`trpa_pair_logits`; ``a = anisotropy`` for a winner at the top level, the paper's KTPO
    weighting). The trust region is the k3 KL estimate with the old policy in the reference's place,
    ``exp(old_logp − logp) − (old_logp − logp) − 1`` per token, times ``trust_region_coef``, as in the
    authors' code (``low_var_kl``, ``tr_kl_loss_coef = 0.001``; their KL to the reference, also
    0.001, is the run's ``algorithm.kl``). On a single on-policy pass it is 0.

    Each group's value is the mean of its pairs' losses (the authors average over every pair of
    the micro-batch: groups with more cross-level pairs weigh more there), put on every real token of
    the group, plus the per-token trust-region term; use aggregation ``per_prompt_mean``.
    GUESS: the top level is a reward ``≥ top_level`` (1.0: a correct answer with 0/1 rewards; the
    paper's level 1). A group with a single level has no pair and adds only the trust region (the
    authors fall back to ``−log σ(±s)`` when a whole micro-batch has no pair; not done here).
    Shapes: ``logp, old_logp, mask, ctx.ref_logprobs [B, T]`` -> ``[B, T]``. Needs whole groups.
    Diagnostics: ``pair_margin`` (mean pair logit), ``paired_fraction``, ``kl_old`` (the trust-region KL).
    """
    ref = require_field(ctx.ref_logprobs, "ref_logprobs", "trpa").to(logp)
    groups, rewards = _labelled_groups(ctx, advantages, mask)
    found = preference_pairs(rewards, groups.dense, pairs)
    scores = row_mean(token_log_ratio(logp, ref, mask), mask)
    h = trpa_pair_logits(scores, rewards.to(scores.dtype), found, beta, anisotropy, top_level)
    loss_q = _pair_mean_per_group(F.softplus(-h), found, groups)
    loss, diagnostics = _group_outputs(loss_q, found, groups, mask, h)
    kl = keep_real(kl_k3(logp, old_logp), mask)
    diagnostics["kl_old"] = kl.detach()
    return keep_real(loss + trust_region_coef * kl, mask), diagnostics


# --------------------------------------------------------------------------- CoPG


def copg_pair_residuals(
    rewards: torch.Tensor, log_ratios: torch.Tensor, pairs: PreferencePairs, beta: float
) -> torch.Tensor:
    """CoPG's residual ``δ = R(y) − R(y') − β·(log π/π_ref(y) − log π/π_ref(y'))`` per pair ``[P]``,
    from ``rewards [B]`` and sequence log-ratios to the reference ``[B]``."""
    reward_gap = (rewards[pairs.winner] - rewards[pairs.loser]).to(log_ratios.dtype)
    return reward_gap - beta * (log_ratios[pairs.winner] - log_ratios[pairs.loser])


@losses.register("copg", whole_groups=True, needs={"ref_logprobs"})
def copg_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    beta: float = 0.1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CoPG, contrastive policy gradient (Flet-Berliac et al. 2024, "Contrastive Policy Gradient:
    Aligning LLMs on sequence-level scores in a supervised-friendly fashion", arXiv:2406.19185).

    For every pair ``(y, y')`` of completions of a group, the regularised reward gap is regressed to
    zero: ``ℓ = δ²``, ``δ = R(y) − R(y') − β·(log π(y)/π_ref(y) − log π(y')/π_ref(y'))``
    (:func:`copg_pair_residuals`; sequence log-probs summed over tokens, rewards ``ctx.rewards``).
    Its gradient ``−2βδ·(∇log π(y) − ∇log π(y'))`` is CoPG's contrastive policy gradient (each
    completion's regularised reward baselined by the other's) up to the factor ``4β``; no importance
    ratio, so the completions may come from any policy. The optimum ``π ∝ π_ref·exp(R/β)`` makes
    ``R − β log π/π_ref`` constant and every ``δ`` zero; with preference rewards it is IPO.
    Symmetric in ``y, y'``; pairs of equal reward pull their log-ratios together.

    Each group's value is the mean of ``ℓ`` over its unordered pairs, on every real token of the
    group; use aggregation ``per_prompt_mean``. GUESS: ``β = 0.1``; every pair of the group is used
    (the paper draws pairs of responses to a prompt).
    Shapes: ``logp, mask, ctx.ref_logprobs [B, T]`` -> ``[B, T]``. Needs whole groups.
    Diagnostics: ``pair_margin`` (mean ``δ`` of the group's pairs), ``paired_fraction``.
    """
    ref = require_field(ctx.ref_logprobs, "ref_logprobs", "copg").to(logp)
    groups, rewards = _labelled_groups(ctx, advantages, mask)
    found = preference_pairs(rewards, groups.dense, "all")
    delta = copg_pair_residuals(rewards, _sequence_log_ratio(logp, ref, mask), found, beta)
    return _group_outputs(_pair_mean_per_group(delta**2, found, groups), found, groups, mask, delta)


# --------------------------------------------------------------------------- POWER-DL


def power_pair_logits(logp: torch.Tensor, mask: torch.Tensor, pairs: PreferencePairs, beta: float) -> torch.Tensor:
    """POWER's pair logit ``h = β·(log π(y_w)/|y_w| − log π(y_l)/|y_l|) + β·(1/|y_w| − 1/|y_l|)`` ``[P]``:
    the Bradley-Terry logit of the rewards ``r(y) = β·w(y)·(log π(y) + 1)`` that Guiaşu's weighted
    entropy with weights ``w(y) = 1/|y|`` implies. ``logp, mask [B, T]``."""
    real = keep_real(logp, mask)
    length = mask.sum(dim=1).to(logp.dtype).clamp(min=1)
    implicit = beta * (real.sum(dim=1) + 1.0) / length
    return implicit[pairs.winner] - implicit[pairs.loser]


@losses.register("power_dl", whole_groups=True)
def power_dl_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    beta: float = 2.0,
    label_rate: float = 0.1,
    pairs: PairMode = "best_worst",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """POWER-DL (Rashidinejad & Tian 2024, "Sail into the Headwind: Alignment via Robust Rewards and
    Dynamic Labels against Reward Hacking", arXiv:2412.09544), reconstructed from the paper's
    abstract for preference pairs built from a group.

    POWER: maximising a reward with Guiaşu's weighted entropy (weights ``w(y) = 1/|y|``) instead of a
    KL to a reference gives implicit rewards ``r(y) = β·(log π(y) + 1)/|y|``, and the Bradley-Terry
    logit of a pair ``h = r(y_w) − r(y_l)`` (:func:`power_pair_logits`; no reference model).
    Dynamic labels: the hard label 1 of a pair moves toward the policy's own preference,
    ``ℓ = (1 − label_rate)·1 + label_rate·σ(h_old)`` (``h_old`` from ``old_logp``, no gradient), and the
    loss is the soft-label ``−ℓ·log σ(h) − (1 − ℓ)·log σ(−h)``, whose gradient ``σ(h) − ℓ`` vanishes
    once the policy's preference reaches the label (a stationary label short of 1) instead of
    pushing every pair to certainty: pairs the data support weakly stop pulling.

    What differs from the paper: the paper learns offline from a fixed dataset and updates each
    pair's label across training; here each pair exists in one step, so its label takes one update
    from the hard label. The robust (pessimistic) reward term is left out.
    GUESS: the implicit reward's form, ``β = 2.0``, ``label_rate = 0.1``, and the pairs
    (``"best_worst"``: one best-vs-worst pair per group; ``"cross_level"`` uses all).
    Shapes: ``logp, old_logp, mask [B, T]`` -> ``[B, T]``. Needs whole groups.
    Diagnostics: ``pair_margin`` (mean ``h``), ``paired_fraction``, ``label`` (mean dynamic label).
    """
    groups, rewards = _labelled_groups(ctx, advantages, mask)
    lengths = mask.sum(dim=1)
    found = preference_pairs(rewards, groups.dense, pairs, lengths)
    h = power_pair_logits(logp, mask, found, beta)
    h_old = power_pair_logits(old_logp.detach().to(logp), mask, found, beta)
    label = (1.0 - label_rate) + label_rate * torch.sigmoid(h_old)
    pair_loss = F.binary_cross_entropy_with_logits(h, label, reduction="none")
    label_q = _pair_mean_per_group(label, found, groups)
    return _group_outputs(
        _pair_mean_per_group(pair_loss, found, groups), found, groups, mask, h,
        {"label": on_tokens(label_q[groups.dense], mask)},
    )


# --------------------------------------------------------------------------- DPO on best/worst pairs


def dpo_pair_logits(
    logp: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor, pairs: PreferencePairs, beta: float
) -> torch.Tensor:
    """DPO's logit ``β·[(log π/π_ref)(y_c) − (log π/π_ref)(y_r)]`` per pair ``[P]``, sequence
    log-probs summed over tokens."""
    log_ratio = _sequence_log_ratio(logp, ref, mask)
    return beta * (log_ratio[pairs.winner] - log_ratio[pairs.loser])


@losses.register("best_worst_dpo", whole_groups=True, needs={"ref_logprobs"})
def best_worst_dpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    beta: float = 0.1,
    prefer_long: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The DPO stage of VerIPO (Li et al. 2025, "VerIPO: Cultivating Long Reasoning in Video-LLMs via
    Verifier-Guided Iterative Policy Optimization", arXiv:2505.19000): rollouts become preference
    pairs, trained with DPO (Rafailov et al. 2023, arXiv:2305.18290).

    Per group, one pair: a completion with the group's best reward (chosen) over one with its worst
    (rejected), when they differ (:func:`preference_pairs`, ``"best_worst"``); two completions with
    the same verdict are never paired, and a uniform group has no pair and adds 0. The loss is
    ``−log σ(β·[(l_c − l^ref_c) − (l_r − l^ref_r)])`` with sequence-summed log-probs; it is ``log 2``
    when the policy equals the reference.

    What differs from the paper: VerIPO's pairs come from a small LLM judging each rollout's
    reasoning (consistency, repetition, length) after a GRPO phase, and a separate DPO phase trains
    on them; here the reward is the verdict and every step trains on its own pairs. Alternate with
    GRPO by running the ``grpo`` and ``veripo_dpo`` recipes in turn.
    GUESS: among tied best completions the longest is chosen (``prefer_long``; VerIPO favours long,
    reflective reasoning), among tied worst the first; ``β = 0.1``.
    Shapes: ``logp, mask, ctx.ref_logprobs [B, T]`` -> ``[B, T]``. Needs whole groups.
    Diagnostics: ``pair_margin`` (the DPO logit), ``paired_fraction``.
    """
    ref = require_field(ctx.ref_logprobs, "ref_logprobs", "best_worst_dpo").to(logp)
    groups, rewards = _labelled_groups(ctx, advantages, mask)
    found = preference_pairs(rewards, groups.dense, "best_worst", mask.sum(dim=1) if prefer_long else None)
    h = dpo_pair_logits(logp, ref, mask, found, beta)
    return _group_outputs(_pair_mean_per_group(F.softplus(-h), found, groups), found, groups, mask, h)


# --------------------------------------------------------------------------- Rank-GRPO


@losses.register("rank_grpo")
def rank_grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Rank-GRPO's rank-level ratio (Zhu et al. 2025, "Rank-GRPO: Training LLM-based Conversational
    Recommender Systems with Reinforcement Learning", arXiv:2510.20150).

    Each item of a generated list (a line: :func:`list_item_ids`)
    is one action; every token of item ``k`` uses the item's geometric-mean ratio
    ``exp(mean_{t∈k} (logp − old_logp))`` in the PPO clipped surrogate with its (rank-level)
    advantage. This is SSPO's segment ratio with lines as segments. Pair it with the ``rank_grpo``
    advantage estimator, which gives each item's tokens their rank's advantage.
    The loss compares no rows, so groups may be split across micro-batches.
    GUESS: ``eps_low = eps_high = 0.2``. The authors leave newline tokens out of the loss; here a
    newline closes its item and learns with it.
    Shapes: ``logp, old_logp, mask [B, T]``, ``ctx.completion_token_texts [B][L_i]``, ``advantages``
    ``[B, T]`` (or ``[B]``) -> ``[B, T]``. Diagnostics: the clip fractions, ``item_ratio``.
    """
    texts = require_field(ctx.completion_token_texts, "completion_token_texts", "rank_grpo")
    items = list_item_ids(texts, logp.shape[1]).to(logp.device)
    ratio = torch.exp(segment_mean(token_log_ratio(logp, old_logp, mask), items, mask))
    loss, diagnostics = clipped_surrogate(ratio, broadcast_advantages(advantages, logp), eps_low, eps_high)
    diagnostics["item_ratio"] = ratio
    return mask_outputs(loss, diagnostics, mask)
