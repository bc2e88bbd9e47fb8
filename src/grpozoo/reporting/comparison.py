"""The report of several recipes trained side by side: one self-contained ``report.html`` (every
plot embedded as a base64 PNG, no external resource, so it opens offline), the PNGs themselves
in ``plots/``, ``summary.md`` and ``summary.csv`` (one row per run).

Every number is read from the runs' own ``metrics.jsonl``, ``eval.jsonl`` and ``config.yaml``.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from grpozoo.reporting import comparison_plots as plots
from grpozoo.reporting.runs import RunData, spread

Groups = dict[str, list[RunData]]

HOW_TO_READ = (
    "Each competitor below is a recipe (a named training algorithm; see the last section for its exact "
    "settings) trained from the same starting model, on the same task, prompts in the same order and "
    "the same number of steps, once per seed; seed k of every recipe starts from the same random state. "
    "<b>Held-out accuracy</b> is the share of sampled answers to prompts never seen in training that "
    "the task's checker judges right, measured before training (step 0) and after the last step; "
    "<b>pass@k</b> is the chance that at least one of k samples of a prompt is right. Where there are "
    "several seeds a number reads <i>mean ± standard deviation (lowest–highest seed)</i>, and in the "
    "plots the line is the mean over seeds and the shaded band spans the lowest to the highest seed. "
    "The learning curves show each training batch: <b>reward</b> is the mean reward of the batch's "
    "completions, <b>accuracy</b> the share of them judged right; they are noisy because each batch holds "
    "only a few prompts, so compare trends, not single steps. Curves against <i>training time</i> show "
    "which recipe learns most per second of compute (held-out evaluation time is left out). "
    "<b>Entropy</b> (nats per token) is how spread out the model's next-token choices are: a fast fall "
    "means the model is becoming deterministic (collapsing), which often stops learning. "
    "<b>KL</b> is the divergence from the starting model (only for recipes with a KL term). "
    "<b>Clip fraction</b> is the share of tokens whose update was clipped (always 0 with one update per "
    "batch). <b>Zero-variance groups</b> is the share of prompts whose samples all got the same reward, "
    "which carry no learning signal for group-relative methods."
)


@dataclass
class ReportMeta:
    title: str
    directory: Path
    settings: dict[str, str] = field(default_factory=dict)  # shown as a table, in order
    missing: list[str] = field(default_factory=list)  # planned runs without data yet
    recipes: dict[str, str] = field(default_factory=dict)  # competitor name -> recipe name
    descriptions: dict[str, str] = field(
        default_factory=dict
    )  # competitor name -> what it changes, its paper


@dataclass
class Figure:
    file: str
    title: str
    caption: str
    path: Path | None = None  # None: not drawn (the caption says why)


def ks_of(groups: Groups) -> list[int]:
    found = {
        int(m.group(1))
        for runs in groups.values()
        for r in runs
        for e in r.evals
        for key in e
        if (m := re.fullmatch(r"pass@(\d+)", key))
    }
    return sorted(found)


def draw_figures(groups: Groups, directory: Path) -> dict[str, list[Figure]]:
    """Every plot into ``directory``, by report section."""
    directory.mkdir(parents=True, exist_ok=True)
    p = directory
    ks = ks_of(groups)
    sections: dict[str, list[Figure]] = {
        "Final scores": [],
        "Learning curves": [],
        "Training signals": [],
        "Speed": [],
    }
    has_before_after = any(r.before or r.after for runs in groups.values() for r in runs)
    if has_before_after:
        sections["Final scores"].append(
            Figure(
                "accuracy_before_after.png",
                "Held-out accuracy before and after training",
                "Bars: mean over seeds (pale: before training, solid: after); dots: individual seeds; whiskers: "
                "lowest to highest seed. Higher is better.",
                plots.before_after_plot(groups, p / "accuracy_before_after.png"),
            )
        )
    if ks and has_before_after:
        sections["Final scores"].append(
            Figure(
                "pass_at_k.png",
                "pass@k on the held-out prompts",
                "pass@k (chance that at least one of k samples is right) against k, mean over seeds; solid after "
                "training, dashed before. A recipe that raises pass@1 but lowers pass@k for large k has narrowed "
                "what the model can solve rather than taught it new answers.",
                plots.pass_at_k_plot(groups, ks, p / "pass_at_k.png"),
            )
        )
    curves = [
        (
            "Learning curves",
            "reward/mean",
            "reward_vs_step.png",
            "Training reward per step",
            "mean reward of the batch",
            "step",
            False,
            "Mean reward of each step's completions (all reward parts, weighted).",
        ),
        (
            "Learning curves",
            "reward/mean",
            "reward_vs_time.png",
            "Training reward against time",
            "mean reward of the batch",
            "time",
            False,
            "The same reward against training seconds: faster recipes move left.",
        ),
        (
            "Learning curves",
            "accuracy",
            "accuracy_vs_step.png",
            "Accuracy per step",
            "accuracy (share of samples right)",
            "step",
            True,
            "Lines: share of each training batch's completions judged right. Diamonds: held-out accuracy "
            "(mean over seeds; bar: lowest to highest seed) where it was measured.",
        ),
        (
            "Learning curves",
            "accuracy",
            "accuracy_vs_time.png",
            "Accuracy against time",
            "accuracy (share of samples right)",
            "time",
            True,
            "The same accuracy against training seconds.",
        ),
        (
            "Training signals",
            "entropy",
            "entropy_vs_step.png",
            "Token entropy of the policy",
            "entropy (nats per token)",
            "step",
            False,
            "Mean entropy of the next-token distribution over the generated tokens. A steep fall is entropy "
            "collapse.",
        ),
        (
            "Training signals",
            "completion_length",
            "completion_length_vs_step.png",
            "Completion length",
            "completion length (tokens)",
            "step",
            False,
            "Mean length of the sampled completions, EOS included.",
        ),
        (
            "Training signals",
            "kl",
            "kl_vs_step.png",
            "KL divergence from the starting model",
            "KL (nats per token)",
            "step",
            False,
            "Mean per-token KL estimate to the reference (starting) model.",
        ),
        (
            "Training signals",
            "clip_fraction",
            "clip_fraction_vs_step.png",
            "Clip fraction",
            "clipped tokens (share)",
            "step",
            False,
            "Share of tokens whose probability ratio was clipped by the loss (0 when each batch gets a single "
            "update, as the ratio is then 1).",
        ),
        (
            "Training signals",
            "zero_variance_groups",
            "zero_variance_groups_vs_step.png",
            "Groups without signal",
            "zero-variance groups (share)",
            "step",
            False,
            "Share of prompts whose completions all got the same reward: such groups give group-relative "
            "advantages of 0.",
        ),
    ]
    shares = {"accuracy", "zero_variance_groups"}
    for section, key, file, title, ylabel, x, held_out, caption in curves:
        path = plots.curve_plot(
            groups, key, p / file, title, ylabel, x=x, held_out=held_out, share=key in shares
        )
        if path is None:
            caption = f"Not drawn: no run logged “{key}”" + (
                " (no recipe here uses a KL term; algorithm.kl.coef is 0)." if key == "kl" else "."
            )
        sections[section].append(Figure(file, title, caption, path))
    sections["Speed"].append(
        Figure(
            "speed.png",
            "Speed",
            "Left: wall-clock seconds per training step (generation + learning). Right: "
            "completion tokens generated per second of generation. Bars: mean over seeds; dots: seeds.",
            plots.speed_plot(groups, p / "speed.png"),
        )
    )
    return sections


# ---------------------------------------------------------------------------------------------- tables


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def accuracy_rows(groups: Groups, recipes: dict[str, str]) -> list[list[str]]:
    rows = []
    for name, runs in groups.items():
        before = spread([r.before["accuracy"] for r in runs if r.before])
        after = spread([r.after["accuracy"] for r in runs if r.after])
        change = spread([r.after["accuracy"] - r.before["accuracy"] for r in runs if r.before and r.after])
        rows.append(
            [
                name,
                recipes.get(name, runs[0].recipe),
                str(len(runs)),
                before.format(),
                after.format(),
                change.format(),
            ]
        )
    return rows


ACCURACY_HEADER = ["competitor", "recipe", "seeds", "held-out accuracy before", "after", "change"]


def pass_rows(groups: Groups, ks: list[int]) -> list[list[str]]:
    rows = []
    for name, runs in groups.items():
        row = [name]
        for k in ks:
            before = spread([r.before.get(f"pass@{k}") for r in runs if r.before])
            after = spread([r.after.get(f"pass@{k}") for r in runs if r.after])
            row.append(f"{before.format(compact=True)} → {after.format(compact=True)}")
        rows.append(row)
    return rows


def speed_rows(groups: Groups) -> list[list[str]]:
    rows = []
    for name, runs in groups.items():
        rows.append(
            [
                name,
                spread([r.mean_of("time/step_s") for r in runs]).format(2),
                spread([r.mean_of("tokens_per_s") for r in runs]).format(1),
                spread([r.train_seconds().get(r.steps_done, 0.0) for r in runs]).format(1),
                spread([r.generated_tokens() for r in runs]).format(0),
                "; ".join(sorted({r.budget for r in runs})),
            ]
        )
    return rows


SPEED_HEADER = [
    "competitor",
    "seconds per step",
    "generated tokens / s",
    "training time (s)",
    "tokens generated",
    "budget per step (prompts × samples × max tokens)",
]


def run_rows(groups: Groups) -> list[list[str]]:
    rows = []
    for runs in groups.values():
        for r in runs:
            rows.append(
                [
                    r.label,
                    r.recipe,
                    str(r.seed),
                    f"{r.steps_done}/{r.steps_planned}",
                    _f(r.before["accuracy"]) if r.before else "n/a",
                    _f(r.after["accuracy"]) if r.after else "n/a",
                    _f(r.mean_of("time/step_s"), 2),
                    str(r.run_dir),
                ]
            )
    return rows


RUN_HEADER = ["run", "recipe", "seed", "steps", "accuracy before", "accuracy after", "s / step", "directory"]


def csv_rows(groups: Groups, ks: list[int]) -> tuple[list[str], list[list[Any]]]:
    """One row per run, with the numbers exactly as the run's files hold them."""
    header = ["competitor", "recipe", "seed", "steps_done", "steps_planned"]
    for which in ("before", "after"):
        header += [f"accuracy_{which}", f"accuracy_stderr_{which}"] + [f"pass@{k}_{which}" for k in ks]
    header += [
        "mean_length_after",
        "truncation_rate_after",
        "mean_entropy_after",
        "calibration_auc_after",
        "seconds_per_step",
        "tokens_per_s",
        "train_seconds",
        "generated_tokens",
        "final_reward_mean",
        "run_dir",
    ]
    rows = []
    for name, runs in groups.items():
        for r in runs:
            row: list[Any] = [name, r.recipe, r.seed, r.steps_done, r.steps_planned]
            for e in (r.before, r.after):
                e = e or {}
                row += [e.get("accuracy"), e.get("accuracy_stderr")] + [e.get(f"pass@{k}") for k in ks]
            after = r.after or {}
            row += [
                after.get("mean_length"),
                after.get("truncation_rate"),
                after.get("mean_entropy"),
                after.get("calibration_auc"),
                r.mean_of("time/step_s"),
                r.mean_of("tokens_per_s"),
                r.train_seconds().get(r.steps_done, 0.0),
                r.generated_tokens(),
                r.metrics[-1].get("reward/mean") if r.metrics else None,
                str(r.run_dir),
            ]
            rows.append(["" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in row])
    return header, rows


def algorithm_yaml(run: RunData) -> str:
    return yaml.safe_dump({"algorithm": run.config.get("algorithm", {})}, sort_keys=False)


# ---------------------------------------------------------------------------------------------- writers

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
.sub{color:#555;margin-top:0} .read{background:#f5f7fa;border-left:4px solid #4a7bd0;padding:.8rem 1rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.92rem}
th,td{border:1px solid #d0d4da;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f5} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:1rem 0 1.6rem} figure img{max-width:100%;border:1px solid #e3e3e3}
figcaption{color:#444;font-size:.9rem;max-width:760px} .missing{color:#8a5a00}
pre{background:#f7f7f7;padding:.6rem;overflow:auto;font-size:.85rem} details{margin:.4rem 0}
"""


def _html_table(header: list[str], rows: list[list[str]], numbers: bool = True) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{html.escape(c)}</td>'
            if numbers and i and re.match(r"^(-?\d|n/a)", c)
            else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _figure_html(figure: Figure) -> str:
    title = html.escape(figure.title)
    if figure.path is None:
        return f'<p class="missing"><b>{title}</b>: {html.escape(figure.caption)}</p>'
    data = base64.b64encode(figure.path.read_bytes()).decode()
    return (
        f'<figure id="{html.escape(Path(figure.file).stem)}"><img src="data:image/png;base64,{data}" '
        f'alt="{title}"><figcaption><b>{title}.</b> {html.escape(figure.caption)}</figcaption></figure>'
    )


def write_comparison_report(groups: Groups, meta: ReportMeta) -> dict[str, Any]:
    """Write ``report.html``, ``summary.md``, ``summary.csv`` and ``plots/*.png`` into
    ``meta.directory``; returns their paths (``plots`` maps each file name to its path)."""
    directory = meta.directory
    directory.mkdir(parents=True, exist_ok=True)
    groups = {name: runs for name, runs in groups.items() if runs}
    if not groups:
        raise FileNotFoundError(
            f"{str(directory)!r}: no run has logged a step yet, so there is nothing to report"
        )
    figures = draw_figures(groups, directory / "plots")
    ks = ks_of(groups)
    recipes = meta.recipes
    accuracy = accuracy_rows(groups, recipes)
    passes = pass_rows(groups, ks)
    pass_header = ["competitor"] + [f"pass@{k} before → after" for k in ks]
    speed = speed_rows(groups)
    runs = run_rows(groups)
    generated = f"{datetime.now():%Y-%m-%d %H:%M}"
    settings = list(meta.settings.items())

    # ---- HTML
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(meta.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(meta.title)}</h1>",
        f'<p class="sub">Written by grpozoo on {generated} from the runs in {html.escape(str(directory))}.</p>',
        f'<h2 id="how-to-read">How to read this</h2><p class="read">{HOW_TO_READ}</p>',
        "<h2>Settings shared by every run</h2>",
        _html_table(["setting", "value"], [[k, v] for k, v in settings], numbers=False),
    ]
    if meta.missing:
        parts.append(
            f'<p class="missing">Not yet trained (re-run the arena to continue): '
            f"{html.escape(', '.join(meta.missing))}. The numbers below cover the runs so far.</p>"
        )
    parts += ['<h2 id="final-scores">Final scores</h2>', _html_table(ACCURACY_HEADER, accuracy)]
    if ks:
        parts.append(_html_table(pass_header, passes))
    for section, items in figures.items():
        if section != "Final scores":
            parts.append(f'<h2 id="{section.lower().replace(" ", "-")}">{section}</h2>')
        if section == "Speed":
            parts.append(_html_table(SPEED_HEADER, speed))
        parts += [_figure_html(f) for f in items]
    parts += [
        '<h2 id="runs">Runs</h2>',
        _html_table(RUN_HEADER, runs),
        '<h2 id="recipes">Recipes</h2>',
        "<p>The resolved <code>algorithm</code> section of each competitor's configuration "
        "(<code>config.yaml</code> of its first seed; the seeds differ only in <code>train.seed</code>).</p>",
    ]
    for name, group in groups.items():
        about = meta.descriptions.get(name)
        parts.append(
            f"<details open><summary><b>{html.escape(name)}</b> (recipe {html.escape(group[0].recipe)})"
            f"</summary>"
            + (f"<p>{html.escape(about)}</p>" if about else "")
            + f"<pre>{html.escape(algorithm_yaml(group[0]))}</pre></details>"
        )
    parts.append("</body></html>")
    html_path = directory / "report.html"
    html_path.write_text("\n".join(parts), encoding="utf-8")

    # ---- Markdown
    md = [
        f"# {meta.title}",
        "",
        f"Written by grpozoo on {generated}. Open `report.html` for the full report.",
        "",
        "## How to read this",
        "",
        re.sub(r"</?[bi]>", "", HOW_TO_READ),
        "",
        "## Settings shared by every run",
        "",
        _md_table(["setting", "value"], [[k, v] for k, v in settings]),
        "",
    ]
    if meta.missing:
        md += [f"Not yet trained: {', '.join(meta.missing)}.", ""]
    md += ["## Final scores", "", _md_table(ACCURACY_HEADER, accuracy), ""]
    if ks:
        md += [_md_table(pass_header, passes), ""]
    md += [
        "## Speed",
        "",
        _md_table(SPEED_HEADER, speed),
        "",
        "## Runs",
        "",
        _md_table(RUN_HEADER, runs),
        "",
        "## Plots",
        "",
    ]
    for items in figures.values():
        for f in items:
            md.append(
                f"- **{f.title}**: " + (f"![{f.title}](plots/{f.file}) {f.caption}" if f.path else f.caption)
            )
    md += ["", "## Recipes", ""]
    for name, group in groups.items():
        about = meta.descriptions.get(name)
        md += [f"### {name}", ""] + ([about, ""] if about else [])
        md += ["```yaml", algorithm_yaml(group[0]).rstrip(), "```", ""]
    md_path = directory / "summary.md"
    md_path.write_text("\n".join(md), encoding="utf-8")

    # ---- CSV
    header, rows = csv_rows(groups, ks)
    csv_path = directory / "summary.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    drawn = {f.file: f.path for items in figures.values() for f in items if f.path is not None}
    return {"html": html_path, "markdown": md_path, "csv": csv_path, "plots": drawn}
