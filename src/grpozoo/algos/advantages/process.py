"""Process advantages: the group-relative outcome advantage plus a per-token term from a process
signal the trainer fills on demand (a critic's flagged steps, the policy's belief in the gold answer).
The signals themselves are computed in :mod:`grpozoo.rewards.process`."""

from __future__ import annotations

from typing import Any, Literal

import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.advantages.trees import segment_advantages
from grpozoo.algos.groups import group_sum
from grpozoo.registry import advantages
from grpozoo.rewards.process import CRITIC_RUBRIC, SEPARATORS, Split, token_offsets
from grpozoo.rollouts import Rollouts, required

# ----------------------------------------------------------------------------- CAPO


@advantages.register("capo", needs={"step_flags"})
def capo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    penalty_correct: float = 0.2,
    penalty_incorrect: float = 0.5,
    eps: float = 1e-4,
    critiques: int = 3,
    threshold: int = 2,
    critic_model: str | None = None,
    critic_rubric: str = CRITIC_RUBRIC,
    split: Split = "lines",
    critic_max_new_tokens: int = 24,
    critic_temperature: float = 0.7,
    critic_batch_size: int = 8,
    critic_answer_prefix: str = "Wrong steps:",
    seed: int = 0,
) -> torch.Tensor:
    """CAPO's token advantage (Xie et al. 2025, "CAPO: Towards Enhancing LLM Reasoning through
    Verifiable Generative Credit Assignment", arXiv:2508.02298): the GRPO outcome advantage of the
    completion plus a penalty on the tokens of the steps an LLM critic flagged as wrong,
    ``A_{i,t} = A_i^outcome − λ_i · flag_{i,t}``, with ``λ_i = penalty_correct`` when the task scored
    the final answer correct (``ctx.task_scores ≥ 1``) and ``penalty_incorrect`` otherwise.

    ``ctx.step_flags [B, T]`` are the voted flags the trainer fills (the ``step_flags`` provider of
    :mod:`grpozoo.rewards.process`): ``critiques`` critiques sampled at ``critic_temperature``, a step
    flagged when at least ``threshold`` of them name it; the critic is ``critic_model`` or the
    policy's base weights, asked with ``critic_rubric``, its answer started with ``critic_answer_prefix``;
    steps are ``split`` on lines. Those params are
    read by the trainer, not here. Without flags the advantage is GRPO's, on every token.
    GUESS: ``penalty_correct = 0.2``, ``penalty_incorrect = 0.5`` (the paper's penalty differs by the
    answer's correctness; the values are guessed), ``critiques = 3``, ``threshold = 2`` (majority),
    line steps. Differs from the paper: the default critic is the policy's base model, not a large
    off-the-shelf LLM. Shapes: ``rewards [B]`` -> ``[B, T]``.
    """
    flags = required(ctx.step_flags, "ctx.step_flags", "capo")
    mask = ctx.completion_mask.to(torch.float32)
    outcome = grpo_advantage(rewards, group_ids, ctx, eps=eps).to(torch.float32)
    correct = required(ctx.task_scores, "ctx.task_scores", "capo") >= 1.0
    penalty = torch.where(correct, penalty_correct, penalty_incorrect).to(torch.float32)
    return (outcome.unsqueeze(1) - penalty.unsqueeze(1) * flags.to(torch.float32)) * mask


# ----------------------------------------------------------------------------- GRPO-VPS


def separator_boundaries(token_texts: list[list[str]], width: int, split: Split = "blank_lines") -> torch.Tensor:
    """``[B, T+1]`` bool over states (position p = after p completion tokens): True at 0, at each
    row's length, and after the token in which a separator (``split``: line breaks or blank lines)
    ends, so every segment is a step and its trailing separator."""
    out = torch.zeros(len(token_texts), width + 1, dtype=torch.bool)
    out[:, 0] = True
    for i, pieces in enumerate(token_texts):
        ends = [end for _, end in token_offsets(pieces)]
        for match in SEPARATORS[split].finditer("".join(pieces)):
            out[i, next(k for k, end in enumerate(ends) if end >= match.end()) + 1] = True
        out[i, len(pieces)] = True
    return out


def _vps_boundaries(ctx: Rollouts, split: Split = "blank_lines", **_: Any) -> torch.Tensor:
    texts = required(ctx.completion_token_texts, "ctx.completion_token_texts", "grpo_vps")
    return separator_boundaries([list(t) for t in texts], ctx.completion_mask.shape[1], split)


def group_segment_standardise(
    deltas: torch.Tensor, starts: torch.Tensor, group_ids: torch.Tensor, eps: float
) -> torch.Tensor:
    """``[B, T]``: each token's segment value ``deltas`` standardised by the mean and (population) std
    of the values of all segments of its group, each segment counted once (at its first token,
    ``starts``). A group whose segments all share a value gets 0."""
    w = starts.double()
    n = group_sum((w).sum(dim=1), group_ids).double().clamp(min=1)
    mean = group_sum((deltas * w).sum(dim=1), group_ids).double() / n
    var = group_sum((((deltas - mean.unsqueeze(1)) ** 2) * w).sum(dim=1), group_ids).double() / n
    return (deltas - mean.unsqueeze(1)) / (var.sqrt().unsqueeze(1) + eps)


@advantages.register("grpo_vps", needs={"answer_logprobs"}, segment_boundaries=_vps_boundaries)
def grpo_vps_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    beta: float = 0.1,
    space: Literal["prob", "log"] = "prob",
    split: Split = "blank_lines",
    eps: float = 1e-4,
    answer_template: str = "\nThe final answer is ",
    answer_column: str = "answer",
    forward_batch_size: int = 8,
) -> torch.Tensor:
    """GRPO-VPS (Wang et al. 2026, "GRPO-VPS: Enhancing Group Relative Policy Optimization with
    Verifiable Process Supervision for Effective Reasoning", arXiv:2604.20659): the GRPO outcome
    advantage plus a segment-wise progress term from the policy's own belief in the gold answer,
    ``A_{i,t} = A_i^outcome + β · norm(Δ_{seg(t)})``.

    The completion is cut into segments after each separator (``split``, see
    :func:`separator_boundaries`); at each boundary k the trainer fills ``ctx.answer_logprobs
    [B, T+1]`` with ``log p_k = log π(gold | x, y_≤k, answer_template)`` by teacher forcing (the
    ``answer_logprobs`` provider; the gold answer is the row's ``answer_column``; the forwards go
    ``forward_batch_size`` at a time). Segment k's progress is ``Δ_k = p_k − p_{k−1}``
    (``space="log"``: of ``log p``); every token of the segment gets the same ``Δ``, standardised over
    all segments of the completion's group (:func:`group_segment_standardise`). Constant ``p_k`` gives
    ``Δ = 0`` everywhere and exactly GRPO.
    GUESS: ``beta = 0.1``, ``space = "prob"``, blank-line segments, the template
    ``"\\nThe final answer is "``, the group-of-segments standardisation. Shapes: ``rewards [B]`` ->
    ``[B, T]``.
    """
    given = required(ctx.answer_logprobs, "ctx.answer_logprobs", "grpo_vps")
    mask = ctx.completion_mask.bool()
    b, t = mask.shape
    lengths = mask.sum(dim=1)
    beyond_end = torch.arange(t + 1).unsqueeze(0) > lengths.unsqueeze(1)
    boundaries = torch.isfinite(given) & ~beyond_end
    rows = torch.arange(b)
    if not (bool(boundaries[:, 0].all()) and bool(boundaries[rows, lengths].all())):
        raise ValueError("grpo_vps: ctx.answer_logprobs must be finite at position 0 and at each row's length")
    values = given.double().exp() if space == "prob" else given.double()
    deltas = segment_advantages(torch.where(boundaries, values, 0.0), boundaries, mask)
    starts = boundaries[:, :t] & mask
    process = group_segment_standardise(deltas, starts, group_ids, eps) * mask
    outcome = grpo_advantage(rewards, group_ids, ctx, eps=eps).double()
    out = (outcome.unsqueeze(1) + beta * process) * mask
    return out.to(torch.float32)


