"""Name -> component registries with "did you mean" errors."""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections import abc
from collections.abc import Callable
from dataclasses import dataclass
from types import UnionType
from typing import Any, Generic, Literal, TypeVar, Union, get_args, get_origin

from grpozoo.errors import ConfigError, UserInputError

T = TypeVar("T")


class UnknownNameError(KeyError, UserInputError):
    """An unknown component name; the message lists the valid choices."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3)
    # a choice with exactly the typed letters (two swapped, "gpro") beats a one-letter change ("gtpo")
    close.sort(key=lambda choice: sorted(choice) != sorted(name))
    return f" Did you mean {close[0]!r}?" if close else ""


# What the trainer can compute on demand for a component that asks (see docs/components.md).
KNOWN_NEEDS = frozenset({"old_logprobs", "ref_logprobs", "entropies", "baseline_rewards", "segment_values",
                         "step_flags", "answer_logprobs", "budget_rewards",
                         "values", "probe_values",
                         "demonstrations", "privileged_prompts", "teacher_logprobs", "teacher_entropies"})

# Importing these packages registers every built-in component.
COMPONENT_PACKAGES = (
    "grpozoo.algos", "grpozoo.selectors", "grpozoo.rewards", "grpozoo.recipes", "grpozoo.training.providers",
    "grpozoo.training.optimizers", "grpozoo.training.critics",
)


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
    (e.g. a dual variable), from the step's metrics.

    Two-phase losses take statistics over the whole step's batch, so that splitting it into
    micro-batches never changes a gradient:

    - ``statistics(advantages, mask, ctx, **params) -> {name: tensor}``: statistics of the batch
      itself (rewards, advantages, entropies);
    - ``policy_statistics(logp, old_logp, advantages, mask, ctx, **params) -> {name: tensor}``:
      statistics that read the current policy's log-probs ``logp`` (no gradient). The trainer runs
      one no-grad forward over the batch for them at every optimiser iteration (none on the first
      when the old log-probs are the current ones).

    Both run on the whole learning batch (``ctx``, ``mask [B, T]``) before any micro-batch's loss,
    at every optimiser iteration. Each value is a scalar (0-dim) or a per-row ``[B]`` or per-token
    ``[B, T]`` tensor; the loss receives their union as its ``statistics`` keyword argument, per-row
    and per-token values cut to the micro-batch's rows (and columns)."""

    whole_groups: bool = False
    after_step: Callable[..., None] | None = None
    statistics: Callable[..., dict[str, Any]] | None = None
    policy_statistics: Callable[..., dict[str, Any]] | None = None


@dataclass(frozen=True)
class AdvantageSpec(Spec):
    """``segment_boundaries(ctx, **params) -> bool [B, T+1]``: where the estimator wants Monte-Carlo
    state values (the ``segment_values`` need).

    ``needs_group``: the estimator compares the completions of the same prompt, so a run with
    ``rollout.group_size=1`` is refused at start-up (the default: most estimators do).

    ``kl_in_reward``: what the estimator receives in place of ``rewards`` when a per-token KL penalty
    ``β·kl`` is folded into the reward (``algorithm.kl.mode=reward``): ``"returns"``, the per-token
    returns ``G_t = r − β·Σ_{s≥t} kl_s`` ``[B, T]``; ``"sequence"``, the sequence return
    ``r − β·Σ_t kl_t`` ``[B]``; ``None`` (the default), it cannot take one and such a run is refused
    at start-up.

    ``value_targets(ctx, **params) -> (targets, weights)``: for an estimator over a learned critic
    (the ``values`` or ``probe_values`` need), what the critic regresses on, once per step: ``[B, T+1]``
    per state for ``values``, ``[B]`` per row for ``probe_values`` (see ``grpozoo.training.critics``)."""

    segment_boundaries: Callable[..., Any] | None = None
    value_targets: Callable[..., Any] | None = None
    needs_group: bool = True
    kl_in_reward: Literal["returns", "sequence"] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kl_in_reward not in ("returns", "sequence", None):
            raise ValueError(f"kl_in_reward={self.kl_in_reward!r} is not one of 'returns', 'sequence', None")


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
    is logged from the first step. ``check(**params)``: run when the rewards are built, before any
    step, to fail early on what the reward needs from this machine (e.g. the code sandbox).
    ``needs_policy``: the reward reads the model being trained (an LLM judge that is the policy's
    base weights, or the trainer's device): it receives the keyword argument ``policy``, the
    trainer's :class:`~grpozoo.rewards.combine.PolicyHandle` (``None`` outside a trainer)."""

    reports_timeouts: bool = False
    check: Callable[..., None] | None = None
    needs_policy: bool = False


ROLLOUT_SIDE = "rollout"
LEARNER_SIDE = "learner"


@dataclass(frozen=True)
class ProviderSpec(Spec):
    """``side``: ``"rollout"`` for a field computed by sampling and scoring more completions (the
    rollout side's engine and rewards), ``"learner"`` for one computed by a forward of the learner's
    model."""

    side: str = ROLLOUT_SIDE

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.side not in (ROLLOUT_SIDE, LEARNER_SIDE):
            raise ValueError(f"provider side {self.side!r} is not one of {ROLLOUT_SIDE!r}, {LEARNER_SIDE!r}")


@dataclass(frozen=True)
class Provided:
    """What a provider returns when it also reports on its work: the field's ``value`` (a tensor)
    and ``metrics`` (``{name: number}``, e.g. a learned critic's loss), logged with the step's metrics."""

    value: Any
    metrics: dict[str, float]


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

    def names_in_order(self) -> list[str]:
        """The names in the order they were registered."""
        load_components()
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        load_components()
        return name in self._items


# Arguments the pipeline passes itself, never set by a user: the batch, a loss's whole-batch statistics.
PIPELINE_ARGUMENTS = ("ctx", "statistics")


def check_params(kind: str, name: str, fn: Callable[..., Any], params: dict[str, Any], positional: int) -> None:
    """Fail at start-up when ``params`` names a keyword that ``fn`` does not take, or gives one a
    value of the wrong type for its annotation (``float``, ``int | None``, ``Literal[...]``, …).

    ``positional`` is the number of leading arguments the pipeline itself passes. A function that
    takes ``**kwargs`` accepts any other name; its named parameters are still type-checked.
    """
    signature = inspect.signature(fn)
    accepted = [p for p in list(signature.parameters)[positional:] if p not in PIPELINE_ARGUMENTS]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    for key, value in params.items():
        if key not in accepted:
            if takes_any:
                continue
            raise ConfigError(
                f"{kind} {name!r} has no parameter {key!r}.{did_you_mean(key, accepted)} "
                f"Its parameters: {', '.join(accepted) or '(none)'}"
            )
        expected = _annotation(fn, signature.parameters[key])
        if not _matches(value, expected):
            close = did_you_mean(value, _text_choices(expected)) if isinstance(value, str) else ""
            raise ConfigError(
                f"{kind} {name!r} parameter {key}: expected {_type_name(expected, top=True)}, "
                f"got {value!r} ({type(value).__name__})" + (f".{close}" if close else "")
            )


def _annotation(fn: Callable[..., Any], parameter: inspect.Parameter) -> Any:
    """The parameter's annotation, resolved where the signature holds it as a string (``from
    __future__ import annotations``) as ``typing.get_type_hints`` would, one parameter at a time: a
    name imported only for type checkers leaves that parameter unchecked (``Any``)."""
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty:
        return Any
    if not isinstance(annotation, str):
        return annotation
    target = inspect.unwrap(fn.__init__ if inspect.isclass(fn) else fn)
    try:
        return eval(annotation, getattr(target, "__globals__", {}))  # noqa: S307 (source annotations)
    except NameError:
        return Any


def _matches(value: Any, expected: Any) -> bool:
    """Whether a configuration value fits a type annotation: an int is a float, a bool is no
    number, a list or tuple is a sequence (a string is not), and what is no type (``Any``, a
    ``TypeVar``) takes anything."""
    origin, args = get_origin(expected), get_args(expected)
    if expected is Any or isinstance(expected, TypeVar):
        return True
    if expected is None or expected is type(None):
        return value is None
    if origin is Literal:
        return any(value == choice and type(value) is type(choice) for choice in args)
    if origin in (Union, UnionType):
        return any(_matches(value, arg) for arg in args)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is abc.Callable:
        return callable(value)
    if origin is not None and issubclass(origin, abc.Mapping):
        if not isinstance(value, dict):
            return False
        return not args or all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
    if origin is not None and issubclass(origin, abc.Sequence):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
        return not args or all(_matches(v, args[0]) for v in value)
    kind = origin or expected
    return isinstance(value, kind) if isinstance(kind, type) else True


def _text_choices(expected: Any) -> list[str]:
    """The text values a ``Literal`` annotation (alone or in a union) allows."""
    if get_origin(expected) in (Union, UnionType):
        return [choice for arg in get_args(expected) for choice in _text_choices(arg)]
    return [c for c in get_args(expected) if isinstance(c, str)] if get_origin(expected) is Literal else []


def _type_name(expected: Any, top: bool = False) -> str:
    """An annotation as a reader writes it: ``float | None``, ``one of 'group', 'batch'``."""
    origin, args = get_origin(expected), get_args(expected)
    if origin is Literal:
        return ("one of " + ", ".join(map(repr, args))) if top else " | ".join(map(repr, args))
    if origin in (Union, UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if expected is None or expected is type(None):
        return "None"
    if origin is not None:
        inner = ", ".join("..." if arg is Ellipsis else _type_name(arg) for arg in args)
        return f"{_type_name(origin)}[{inner}]" if args else _type_name(origin)
    return getattr(expected, "__name__", str(expected))


advantages: Registry[Callable[..., Any], AdvantageSpec] = Registry("advantage estimator", AdvantageSpec)
token_weights: Registry[Callable[..., Any], Spec] = Registry("token weighting", Spec)
group_filters: Registry[Callable[..., Any], FilterSpec] = Registry("group filter", FilterSpec)
losses: Registry[Callable[..., Any], LossSpec] = Registry("policy loss", LossSpec)
aggregations: Registry[Callable[..., Any], Spec] = Registry("loss aggregation", Spec)
kl_estimators: Registry[Callable[..., Any], Spec] = Registry("KL estimator", Spec)
rewards: Registry[Callable[..., Any], RewardSpec] = Registry("reward", RewardSpec)
selectors: Registry[Callable[..., Any], Spec] = Registry("selector", Spec)
recipes: Registry[Any, Spec] = Registry("recipe", Spec)
# on-demand batch fields (the names in KNOWN_NEEDS), each computed by one provider
providers: Registry[Callable[..., Any], ProviderSpec] = Registry("batch field provider", ProviderSpec)
# optimisers (train.optimizer), each a torch.optim.Optimizer class built as cls(parameters, lr, weight_decay, **params)
optimizers: Registry[Callable[..., Any], Spec] = Registry("optimizer", Spec)
