"""The reward curve of a run, redrawn as it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_reward_curve(metrics: list[dict[str, Any]], evals: list[dict[str, Any]], path: Path, title: str) -> None:
    """Reward mean (± std band) and batch accuracy per step, with held-out accuracy as points."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [m["step"] for m in metrics]
    mean = [m["reward/mean"] for m in metrics]
    std = [m["reward/std"] for m in metrics]
    ax.plot(steps, mean, label="reward (mean)", color="tab:blue")
    ax.fill_between(steps, [a - b for a, b in zip(mean, std, strict=True)],
                    [a + b for a, b in zip(mean, std, strict=True)], color="tab:blue", alpha=0.15)
    ax.plot(steps, [m["accuracy"] for m in metrics], label="train accuracy", color="tab:green", alpha=0.7)
    if evals:
        ax.plot([e["step"] for e in evals], [e["accuracy"] for e in evals], "o--", color="tab:red",
                label="held-out accuracy")
    ax.set_xlabel("step")
    ax.set_ylabel("reward / accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
