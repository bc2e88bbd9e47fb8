"""Several reward functions, weighted and summed, each part kept under its own name."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grpozoo.registry import rewards as reward_registry


class RewardError(RuntimeError):
    """A reward function that raised, returned the wrong number of values, or a non-finite value."""


@dataclass(frozen=True)
class RewardPart:
    name: str
    fn: Callable[..., Any]
    weight: float
    params: dict[str, Any]


def load_reward_function(name: str) -> Callable[..., Any]:
    """A registered reward, or a user function named ``module:function`` or ``file.py:function``."""
    if ":" not in name:
        return reward_registry.get(name)
    location, _, attribute = name.rpartition(":")
    if location.endswith(".py"):
        path = Path(location)
        if not path.exists():
            raise FileNotFoundError(f"reward {name!r}: file {location!r} does not exist")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
    fn = getattr(module, attribute, None)
    if not callable(fn):
        raise AttributeError(f"reward {name!r}: {location!r} has no function {attribute!r}")
    return fn


class RewardModel:
    """Calls every reward on a batch, checks what each returns, and combines them by weight."""

    def __init__(self, specs, functions: dict[str, Callable[..., Any]] | None = None):
        """``specs`` are ``RewardConfig``s; ``functions`` maps names to callables passed from Python."""
        functions = functions or {}
        self.parts = [
            RewardPart(
                spec.name.rpartition(":")[2],
                functions[spec.name] if spec.name in functions else load_reward_function(spec.name),
                spec.weight,
                dict(spec.params),
            )
            for spec in specs
        ]
        names = [p.name for p in self.parts]
        if len(set(names)) != len(names):
            raise ValueError(f"rewards: two rewards share a name in {names}; each part is logged under its name")

    def __call__(
        self, completions: list[str], prompts: list[str], columns: dict[str, list[Any]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns the weighted total ``[B]`` and each part ``[B]`` (NaN where a reward had no opinion).

        A sample on which every reward says None gets a total of 0.
        """
        raw = self._call_all(completions, prompts, columns)
        size = len(completions)
        parts: dict[str, torch.Tensor] = {}
        for part in self.parts:
            parts[part.name] = self._check(part.name, raw[part.name], size)
        total = torch.zeros(size, dtype=torch.float32)
        for part in self.parts:
            values = parts[part.name]
            total += torch.where(values.isnan(), 0.0, values * part.weight)
        return total, parts

    def _call_all(self, completions, prompts, columns) -> dict[str, Any]:
        results: dict[str, Any] = {}
        pending: dict[str, Any] = {}
        for part in self.parts:
            try:
                out = part.fn(completions, prompts, **columns, **part.params)
            except Exception as error:
                raise RewardError(f"reward {part.name!r} raised {type(error).__name__}: {error}") from error
            if inspect.isawaitable(out):
                pending[part.name] = out
            else:
                results[part.name] = out
        if pending:
            results.update(asyncio.run(_gather(pending)))
        return results

    @staticmethod
    def _check(name: str, values: Any, size: int) -> torch.Tensor:
        if not isinstance(values, list | tuple | torch.Tensor):
            raise RewardError(f"reward {name!r} returned {type(values).__name__}; it must return a list of {size} floats")
        if len(values) != size:
            raise RewardError(f"reward {name!r} returned {len(values)} values for {size} completions")
        out = []
        for index, value in enumerate(values):
            if value is None:
                out.append(math.nan)
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise RewardError(f"reward {name!r} returned {value!r} for sample {index}: not a number") from None
            if not math.isfinite(number):
                raise RewardError(
                    f"reward {name!r} returned {number} for sample {index}; use None for 'no opinion'"
                )
            out.append(number)
        return torch.tensor(out, dtype=torch.float32)


async def _gather(pending: dict[str, Any]) -> dict[str, Any]:
    names = list(pending)
    outcomes = await asyncio.gather(*pending.values(), return_exceptions=True)
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            raise RewardError(f"reward {name!r} raised {type(outcome).__name__}: {outcome}") from outcome
    return dict(zip(names, outcomes, strict=True))
