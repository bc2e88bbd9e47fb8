"""Advantage estimators, one module per family: ``(rewards [B], group_ids [B], ctx, **params)
-> advantages [B] or [B, T]`` or an :class:`AdvantageOutput`. See docs/components.md.

Importing this package imports every module in it, which registers its estimators.
"""

import importlib
import pkgutil
from dataclasses import dataclass, field

import torch

from grpozoo.algos.kl import kl_to_go
from grpozoo.errors import ConfigError
from grpozoo.registry import advantages


@dataclass
class AdvantageOutput:
    """What an estimator returns when it does more than give advantages: ``keep [B]`` (bool) drops
    rows before learning (False = dropped); ``extras`` are per-row ``[B]`` tensors stored in
    ``ctx.extras`` for later components."""

    advantages: torch.Tensor  # [B] or [B, T]
    keep: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


def reward_with_kl(
    how: str | None, rewards: torch.Tensor, penalty: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """What an estimator registered with ``kl_in_reward=how`` receives in place of ``rewards`` when the
    per-token KL penalty ``penalty = β·kl`` is folded into the reward (``algorithm.kl.mode=reward``).

    ``"returns"``: the return-to-go of the per-token reward ``r·1[t = last] − β·kl_t``, that is
    ``G_t = r − β·Σ_{s≥t} kl_s`` on real tokens and 0 on padding, ``[B, T]`` (REINFORCE++, Hu 2025,
    arXiv:2501.03262, whitens these). ``"sequence"``: the sequence return ``r − β·Σ_t kl_t``, ``[B]``
    (RLOO's KL-regularised reward, Ahmadian et al. 2024, arXiv:2402.14740).
    Shapes: ``rewards [B]``, ``penalty, mask [B, T]``.
    """
    mask = mask.to(penalty.dtype)
    if how == "returns":
        return rewards.unsqueeze(1) * mask - kl_to_go(penalty, mask)
    if how == "sequence":
        return rewards - (penalty * mask).sum(dim=1)
    raise ValueError(f"kl_in_reward={how!r} is not 'returns' or 'sequence'")


def check_estimator_run(name: str, group_size: int, kl_in_reward: bool) -> None:
    """Refuse at start-up a run the estimator ``name`` cannot learn from, naming the fix: a group of
    one completion for an estimator that compares the completions of a prompt (``needs_group``), or
    a KL penalty in the reward (``kl_in_reward``, True for ``algorithm.kl.mode=reward`` with a
    positive coefficient) for one not registered to take it."""
    spec = advantages.spec(name)
    if spec.needs_group and group_size < 2:
        single = [n for n in advantages.names() if not advantages.spec(n).needs_group]
        raise ConfigError(
            f"advantage estimator {name!r} compares the completions of the same prompt: "
            f"rollout.group_size={group_size} leaves one completion per prompt and nothing to compare it "
            f"with; set rollout.group_size ≥ 2, or choose an estimator that needs no group: "
            f"{', '.join(single)}"
        )
    if kl_in_reward and spec.kl_in_reward is None:
        takers = [n for n in advantages.names() if advantages.spec(n).kl_in_reward is not None]
        raise ConfigError(
            f"advantage estimator {name!r} cannot take a KL penalty folded into the reward "
            f"(algorithm.kl.mode=reward): set algorithm.kl.mode=loss, or choose an estimator that takes it: "
            f"{', '.join(takers)}"
        )


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
