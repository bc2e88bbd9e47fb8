"""grpozoo: every published GRPO variant as a named, tested recipe over one RLVR trainer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def train(
    recipe: str = "grpo",
    model: str | None = None,
    task: str | None = None,
    reward: Callable[..., Any] | list[Callable[..., Any]] | None = None,
    steps: int | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    output_dir: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train from Python: ``grpozoo.train(recipe="grpo", model=..., task=..., reward=my_fn)``.

    ``reward`` functions (TRL's signature ``fn(completions, prompts, **columns)``) replace the
    configured rewards, each weighted 1. Returns the run summary (last metrics, evaluations).
    """
    from rich.console import Console

    from grpozoo.config import RewardConfig, resolve_config
    from grpozoo.training import Trainer, fit

    cfg = resolve_config(config, overrides, recipe=recipe, model=model, task=task, steps=steps,
                         output_dir=str(output_dir) if output_dir else None)
    functions: dict[str, Callable[..., Any]] = {}
    if reward is not None:
        functions = {fn.__name__: fn for fn in (reward if isinstance(reward, list) else [reward])}
        cfg.rewards = [RewardConfig(name=name) for name in functions]
    trainer = Trainer(cfg, reward_functions=functions, console=Console())
    summary = fit(trainer, show_progress=show_progress)
    summary["run_dir"] = str(trainer.run_dir)
    return summary
