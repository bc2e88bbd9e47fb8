"""Several reward functions, weighted and summed, each part kept under its own name.

The rewards of a batch run at the same time (slow rewards, such as the code sandbox or a
verifier, do not wait for each other): each reward runs in a worker thread of its own, an
async reward on an event loop in its thread, except the first synchronous reward without a
timeout, which runs on the calling thread so that libraries that time themselves out with
``SIGALRM`` (only the main thread may set it; math-verify does) keep working.

A reward with ``timeout_s`` (``RewardConfig``) that has not finished by then scores as missing
(NaN) for the whole batch, is counted in ``reward/<name>/timeouts`` (samples), and a warning says
so: never a silent 0 or 1. Its thread cannot be stopped: it runs on in the background and its
result is dropped (an async reward is cancelled). A reward may also report samples it could not
score in time itself by returning ``RewardScores(values, timeouts=k)`` (the code sandbox does), and
samples it has no opinion on for a reason worth watching with ``RewardScores(values, missing=k)``
(an LLM judge whose answer holds no verdict), counted in ``reward/<name>/missing``.

A reward registered with ``needs_policy=True`` reads the model being trained (an LLM judge): the
trainer hands it over once, with :meth:`RewardModel.give_policy`, and the reward receives it as its
``policy`` keyword argument (a :class:`PolicyHandle`); no reward has a branch of its own in the trainer.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from grpozoo.errors import ConfigError
from grpozoo.registry import check_params
from grpozoo.registry import rewards as reward_registry


class RewardError(RuntimeError):
    """A reward function that raised, returned the wrong number of values, or a non-finite value."""


@dataclass(frozen=True)
class RewardPart:
    name: str
    fn: Callable[..., Any]
    weight: float
    params: dict[str, Any]
    timeout_s: float | None = None
    needs_policy: bool = False


@dataclass(frozen=True)
class PolicyHandle:
    """What the trainer hands to the rewards registered with ``needs_policy=True``, as their
    ``policy`` keyword argument: the model being trained (a peft model under LoRA; under FSDP its
    whole copy), its tokenizer, the training device (``train.device``) and the checkpoint the policy
    started from (``model.name``, loaded in ``model.dtype``). A reward reads the model and never
    trains it: run it under ``torch.no_grad()``, and with its adapters off where it judges as the
    base model."""

    model: Any
    tokenizer: Any
    device: str
    base: str
    dtype: str = "float32"


class RewardScores(list):
    """A reward's scores (a plain list to every caller) that also says how many of them are
    missing (None) because the sample could not be scored in time; the trainer logs the count as
    ``reward/<name>/timeouts``. Built-in rewards that can time out per sample are registered with
    ``reports_timeouts=True`` so the metric is logged from the first step. ``missing``, where a
    reward sets it, counts the samples it could not score for another reason (an LLM judge's answer
    that holds no verdict), logged as ``reward/<name>/missing`` from the first batch it reports.
    ``details``: batch-level numbers a reward reports about its own parts (a rubric's share of
    completions satisfying each item), logged as ``reward/<name>/<key>``."""

    def __init__(
        self, values=(), timeouts: int = 0, missing: int | None = None, details: dict[str, float] | None = None
    ):
        super().__init__(values)
        self.timeouts = int(timeouts)
        self.missing = None if missing is None else int(missing)
        self.details = dict(details or {})


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
        if spec is None or spec.loader is None:
            raise ConfigError(f"reward {name!r}: file {location!r} cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
    fn = getattr(module, attribute, None)
    if not callable(fn):
        raise ConfigError(
            f"reward {name!r}: {location!r} has no function {attribute!r}; name a function it defines, "
            f"as 'module:function' or 'file.py:function'"
        )
    return fn


class RewardModel:
    """Calls every reward on a batch, checks what each returns, and combines them by weight."""

    def __init__(self, specs, functions: dict[str, Callable[..., Any]] | None = None):
        """``specs`` are ``RewardConfig``s; ``functions`` maps names to callables passed from Python."""
        functions, specs = functions or {}, list(specs)
        self.parts = [
            RewardPart(
                spec.name.rpartition(":")[2],
                functions[spec.name] if spec.name in functions else load_reward_function(spec.name),
                spec.weight,
                dict(spec.params),
                getattr(spec, "timeout_s", None),
                spec.name in reward_registry and reward_registry.spec(spec.name).needs_policy,
            )
            for spec in specs
        ]
        for part, spec in zip(self.parts, specs, strict=True):
            check_params("reward", part.name, part.fn, part.params, 2)  # after completions, prompts
            check = reward_registry.spec(spec.name).check if spec.name in reward_registry else None
            if check is not None:
                check(**part.params)
        names = [p.name for p in self.parts]
        if len(set(names)) != len(names):
            raise ValueError(
                f"rewards: two rewards share a name in {names}; each part is logged under its name"
            )
        # samples scored as missing because of a timeout, per reward, since the last timeout_metrics()
        self.timeouts = {
            p.name: 0
            for p, spec in zip(self.parts, specs, strict=True)
            if p.timeout_s is not None or (spec.name in reward_registry and reward_registry.spec(spec.name).reports_timeouts)
        }
        self.missing: dict[str, int] = {}  # samples reported missing (RewardScores.missing), per reward
        self.details: dict[str, float] = {}  # the last batch's RewardScores.details, as metric names
        self.policy: PolicyHandle | None = None  # the model being trained, once give_policy hands it over

    def give_policy(self, policy: PolicyHandle) -> None:
        """Hand the model being trained to the rewards registered with ``needs_policy=True``: from
        now on each receives ``policy`` beside its params (the trainer calls this once its model is
        loaded; without it such a reward receives its default, ``None``)."""
        self.policy = policy
        self.parts = [replace(p, params={**p.params, "policy": policy}) if p.needs_policy else p for p in self.parts]

    def __call__(
        self, completions: list[str], prompts: list[str], columns: dict[str, list[Any]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns the weighted total ``[B]`` and each part ``[B]`` (NaN where a reward had no opinion).

        A sample on which every reward says None gets a total of 0. A reward that timed out is NaN
        for the whole batch and counted in ``timeouts``.
        """
        raw, timed_out = self._call_all(completions, prompts, columns)
        size = len(completions)
        parts: dict[str, torch.Tensor] = {}
        for part in self.parts:
            if part.name in timed_out:
                parts[part.name] = torch.full((size,), math.nan)
                self._count_timeouts(part.name, size)
                warnings.warn(
                    f"reward {part.name!r} did not finish within timeout_s={part.timeout_s} on a batch of {size}; "
                    f"its scores for the batch are missing (NaN), counted in reward/{part.name}/timeouts",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            parts[part.name] = self._check(part.name, raw[part.name], size)
            self._count_timeouts(part.name, getattr(raw[part.name], "timeouts", 0))
            missing = getattr(raw[part.name], "missing", None)
            if missing is not None:
                self.missing[part.name] = self.missing.get(part.name, 0) + missing
            for key, value in getattr(raw[part.name], "details", {}).items():
                self.details[f"reward/{part.name}/{key}"] = float(value)
        total = torch.zeros(size, dtype=torch.float32)
        for part in self.parts:
            values = parts[part.name]
            total += torch.where(values.isnan(), 0.0, values * part.weight)
        return total, parts

    def timeout_metrics(self) -> dict[str, float]:
        """``reward/<name>/timeouts``: samples scored as missing because of a timeout since the last
        call (one step), for every reward that has a ``timeout_s`` or reports timeouts itself; and
        ``reward/<name>/missing``, the samples a reward reported missing (``RewardScores.missing``);
        and the ``details`` rewards reported about the last batch (``reward/<name>/<key>``)."""
        out = {f"reward/{name}/timeouts": float(count) for name, count in self.timeouts.items()}
        out.update({f"reward/{name}/missing": float(count) for name, count in self.missing.items()})
        out.update(self.details)
        self.details = {}
        self.timeouts = dict.fromkeys(self.timeouts, 0)
        self.missing = dict.fromkeys(self.missing, 0)
        return out

    def _count_timeouts(self, name: str, count: int) -> None:
        if count or name in self.timeouts:
            self.timeouts[name] = self.timeouts.get(name, 0) + int(count)

    def _call_all(self, completions, prompts, columns) -> tuple[dict[str, Any], set[str]]:
        """Every reward's raw output, all running at once (see the module docstring), and the names
        of those that timed out."""
        start = time.monotonic()
        inline = next((p for p in self.parts if p.timeout_s is None and not _is_async(p.fn)), None)
        jobs = [
            _RewardJob(part, completions, prompts, columns, start)
            for part in self.parts
            if part is not inline
        ]
        results: dict[str, Any] = {}
        errors: dict[str, BaseException] = {}
        if inline is not None:
            try:
                results[inline.name] = _call(inline, completions, prompts, columns, deadline=None)
            except Exception as error:
                errors[inline.name] = error
        timed_out: set[str] = set()
        for job in jobs:
            name = job.part.name
            timeout = None if job.deadline is None else max(0.0, job.deadline - time.monotonic())
            if not job.done.wait(timeout) or job.result is _TIMED_OUT:
                timed_out.add(name)
            elif job.error is not None:
                errors[name] = job.error
            else:
                results[name] = job.result
        for part in self.parts:
            if part.name in errors:
                failure = errors[part.name]
                failed = f"reward {part.name!r} raised {type(failure).__name__}: {failure}"
                raise RewardError(failed) from failure
        return results, timed_out

    @staticmethod
    def _check(name: str, values: Any, size: int) -> torch.Tensor:
        if not isinstance(values, list | tuple | torch.Tensor):
            raise RewardError(
                f"reward {name!r} returned {type(values).__name__}; it must return a list of {size} floats"
            )
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
                raise RewardError(
                    f"reward {name!r} returned {value!r} for sample {index}: not a number"
                ) from None
            if not math.isfinite(number):
                raise RewardError(
                    f"reward {name!r} returned {number} for sample {index}; use None for 'no opinion'"
                )
            out.append(number)
        return torch.tensor(out, dtype=torch.float32)


_TIMED_OUT = object()


def _is_async(fn: Callable[..., Any]) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one."""
    call = type(fn).__call__ if not inspect.isroutine(fn) else None
    return inspect.iscoroutinefunction(fn) or (call is not None and inspect.iscoroutinefunction(call))


def _call(part: RewardPart, completions, prompts, columns, deadline: float | None) -> Any:
    """Calls one reward; an awaitable result runs to completion on a new event loop in this thread,
    cancelled at ``deadline`` (then the result is ``_TIMED_OUT``)."""
    out = part.fn(completions, prompts, **columns, **part.params)
    if inspect.isawaitable(out):
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        out = asyncio.run(_within(out, timeout))
    return out


async def _within(awaitable, timeout: float | None) -> Any:
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        return _TIMED_OUT
    return task.result()


class _RewardJob:
    """One reward running in a daemon thread (a reward that never returns cannot hold up the
    trainer's exit)."""

    def __init__(self, part: RewardPart, completions, prompts, columns, start: float):
        self.part = part
        self.deadline = None if part.timeout_s is None else start + part.timeout_s
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        args = (completions, prompts, columns)
        threading.Thread(target=self._run, args=args, name=f"reward-{part.name}", daemon=True).start()

    def _run(self, completions, prompts, columns) -> None:
        try:
            self.result = _call(self.part, completions, prompts, columns, self.deadline)
        except BaseException as error:  # handed to the caller, which names the reward
            self.error = error
        finally:
            self.done.set()
