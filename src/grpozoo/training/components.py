"""The run's pipeline components, looked up by name and checked before any model loads: the
advantage estimator, token weightings, group filters, loss and selector, with their parameters
checked against their signatures (a misspelt or mistyped parameter stops the run at start-up)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grpozoo import registry
from grpozoo.algos.advantages import check_estimator_run
from grpozoo.algos.filters import AFTER_ADVANTAGES
from grpozoo.config import AlgorithmConfig, ComponentConfig
from grpozoo.registry import AdvantageSpec


@dataclass(frozen=True)
class GroupFilter:
    config: ComponentConfig
    fn: Callable[..., Any]
    stage: str  # before_advantages (the rollout side) or after_advantages (the learner side)


@dataclass(frozen=True)
class Components:
    advantage_fn: Callable[..., Any]
    advantage_spec: AdvantageSpec
    token_weight_fns: list[Callable[..., Any]]
    group_filters: list[GroupFilter]
    selector_cls: Callable[..., Any]

    def filters(self, stage: str) -> list[GroupFilter]:
        """The group filters of ``stage`` (``before_advantages`` or ``after_advantages``), in order."""
        return [f for f in self.group_filters if f.stage == stage]

    @property
    def refilling(self) -> list[str]:
        """The before-advantages filters that ask for further rounds of prompts (dynamic sampling)."""
        return [
            f.config.name for f in self.group_filters
            if f.stage != AFTER_ADVANTAGES and registry.group_filters.spec(f.config.name).refill
        ]


def build_components(algo: AlgorithmConfig, group_size: int) -> Components:
    """Look up and check every component of ``algo``; raises on an unknown name, a bad parameter,
    or an estimator that cannot run with ``group_size`` or the KL mode."""
    advantage_fn = registry.advantages.get(algo.advantage.name)
    registry.check_params("advantage estimator", algo.advantage.name, advantage_fn, algo.advantage.params, 2)
    token_weight_fns = [registry.token_weights.get(c.name) for c in algo.token_weights]
    for component, fn in zip(algo.token_weights, token_weight_fns, strict=True):
        registry.check_params("token weighting", component.name, fn, component.params, 0)
    registry.check_params("policy loss", algo.loss.name, registry.losses.get(algo.loss.name), algo.loss.params, 4)
    group_filters = []
    for component in algo.group_filters:
        fn = registry.group_filters.get(component.name)
        registry.check_params("group filter", component.name, fn, component.params, 1)
        stage = registry.group_filters.spec(component.name).stage_for(component.params)
        group_filters.append(GroupFilter(component, fn, stage))
    check_estimator_run(algo.advantage.name, group_size, algo.kl.coef > 0 and algo.kl.mode == "reward")
    selector_cls = registry.selectors.get(algo.selector.name)
    registry.check_params("selector", algo.selector.name, selector_cls, algo.selector.params, 2)
    return Components(
        advantage_fn, registry.advantages.spec(algo.advantage.name), token_weight_fns, group_filters, selector_cls
    )
