"""Plots that compare several competitors (recipes) over several seeds each.

Every curve is the mean over a competitor's seeds, with a shaded band from the lowest to the
highest seed where there are several; one colour per competitor throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from grpozoo.reporting.runs import RunData, spread  # noqa: E402

Groups = dict[str, list[RunData]]  # competitor name -> its runs (one per seed)
FIGSIZE = (7.5, 4.2)
DPI = 100
STEP_AXIS = "training step"
TIME_AXIS = "training time (s; sum of step times, evaluation excluded)"


LINESTYLES = ["-", "--", "-.", ":"]  # overlapping curves of different competitors stay visible


def colours(groups: Groups) -> dict[str, str]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(groups)}


def linestyles(groups: Groups) -> dict[str, str]:
    return {name: LINESTYLES[i % len(LINESTYLES)] for i, name in enumerate(groups)}


def _axes(ax, x: str | None = None, share: bool = False) -> None:
    """Plain numbers on the axes (no offset like "+4.606"), whole steps on a step axis, and the
    full 0–1 range for a share."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):
        formatter = axis.get_major_formatter()
        if isinstance(formatter, ScalarFormatter):
            formatter.set_useOffset(False)
    if x == "step":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if share:
        ax.set_ylim(-0.02, 1.02)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _aligned(
    runs: list[RunData], key: str, x: str
) -> tuple[list[float], list[float], list[float], list[float]]:
    """x, mean, min and max of ``key`` at the steps every run of the group has, against the step
    or against the mean cumulative training time."""
    per_run = [dict(zip(*r.series(key), strict=True)) for r in runs]
    steps = sorted(set.intersection(*(set(d) for d in per_run))) if per_run else []
    times = [r.train_seconds() for r in runs]
    xs, mean, low, high = [], [], [], []
    for s in steps:
        values = [d[s] for d in per_run]
        xs.append(float(s) if x == "step" else sum(t[s] for t in times) / len(times))
        mean.append(sum(values) / len(values))
        low.append(min(values))
        high.append(max(values))
    return xs, mean, low, high


def curve_plot(
    groups: Groups,
    key: str,
    path: Path,
    title: str,
    ylabel: str,
    x: str = "step",
    held_out: bool = False,
    share: bool = False,
) -> Path | None:
    """One metric per step (``x="step"``) or per training second (``x="time"``), one line per
    competitor. With ``held_out``, the held-out accuracy (mean over seeds, bar: lowest to highest
    seed) is drawn as points at the steps where it was measured; ``share`` fixes the y axis to
    0–1. None when no run logged ``key``."""
    if not any(r.series(key)[0] for runs in groups.values() for r in runs):
        return None
    colour, style = colours(groups), linestyles(groups)
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for name, runs in groups.items():
        xs, mean, low, high = _aligned(runs, key, x)
        if not xs:
            continue
        seeds = f"{len(runs)} seeds" if len(runs) > 1 else "1 seed"
        ax.plot(
            xs,
            mean,
            color=colour[name],
            linestyle=style[name],
            label=f"{name} ({seeds})",
            linewidth=1.8,
            marker="o" if len(xs) <= 3 else None,
        )
        if len(runs) > 1:
            ax.fill_between(xs, low, high, color=colour[name], alpha=0.18, linewidth=0)
        if held_out:
            _held_out_points(ax, runs, colour[name], x)
    handles, _ = ax.get_legend_handles_labels()
    if held_out:
        handles += [
            Line2D([], [], color="black", label="lines: batch accuracy (training samples)"),
            Line2D([], [], color="black", marker="D", linestyle="none", label="held-out accuracy"),
        ]
    ax.set_xlabel(STEP_AXIS if x == "step" else TIME_AXIS)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, loc="best", fontsize=8)
    _axes(ax, x, share)
    return _save(fig, path)


def _held_out_points(ax, runs: list[RunData], colour: str, x: str) -> None:
    steps = sorted({int(e["step"]) for r in runs for e in r.evals})
    for s in steps:
        values = [e["accuracy"] for r in runs for e in r.evals if e["step"] == s]
        if not values:
            continue
        position = float(s)
        if x == "time":
            times = [r.train_seconds().get(s, 0.0) for r in runs]
            position = sum(times) / len(times)
        sp = spread(values)
        ax.errorbar(
            [position],
            [sp.mean],
            yerr=[[sp.mean - sp.low], [sp.high - sp.mean]],
            fmt="D",
            color=colour,
            markersize=6,
            capsize=3,
            markeredgecolor="black",
        )


def before_after_plot(groups: Groups, path: Path) -> Path:
    """Held-out accuracy before and after training, per competitor: bars are seed means, dots the
    individual seeds, whiskers the lowest and highest seed."""
    colour = colours(groups)
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    names = list(groups)
    width = 0.38
    for i, name in enumerate(names):
        for offset, which, alpha in ((-width / 2, "before", 0.35), (width / 2, "after", 0.9)):
            values = [getattr(r, which)["accuracy"] for r in groups[name] if getattr(r, which)]
            if not values:
                continue
            sp = spread(values)
            ax.bar(
                i + offset,
                sp.mean,
                width,
                color=colour[name],
                alpha=alpha,
                edgecolor="black",
                yerr=[[sp.mean - sp.low], [sp.high - sp.mean]] if sp.n > 1 else None,
                capsize=4,
            )
            ax.scatter([i + offset] * sp.n, list(sp.values), color="black", s=12, zorder=3)
            ax.annotate(
                f"{sp.mean:.2f}",
                (i + offset, sp.mean),
                textcoords="offset points",
                xytext=(0, 4),
                ha="center",
                fontsize=8,
            )
    ax.set_xticks(range(len(names)), names, rotation=20 if len(names) > 4 else 0)
    ax.set_ylabel("held-out accuracy (share of samples right)")
    ax.set_title("Held-out accuracy before (pale) and after (solid) training")
    ax.set_ylim(0, max(1.0, ax.get_ylim()[1]))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(
        handles=[Line2D([], [], marker="o", color="black", linestyle="none", markersize=4, label="one seed")],
        loc="upper left",
        fontsize=8,
    )
    return _save(fig, path)


def pass_at_k_plot(groups: Groups, ks: list[int], path: Path) -> Path:
    """pass@k against k after training (solid) and before (dashed), seed means."""
    colour = colours(groups)
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for i, name in enumerate(groups):
        runs = groups[name]
        for which, style in (("after", "-"), ("before", "--")):
            evals = [getattr(r, which) for r in runs if getattr(r, which)]
            if not evals:
                continue
            means = [spread([e.get(f"pass@{k}") for e in evals]).mean for k in ks]
            ax.plot(
                ks,
                means,
                style,
                marker="osv^D"[i % 5],
                color=colour[name],
                label=name if which == "after" else None,
                alpha=1.0 if which == "after" else 0.6,
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (samples per held-out prompt)")
    ax.set_ylabel("pass@k (chance at least one of k is right)")
    ax.set_title("pass@k after training (solid) and before (dashed)")
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="grey", label="after training"),
        Line2D([], [], color="grey", linestyle="--", label="before training"),
    ]
    ax.legend(handles=handles, loc="best", fontsize=8)
    _axes(ax, share=True)
    return _save(fig, path)


def speed_plot(groups: Groups, path: Path) -> Path:
    """Seconds per step and generated tokens per second, per competitor (bars: seed means; dots:
    seeds)."""
    colour = colours(groups)
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
    names = list(groups)
    panels: list[tuple[str, str, Callable[[RunData], float]]] = [
        ("seconds per training step", "s / step", lambda r: r.mean_of("time/step_s")),
        ("generation throughput", "generated tokens / s", lambda r: r.mean_of("tokens_per_s")),
    ]
    for ax, (title, ylabel, value) in zip(axes, panels, strict=True):
        for i, name in enumerate(names):
            sp = spread([value(r) for r in groups[name]])
            if not sp.n:
                continue
            ax.bar(i, sp.mean, 0.6, color=colour[name], edgecolor="black")
            ax.scatter([i] * sp.n, list(sp.values), color="black", s=12, zorder=3)
            ax.annotate(
                f"{sp.mean:.3g}",
                (i, sp.mean),
                textcoords="offset points",
                xytext=(0, 3),
                ha="center",
                fontsize=8,
            )
        ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 2 else 0, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
