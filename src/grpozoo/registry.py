"""Name -> component registries with "did you mean" errors."""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """An unknown component name; the message lists the valid choices."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3)
    # a choice with exactly the typed letters (two swapped, "gpro") beats a one-letter change ("gtpo")
    close.sort(key=lambda choice: sorted(choice) != sorted(name))
    return f" Did you mean {close[0]!r}?" if close else ""


# What the trainer can compute on demand for a component that asks (see docs/components.md).
KNOWN_NEEDS = frozenset({"old_logprobs", "ref_logprobs", "baseline_rewards", "segment_values"})

# Importing these packages registers every built-in component.
COMPONENT_PACKAGES = ("grpozoo.algos", "grpozoo.selectors", "grpozoo.rewards", "grpozoo.recipes")


def load_components() -> None:
    for package in COMPONENT_PACKAGES:
        importlib.import_module(package)


@dataclass(frozen=True)
class Spec:
    """What the pipeline must know of a component besides its function, declared where it is
    registered (``@losses.register("etr", whole_groups=True)``).

    ``needs``: the on-demand batch fields the component reads (see :data:`KNOWN_NEEDS`); the
    trainer computes them only for runs that use such a component."""

    needs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs", frozenset(self.needs))
        unknown = self.needs - KNOWN_NEEDS
        if unknown:
            raise ValueError(f"unknown need(s) {sorted(unknown)}; known: {sorted(KNOWN_NEEDS)}")


@dataclass(frozen=True)
class LossSpec(Spec):
    """``whole_groups``: the loss compares the rows of a group, so micro-batches keep groups whole.
    ``after_step(state, metrics, **params)``: the loss's own state update once per optimiser step
    (e.g. a dual variable), from the step's metrics."""

    whole_groups: bool = False
    after_step: Callable[..., None] | None = None


@dataclass(frozen=True)
class AdvantageSpec(Spec):
    """``segment_boundaries(ctx, **params) -> bool [B, T+1]``: where the estimator wants Monte-Carlo
    state values (the ``segment_values`` need)."""

    segment_boundaries: Callable[..., Any] | None = None


BEFORE_ADVANTAGES = "before_advantages"
AFTER_ADVANTAGES = "after_advantages"


@dataclass(frozen=True)
class FilterSpec(Spec):
    """``stage``: ``"before_advantages"`` or ``"after_advantages"``, or ``stage(**params)`` choosing
    one from the filter's parameters. ``refill``: when fewer groups survive than a step asks for,
    the trainer samples further rounds of prompts (DAPO's dynamic sampling)."""

    stage: str | Callable[..., str] = BEFORE_ADVANTAGES
    refill: bool = False

    def stage_for(self, params: dict[str, Any]) -> str:
        stage = self.stage(**params) if callable(self.stage) else self.stage
        if stage not in (BEFORE_ADVANTAGES, AFTER_ADVANTAGES):
            raise ValueError(
                f"group filter stage {stage!r} is not one of {BEFORE_ADVANTAGES!r}, {AFTER_ADVANTAGES!r}"
            )
        return stage


@dataclass(frozen=True)
class RewardSpec(Spec):
    """``reports_timeouts``: the reward can miss samples that run out of time, so its timeout count
    is logged from the first step."""

    reports_timeouts: bool = False


S = TypeVar("S", bound=Spec)


class Registry(Generic[T, S]):
    """A named table of components of one kind (advantages, losses, rewards, …), each with the
    :class:`Spec` it was registered with."""

    def __init__(self, kind: str, spec_type: type[S]):
        self.kind = kind
        self.spec_type = spec_type
        self._items: dict[str, T] = {}
        self._specs: dict[str, S] = {}

    def register(self, name: str, **spec: Any) -> Callable[[T], T]:
        """Register under ``name``; keyword arguments are the component's :class:`Spec` fields."""
        declared = self.spec_type(**spec)

        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            self._specs[name] = declared
            return item

        return decorator

    def get(self, name: str) -> T:
        self._check(name)
        return self._items[name]

    def spec(self, name: str) -> S:
        self._check(name)
        return self._specs[name]

    def _check(self, name: str) -> None:
        load_components()
        if name not in self._items:
            choices = sorted(self._items)
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{did_you_mean(name, choices)} "
                f"Valid choices: {', '.join(choices)}"
            )

    def names(self) -> list[str]:
        load_components()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        load_components()
        return name in self._items


def check_params(kind: str, name: str, fn: Callable[..., Any], params: dict[str, Any], positional: int) -> None:
    """Fail at start-up when ``params`` names a keyword that ``fn`` does not take.

    ``positional`` is the number of leading arguments the pipeline itself passes.
    """
    signature = inspect.signature(fn)
    accepted = [p for p in list(signature.parameters)[positional:] if p != "ctx"]
    if any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        return
    for key in params:
        if key not in accepted:
            raise ValueError(
                f"{kind} {name!r} has no parameter {key!r}.{did_you_mean(key, accepted)} "
                f"Its parameters: {', '.join(accepted) or '(none)'}"
            )


advantages: Registry[Callable[..., Any], AdvantageSpec] = Registry("advantage estimator", AdvantageSpec)
token_weights: Registry[Callable[..., Any], Spec] = Registry("token weighting", Spec)
group_filters: Registry[Callable[..., Any], FilterSpec] = Registry("group filter", FilterSpec)
losses: Registry[Callable[..., Any], LossSpec] = Registry("policy loss", LossSpec)
aggregations: Registry[Callable[..., Any], Spec] = Registry("loss aggregation", Spec)
kl_estimators: Registry[Callable[..., Any], Spec] = Registry("KL estimator", Spec)
rewards: Registry[Callable[..., Any], RewardSpec] = Registry("reward", RewardSpec)
selectors: Registry[Callable[..., Any], Spec] = Registry("selector", Spec)
recipes: Registry[Any, Spec] = Registry("recipe", Spec)
