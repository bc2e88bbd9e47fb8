"""Multi-objective rewards for safe and aligned generation: several aspect scores (safety,
helpfulness, truthfulness, …) combined into one scalar by a weighted sum, on which GRPO then runs
unchanged (Li et al. 2025, "Optimizing Safe and Aligned Language Generation: A Multi-Objective GRPO
Approach", arXiv:2503.21819).

Each aspect is itself a reward (a registered name or ``module:function``, with its own params):
the heads of a multi-label reward model (``reward_model`` with ``label: k``), the task's verifier,
an LLM judge, or the rule-based ``safety_rules`` stand-in below.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.errors import ConfigError
from grpozoo.registry import check_params
from grpozoo.registry import rewards as reward_registry
from grpozoo.rewards.combine import PolicyHandle

Normalisation = Literal["none", "group", "batch"]


def combine_objectives(
    scores: torch.Tensor,
    weights: torch.Tensor,
    group_ids: torch.Tensor,
    normalize: Normalisation = "none",
    eps: float = 1e-6,
) -> torch.Tensor:
    """The weighted sum ``r = Σ_k w_k · n(r_k)`` ``[B]`` of aspect scores ``scores [K, B]`` with
    ``weights [K]``. ``n`` standardises each aspect before weighting: ``"none"`` leaves it as it is
    (the paper's plain weighted sum), ``"group"`` to zero mean and unit std within each group
    (``group_ids [B]``), ``"batch"`` over the batch, so that aspects on different scales weigh by
    their ``w_k`` alone. NaN (an aspect with no opinion on a sample) adds nothing to that sample and
    is left out of its aspect's statistics."""
    present = ~scores.isnan()
    values = torch.where(present, scores.double(), 0.0)
    if normalize == "group":
        rows = []
        for k in range(values.shape[0]):
            kept = present[k]
            row = torch.zeros_like(values[k])
            if kept.any():
                own = values[k][kept]
                ids = group_ids[kept]
                row[kept] = grpo_advantage(own, ids, eps=eps)
            rows.append(row)
        values = torch.stack(rows) if rows else values
    elif normalize == "batch":
        counts = present.sum(dim=1, keepdim=True).clamp(min=1)
        mean = values.sum(dim=1, keepdim=True) / counts
        var = (torch.where(present, values - mean, 0.0) ** 2).sum(dim=1, keepdim=True) / (counts - 1).clamp(min=1)
        values = torch.where(present, (values - mean) / (var.sqrt() + eps), 0.0)
    elif normalize != "none":
        raise ValueError(f"normalize={normalize!r} is not one of 'none', 'group', 'batch'")
    return (weights.double()[:, None] * values).sum(dim=0).to(torch.float32)


# ---------------------------------------------------------------------------------------------
# Aspects: rewards called by other rewards


def aspect_name(aspect: dict[str, Any]) -> str:
    return str(aspect.get("label") or aspect["name"].rpartition(":")[2])


def check_aspects(reward: str, aspects: Sequence[dict[str, Any]]) -> None:
    """Each aspect is ``{name, weight?, params?, label?}`` naming a reward that exists and takes
    those params; fails at start-up otherwise."""
    from grpozoo.rewards.combine import load_reward_function

    if not aspects:
        raise ConfigError(f"reward {reward!r} needs at least one aspect: aspects: [{{name: task, weight: 1.0}}, …]")
    for aspect in aspects:
        unknown = set(aspect) - {"name", "weight", "params", "label"}
        if "name" not in aspect or unknown:
            raise ConfigError(
                f"reward {reward!r}: aspect {aspect!r} must be {{name, weight, params, label}}"
                + (f"; unknown key(s) {sorted(unknown)}" if unknown else "")
            )
        fn = load_reward_function(aspect["name"])
        params = dict(aspect.get("params") or {})
        check_params("reward", aspect["name"], fn, params, 2)
        check = reward_registry.spec(aspect["name"]).check if aspect["name"] in reward_registry else None
        if check is not None:
            check(**params)
        if not isinstance(aspect.get("weight", 1.0), int | float) or isinstance(aspect.get("weight"), bool):
            raise ConfigError(f"reward {reward!r}: aspect {aspect['name']!r} weight must be a number")
    names = [aspect_name(a) for a in aspects]
    if len(set(names)) != len(names):
        raise ConfigError(f"reward {reward!r}: two aspects share a name in {names}; give one a label")


def call_reward(
    name: str,
    params: dict[str, Any],
    completions: list[str],
    prompts: list[str],
    columns: dict[str, Any],
    policy: PolicyHandle | None = None,
) -> list[float]:
    """Another reward's scores ``[B]`` (NaN where it has no opinion), called as the trainer calls it;
    a reward registered with ``needs_policy`` receives ``policy``."""
    from grpozoo.rewards.combine import RewardModel, load_reward_function

    fn = load_reward_function(name)
    extra = {"policy": policy} if name in reward_registry and reward_registry.spec(name).needs_policy else {}
    values = fn(completions, prompts, **columns, **params, **extra)
    return RewardModel._check(name, values, len(completions)).tolist()


def aspect_scores(
    aspects: Sequence[dict[str, Any]],
    completions: list[str],
    prompts: list[str],
    columns: dict[str, Any],
    policy: PolicyHandle | None = None,
) -> torch.Tensor:
    """``[K, B]``: each aspect's scores (NaN where it has no opinion)."""
    return torch.tensor(
        [
            call_reward(a["name"], dict(a.get("params") or {}), completions, prompts, columns, policy)
            for a in aspects
        ],
        dtype=torch.float64,
    ).reshape(len(aspects), len(completions))


def _check_multi_objective(aspects: Sequence[dict[str, Any]] = (), **_: Any) -> None:
    check_aspects("multi_objective", aspects)


@reward_registry.register("multi_objective", needs_policy=True, check=_check_multi_objective)
def multi_objective_reward(
    completions: list[str],
    prompts: list[str],
    aspects: Sequence[dict[str, Any]] = (),
    normalize: Normalisation = "none",
    group_id: Sequence[Any] | None = None,
    policy: PolicyHandle | None = None,
    **columns: Any,
) -> list[float | None]:
    """Multi-objective weighted reward (Li et al. 2025, "Optimizing Safe and Aligned Language
    Generation: A Multi-Objective GRPO Approach", arXiv:2503.21819).

    ``[B]``: ``r = Σ_k w_k · n(r_k)`` (``combine_objectives``) over ``aspects``, a list of
    ``{name, weight, params, label}``: each a reward (registered or ``module:function``) scoring one
    aspect, e.g. the heads of a multi-label reward model as ``{name: reward_model, params: {model:
    PATH, label: k}}``, or ``task`` for helpfulness/correctness and ``safety_rules`` for safety.
    ``normalize`` standardises each aspect before weighting (``none``: the paper's plain sum;
    ``group``: within each prompt's group; ``batch``). A sample on which every aspect has no opinion
    gets ``None``. With a one-hot ``w`` it is that aspect's reward; adding a constant to an aspect
    shifts every reward of a group alike, so GRPO's advantage does not move.

    GUESS: the weights (the paper does not give them: equal by default in the recipe) and the
    per-aspect normalisation (none).
    """
    size = len(completions)
    if group_id is None and normalize == "group":
        raise ValueError("reward 'multi_objective' with normalize='group' needs the column 'group_id'")
    columns = {**columns, **({"group_id": group_id} if group_id is not None else {})}
    scores = aspect_scores(aspects, completions, prompts, columns, policy)
    weights = torch.tensor([float(a.get("weight", 1.0)) for a in aspects], dtype=torch.float64)
    labels: dict[Any, int] = {}
    ids = torch.tensor(list(range(size)) if group_id is None else [labels.setdefault(g, len(labels)) for g in group_id])
    total = combine_objectives(scores, weights, ids, normalize)
    nothing = scores.isnan().all(dim=0)
    return [None if nothing[i] else float(total[i]) for i in range(size)]


# ---------------------------------------------------------------------------------------------
# A rule-based safety aspect

# GUESS: a few patterns of plainly harmful instructions and abuse; a stand-in for a safety head
UNSAFE_PATTERNS = (
    r"\b(?:how to|steps? to|instructions? (?:to|for))\s+(?:make|build|synthesi[sz]e|assemble)\s+(?:a\s+)?"
    r"(?:bomb|explosive|nerve agent|bioweapon|pipe bomb|meth(?:amphetamine)?)\b",
    r"\bkill (?:yourself|urself)\b",
    r"\byou should (?:hurt|harm|kill)\b",
    r"\b(?:credit card|social security) numbers? (?:of|for) (?:real )?(?:people|customers)\b",
)


@reward_registry.register("safety_rules")
def safety_rules_reward(
    completions: list[str],
    prompts: list[str],
    patterns: Sequence[str] = UNSAFE_PATTERNS,
    **columns: Any,
) -> list[float]:
    """Rule-based safety score ``[B]`` for the multi-objective reward (Li et al. 2025, "Optimizing Safe
    and Aligned Language Generation: A Multi-Objective GRPO Approach", arXiv:2503.21819): 1.0 when no
    unsafe ``patterns`` (regular expressions, case-insensitive) occurs in the completion, 0.0 when one
    does. Whitespace and zero-width characters are collapsed first, so spacing out a phrase does not
    hide it.

    GUESS: the paper's safety score is a head of a learned multi-label reward model; these patterns
    stand in for it where no such checkpoint is at hand (give ``reward_model`` as the safety aspect
    when one is).
    """
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    out = []
    for text in completions:
        flat = re.sub(r"[\u200b-\u200d\ufeff]", "", text)
        flat = re.sub(r"\s+", " ", flat)
        out.append(0.0 if any(p.search(flat) for p in compiled) else 1.0)
    return out
