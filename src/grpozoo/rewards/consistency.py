"""GRPO-CARE's consistency bonus (Chen et al. 2025, "GRPO-CARE: Consistency-Aware Reinforcement
Learning for Multimodal Reasoning", arXiv:2506.16141), for text.

A slowly updated reference model (an exponential moving average of the policy) reads the question
and a completion's reasoning and gives the likelihood of the completion's own final answer,
``p_ref(answer | question, reasoning)``: high when the reasoning leads to the answer. A correct
completion whose likelihood beats its correct group peers' gets a bonus; a wrong one never does.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import torch

from grpozoo.algos.groups import group_sum
from grpozoo.registry import rewards
from grpozoo.rewards.combine import PolicyHandle
from grpozoo.rewards.common import correct_flags, need_column
from grpozoo.rewards.extraction import extract_answer
from grpozoo.rewards.model_rewards import loaded_model, teacher_forced_logprobs


def care_bonus(
    likelihoods: torch.Tensor, correct: torch.Tensor, group_ids: torch.Tensor, bonus: float = 0.5
) -> torch.Tensor:
    """GRPO-CARE's consistency bonus ``[B]``: ``bonus`` for a correct completion whose reference
    likelihood ``likelihoods [B]`` exceeds the mean likelihood of the correct members of its group
    (``group_ids [B]``), 0 otherwise. A wrong completion (``correct [B]`` False), a NaN likelihood or
    a group with one correct member gets none. Non-decreasing in the likelihood among the correct
    members of a group. (``p_i`` above the mean of the others is ``p_i`` above the mean of all.)"""
    known = correct & ~likelihoods.isnan()
    values = torch.where(known, likelihoods.double(), 0.0)
    count = group_sum(known.double(), group_ids).double()
    mean = group_sum(values, group_ids).double() / count.clamp(min=1)
    wins = known & (count > 1) & (values > mean)
    return torch.where(wins, bonus, 0.0).to(torch.float32)


def answer_spans(completions: Sequence[str], answers: Sequence[str | None]) -> list[tuple[str, str] | None]:
    """Each completion split at its final answer: ``(reasoning, answer)``, the reasoning being the
    text before the answer's last occurrence; None when there is no answer or it is not in the text."""
    out: list[tuple[str, str] | None] = []
    for text, answer in zip(completions, answers, strict=True):
        position = -1 if answer is None or not str(answer).strip() else text.rfind(str(answer).strip())
        out.append(None if position < 0 else (text[:position], str(answer).strip()))
    return out


def answer_likelihoods(
    lm, tokenizer, contexts: Sequence[str], targets: Sequence[str], batch_size: int = 8
) -> list[float]:
    """``exp(mean_t log p(target_t | context, target_<t))`` for each (context, target) pair under
    ``lm``: the length-normalised likelihood of the target's tokens, in (0, 1]. Context and target
    are tokenised apart (no special tokens) and joined; rows are right-padded, so the values do
    not depend on the batching."""
    heads, tails = [], []
    for context, target in zip(contexts, targets, strict=True):
        head = tokenizer(context, add_special_tokens=False)["input_ids"]
        if not head:  # the first target token needs something to be predicted from
            head = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id]
        heads.append(head)
        tails.append(tokenizer(target, add_special_tokens=False)["input_ids"])
    logps = teacher_forced_logprobs(lm, heads, tails, batch_size)
    return [float(t.mean().exp()) if len(t) else float("nan") for t in logps]


class EmaReference:
    """A slowly updated copy of a model: ``θ_ref ← decay · θ_ref + (1 − decay) · θ`` once per step
    (``update``). Lives in this process only: a resumed run starts it again from the policy."""

    def __init__(self, model, decay: float):
        self.source = weakref.ref(model)
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.decay = decay
        self.step: int | None = None

    @torch.no_grad()
    def update(self, model, step: int) -> None:
        if self.step is not None and step != self.step:
            for ref, live in zip(self.model.parameters(), model.parameters(), strict=True):
                ref.mul_(self.decay).add_(live.detach().to(ref.dtype), alpha=1.0 - self.decay)
        self.step = step


_REFERENCES: dict[int, EmaReference] = {}
_REFERENCES_LOCK = threading.Lock()


def ema_reference(model, decay: float, step: int) -> EmaReference:
    """The EMA reference of ``model`` (made on first use), updated to ``step``."""
    with _REFERENCES_LOCK:
        entry = _REFERENCES.get(id(model))
        if entry is None or entry.source() is not model:
            entry = _REFERENCES[id(model)] = EmaReference(model, decay)
        entry.update(model, step)
        return entry


@rewards.register("grpo_care", needs_policy=True)
def grpo_care_reward(
    completions: list[str],
    prompts: list[str],
    task_score: Sequence[float] | None = None,
    group_id: Sequence[Any] | None = None,
    extracted_answer: Sequence[str | None] | None = None,
    step: Sequence[int] | None = None,
    bonus: float = 0.5,
    ema_decay: float = 0.995,
    format_style: str | None = None,
    format_weight: float = 0.5,
    model: str | None = None,
    batch_size: int = 8,
    device: str | None = None,
    correct_threshold: float = 1.0,
    policy: PolicyHandle | None = None,
    **columns: Any,
) -> list[float]:
    """GRPO-CARE correctness + consistency bonus (Chen et al. 2025, "GRPO-CARE: Consistency-Aware
    Reinforcement Learning for Multimodal Reasoning", arXiv:2506.16141).

    ``[B]``: ``correct + format_weight·format + care_bonus`` with ``correct`` 1 when
    ``task_score >= correct_threshold``, ``format`` 1 when the completion holds an answer in
    ``format_style`` (``boxed``, ``answer_tag``; None: no format term) and the bonus
    (``care_bonus``) ``bonus`` for a correct completion whose reference likelihood of its final
    answer given the prompt and its reasoning (``answer_likelihoods``; the answer is the
    ``extracted_answer`` column, the reasoning the text before its last occurrence) exceeds the mean
    of its group's correct members. The reference is an EMA (``ema_decay``) of the policy, updated
    once per training step (``EmaReference``); outside a trainer, or with ``model`` given, a frozen
    checkpoint. Likelihoods are computed for the correct completions only. Run it with no KL term
    (the paper drops it).

    GUESS: the threshold rule (above the mean of the correct peers), ``bonus`` 0.5, ``ema_decay``
    0.995, the likelihood's length normalisation (geometric mean over the answer's tokens) and
    ``format_weight`` 0.5. Differs from the paper: the EMA lives in memory and restarts from the
    policy on resume.
    """
    size = len(completions)
    correct = correct_flags("grpo_care", task_score, size, correct_threshold)
    groups = need_column("grpo_care", "group_id", group_id, size)
    answers = need_column("grpo_care", "extracted_answer", extracted_answer, size)
    base = [float(ok) for ok in correct]
    if format_style is not None and format_weight:
        for i, text in enumerate(completions):
            base[i] += format_weight * float(extract_answer(text, format_style) is not None)
    spans = answer_spans(completions, answers)
    chosen = [i for i in range(size) if correct[i] and spans[i] is not None]
    likelihoods = torch.full((size,), float("nan"), dtype=torch.float64)
    if chosen and bonus:
        lm, tokenizer = _reference(model, device, policy, ema_decay, step)
        values = answer_likelihoods(
            lm,
            tokenizer,
            [prompts[i] + spans[i][0] for i in chosen],  # type: ignore[index]
            [spans[i][1] for i in chosen],  # type: ignore[index]
            batch_size,
        )
        likelihoods[chosen] = torch.tensor(values, dtype=torch.float64)
    labels: dict[Any, int] = {}
    ids = torch.tensor([labels.setdefault(g, len(labels)) for g in groups])
    extra = care_bonus(likelihoods, torch.tensor(correct), ids, bonus)
    return [b + float(e) for b, e in zip(base, extra, strict=True)]


def _reference(model: str | None, device: str | None, policy: PolicyHandle | None, decay: float, step):
    """The reference LM and its tokenizer: a frozen checkpoint (``model``), else the EMA of the policy."""
    if model is not None:
        return loaded_model("causal", model, device or (policy.device if policy is not None else "cpu"))
    if policy is None:
        raise ValueError(
            "reward 'grpo_care' has no reference model: outside the trainer give it one, params: {model: PATH}"
        )
    current = int(step[0]) if step else 0
    return ema_reference(policy.model, decay, current).model, policy.tokenizer
