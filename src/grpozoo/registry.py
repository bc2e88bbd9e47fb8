"""Name -> component registries with "did you mean" errors."""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
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


# Importing these packages registers every built-in component.
COMPONENT_PACKAGES = ("grpozoo.algos", "grpozoo.selectors", "grpozoo.rewards", "grpozoo.recipes")


def load_components() -> None:
    for package in COMPONENT_PACKAGES:
        importlib.import_module(package)


class Registry(Generic[T]):
    """A named table of components of one kind (advantages, losses, rewards, …)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        load_components()
        if name not in self._items:
            choices = sorted(self._items)
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{did_you_mean(name, choices)} "
                f"Valid choices: {', '.join(choices)}"
            )
        return self._items[name]

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


# What the trainer can compute on demand for a component that asks (see docs/components.md).
KNOWN_NEEDS = frozenset({"old_logprobs", "ref_logprobs", "baseline_rewards", "segment_values"})


def needs(*names: str) -> Callable[[T], T]:
    """Declare the on-demand batch fields a component reads, e.g. ``@needs("old_logprobs")``."""
    unknown = set(names) - KNOWN_NEEDS
    if unknown:
        raise ValueError(f"unknown need(s) {sorted(unknown)}; known: {sorted(KNOWN_NEEDS)}")

    def decorator(component: T) -> T:
        component.needs = frozenset(names)  # type: ignore[attr-defined]
        return component

    return decorator


def needs_of(component: Any) -> frozenset[str]:
    return getattr(component, "needs", frozenset())


advantages: Registry[Callable[..., Any]] = Registry("advantage estimator")
token_weights: Registry[Callable[..., Any]] = Registry("token weighting")
group_filters: Registry[Callable[..., Any]] = Registry("group filter")
losses: Registry[Callable[..., Any]] = Registry("policy loss")
aggregations: Registry[Callable[..., Any]] = Registry("loss aggregation")
kl_estimators: Registry[Callable[..., Any]] = Registry("KL estimator")
rewards: Registry[Callable[..., Any]] = Registry("reward")
selectors: Registry[Callable[..., Any]] = Registry("selector")
recipes: Registry[Any] = Registry("recipe")
