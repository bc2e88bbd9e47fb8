"""The reward curve of a run, redrawn as it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_reward_curve(metrics: list[dict[str, Any]], evals: list[dict[str, Any]], path: Path, title: str) -> None:
    """Reward mean and batch accuracy per step, with held-out accuracy (± standard error) as points."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [m["step"] for m in metrics]
    ax.plot(steps, [m["reward/mean"] for m in metrics], label="reward (batch mean)", color="tab:blue")
    ax.plot(steps, [m["accuracy"] for m in metrics], label="accuracy (batch)", color="tab:green",
            linestyle=":", alpha=0.8)
    if evals:
        ax.errorbar([e["step"] for e in evals], [e["accuracy"] for e in evals],
                    yerr=[e["accuracy_stderr"] for e in evals], fmt="o", color="tab:red", capsize=4,
                    label="held-out accuracy")
        for e in evals:
            ax.annotate(f"{e['accuracy']:.2f}", (e["step"], e["accuracy"]), textcoords="offset points",
                        xytext=(6, 6), color="tab:red")
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
