"""The arena end to end on the tiny model: two recipes trained side by side, the report's content
checked against the runs' own files, re-runs that train nothing or finish what was stopped."""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
import signal
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml

from grpozoo.arena import arena_from_args, run_arena
from grpozoo.reporting.metrics import read_jsonl
from grpozoo.training import Trainer

RECIPES = ["grpo", "dr_grpo"]
PLOTS = [
    "accuracy_before_after.png",
    "pass_at_k.png",
    "reward_vs_step.png",
    "reward_vs_time.png",
    "accuracy_vs_step.png",
    "accuracy_vs_time.png",
    "entropy_vs_step.png",
    "completion_length_vs_step.png",
    "kl_vs_step.png",
    "clip_fraction_vs_step.png",
    "zero_variance_groups_vs_step.png",
    "speed.png",
]
_BUILT: dict[str, Any] = {}


def arena_sets(tiny_overrides: list[str]) -> list[str]:
    """The tiny run settings (eval on), a KL term so that the KL curve is drawn too, and one torch
    thread (a tiny model only loses time to threads competing for the cores); the arena chooses
    every run's directory itself."""
    return [o for o in tiny_overrides if not o.startswith("output_dir=")] + [
        "algorithm.kl.coef=0.01",
        "train.threads=1",
    ]


@pytest.fixture(autouse=True)
def keep_torch_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def make_arena(tiny_overrides, directory: Path, *extra: str, steps: int = 2):
    return arena_from_args(
        recipes=",".join(RECIPES),
        steps=steps,
        seeds=1,
        overrides=[*arena_sets(tiny_overrides), *extra],
        output=directory,
    )


@pytest.fixture
def finished_arena(tiny_overrides, tmp_path_factory):
    """A 2-recipe, 2-step, 1-seed arena, trained once for this module's tests."""
    if "arena" not in _BUILT:
        arena = make_arena(tiny_overrides, tmp_path_factory.mktemp("arena"))
        _BUILT["result"] = run_arena(arena, console=None, show_progress=False)
        _BUILT["arena"] = arena
    return _BUILT["arena"], _BUILT["result"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_arena_trains_every_recipe_into_normal_run_directories(finished_arena):
    arena, result = finished_arena
    assert result["trained"] == ["grpo-seed0", "dr_grpo-seed0"] and result["skipped"] == []
    for recipe in RECIPES:
        run = arena.directory / "runs" / f"{recipe}-seed0"
        assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == [1, 2]
        assert [e["step"] for e in read_jsonl(run / "eval.jsonl")] == [0, 2]
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["recipe"] == recipe and config["train"]["seed"] == 0 and config["train"]["steps"] == 2
    grpo, dr = (
        yaml.safe_load((arena.directory / "runs" / f"{r}-seed0" / "config.yaml").read_text()) for r in RECIPES
    )
    # the same model, data, budget and evaluation; only the algorithm differs
    for section in ("model", "task", "rollout", "eval", "rewards"):
        assert grpo[section] == dr[section], section
    assert grpo["algorithm"] != dr["algorithm"]


def test_the_report_holds_every_recipe_plot_and_number(finished_arena):
    arena, _ = finished_arena
    d = arena.directory
    page = (d / "report.html").read_text()
    md = (d / "summary.md").read_text()
    rows = read_csv(d / "summary.csv")

    # every plot: a non-empty PNG on disk, embedded byte for byte in the page, named in the summary
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)">', page)
    assert len(images) == len(PLOTS)
    embedded = {base64.b64decode(data) for data, _ in images}
    for name in PLOTS:
        png = (d / "plots" / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000, name
        assert png in embedded, name
        assert f"plots/{name}" in md, name
    # self-contained: no resource is fetched from anywhere
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<link" not in page and "<script" not in page and "url(" not in page and "@import" not in page

    # readable by a newcomer: how to read it, units, the recipes' exact settings
    assert "How to read this" in page and "How to read this" in md
    for words in ("held-out accuracy", "nats per token", "seconds per step", "generated tokens / s"):
        assert words in page, words

    assert [(r["competitor"], r["seed"]) for r in rows] == [(r, "0") for r in RECIPES]
    for row in rows:
        recipe = row["competitor"]
        run = d / "runs" / f"{recipe}-seed0"
        assert recipe in page and recipe in md
        metrics = read_jsonl(run / "metrics.jsonl")
        before, after = read_jsonl(run / "eval.jsonl")
        # the CSV holds the runs' own numbers, exactly
        for k in (1, 2):
            assert float(row[f"pass@{k}_before"]) == before[f"pass@{k}"]
            assert float(row[f"pass@{k}_after"]) == after[f"pass@{k}"]
        assert float(row["accuracy_before"]) == before["accuracy"]
        assert float(row["accuracy_after"]) == after["accuracy"]
        assert float(row["mean_entropy_after"]) == after["mean_entropy"]
        seconds = statistics.fmean(m["time/step_s"] for m in metrics)
        tokens = statistics.fmean(m["tokens_per_s"] for m in metrics)
        assert float(row["seconds_per_step"]) == pytest.approx(seconds, rel=1e-12)
        assert float(row["tokens_per_s"]) == pytest.approx(tokens, rel=1e-12)
        assert float(row["final_reward_mean"]) == metrics[-1]["reward/mean"]
        # the page and the summary show the same numbers, rounded
        speed_row = f"| {recipe} | {seconds:.2f} | {tokens:.1f} |"
        assert speed_row in md
        assert f"<td>{recipe}</td>" in page and f'<td class="num">{seconds:.2f}</td>' in page
        accuracy_row = f"| {recipe} | {recipe} | 1 | {before['accuracy']:.3f} | {after['accuracy']:.3f} |"
        assert accuracy_row in md
        # the resolved recipe, as config.yaml has it
        algorithm = yaml.safe_load((run / "config.yaml").read_text())["algorithm"]
        shown = yaml.safe_dump({"algorithm": algorithm}, sort_keys=False)
        assert html.escape(shown) in page
        assert shown.strip() in md
    assert "constant_normalizer" in page and "token_mean" in page  # dr_grpo's and grpo's aggregations
    assert page.count("What it changes relative to GRPO:") == 2 and "DeepSeekMath" in page


def test_the_report_shows_each_runs_own_scores_before_and_after(finished_arena, tmp_path):
    """Distinct held-out scores per run and per moment (the tiny model's are all 0): the report must
    put each one in its own recipe's row and column."""
    import dataclasses
    import shutil

    from grpozoo.arena.report import write_report

    arena, _ = finished_arena
    copy = dataclasses.replace(arena, directory=tmp_path / "arena")
    shutil.copytree(arena.directory / "runs", copy.directory / "runs")
    scores = {"grpo": ((0.125, 0.25), (0.625, 0.75)), "dr_grpo": ((0.375, 0.5), (0.875, 1.0))}
    for recipe, moments in scores.items():
        path = copy.directory / "runs" / f"{recipe}-seed0" / "eval.jsonl"
        records = read_jsonl(path)
        for record, (accuracy, pass2) in zip(records, moments, strict=True):
            record.update({"accuracy": accuracy, "pass@1": accuracy, "pass@2": pass2})
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(copy)
    rows = {r["competitor"]: r for r in read_csv(copy.directory / "summary.csv")}
    md = (copy.directory / "summary.md").read_text()
    for recipe, ((before, before2), (after, after2)) in scores.items():
        row = rows[recipe]
        assert (float(row["accuracy_before"]), float(row["accuracy_after"])) == (before, after)
        assert (float(row["pass@2_before"]), float(row["pass@2_after"])) == (before2, after2)
        assert f"| {recipe} | {recipe} | 1 | {before:.3f} | {after:.3f} |" in md


def chromium() -> str:
    for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(path, os.X_OK):
            return path
    pytest.skip(
        "no Chromium at /usr/bin/chromium: the report was not rendered in a browser "
        "(apt-get install chromium; .ci/run installs it)"
    )


CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const shown = [...document.images].map(img => {
    const box = img.getBoundingClientRect();
    return {alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, complete: img.complete,
            visible: box.width > 0, box: [box.left + scrollX, box.top + scrollY, box.width, box.height]};
  });
  const page = {images: shown, height: document.documentElement.scrollHeight};
  const out = document.createElement("pre");
  out.id = "render-check";
  out.textContent = JSON.stringify(page);
  document.body.appendChild(out);
});
</script>"""


def browse(*args: str, page: Path, profile: Path) -> str:
    import subprocess

    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
        *args,
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_report_renders_every_plot_in_a_headless_browser(finished_arena, tmp_path):
    from PIL import Image

    arena, _ = finished_arena
    report = arena.directory / "report.html"
    # a copy of the page with a script that writes what the browser made of each image into the page
    probe = tmp_path / "report-probe.html"
    probe.write_text(report.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    dom = browse("--dump-dom", "--window-size=1200,2400", page=probe, profile=tmp_path / "profile-dom")
    found = re.search(r'<pre id="render-check">(.*?)</pre>', dom, re.S)
    assert found, "the page's load handler did not run"
    layout = json.loads(html.unescape(found.group(1)))
    shown = layout["images"]
    assert len(shown) == len(PLOTS)
    for image in shown:
        assert image["complete"] and image["visible"], image
        assert image["width"] >= 600 and image["height"] >= 300, image

    # a screenshot of the whole page; each plot's own region of it must show a drawn plot
    height = min(int(layout["height"]), 16000)
    shot = tmp_path / "report.png"
    browse(f"--screenshot={shot}", f"--window-size=1200,{height}", page=report, profile=tmp_path / "profile-shot")
    picture = Image.open(shot).convert("RGB")
    assert picture.size == (1200, height)
    assert all(image["box"][1] + image["box"][3] <= height for image in shown), "a plot lies below the screenshot"
    for image in shown:
        x, y, w, h = image["box"]
        region = picture.crop((int(x), int(y), int(x + w), int(y + h))).resize((120, 60))
        pixels = [region.getpixel((i, j)) for j in range(region.height) for i in range(region.width)]
        drawn = sum(1 for p in pixels if min(p) < 200) / len(pixels)
        assert drawn > 0.01, f"{image['alt']}: its region of the screenshot is blank"
        assert len(set(pixels)) > 20, f"{image['alt']}: its region of the screenshot shows no plot"


def test_rerunning_a_finished_arena_trains_nothing(finished_arena, tiny_overrides, monkeypatch):
    arena, _ = finished_arena
    metrics = {r: (arena.directory / "runs" / f"{r}-seed0" / "metrics.jsonl").read_bytes() for r in RECIPES}
    built = []
    monkeypatch.setattr(Trainer, "__init__", lambda self, *a, **k: built.append(a) or pytest.fail("trained"))
    again = run_arena(make_arena(tiny_overrides, arena.directory), console=None, show_progress=False)
    assert again["trained"] == [] and again["skipped"] == ["grpo-seed0", "dr_grpo-seed0"]
    assert built == []
    for r in RECIPES:
        assert (arena.directory / "runs" / f"{r}-seed0" / "metrics.jsonl").read_bytes() == metrics[r]
    assert (arena.directory / "report.html").exists()


def test_an_arena_with_other_settings_refuses_the_directory(finished_arena, tiny_overrides):
    from grpozoo.config import ConfigError

    arena, _ = finished_arena
    changed = make_arena(tiny_overrides, arena.directory, "train.learning_rate=0.001")
    with pytest.raises(
        ConfigError,
        match=r"was trained with train.learning_rate=0.0002, but this arena asks for "
        r"train.learning_rate=0.001: run the arena with another --output",
    ):
        run_arena(changed, console=None, show_progress=False)


def test_an_arena_stopped_after_its_first_run_finishes_the_second_on_rerun(
    tiny_overrides, tmp_path, monkeypatch
):
    arena = make_arena(tiny_overrides, tmp_path / "stopped", "eval.at_start=false")
    original_step = Trainer.train_step

    def ctrl_c_in_the_second_run(self):
        if self.cfg.recipe == "dr_grpo" and self.step == 0:
            os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C, during its first step
        return original_step(self)

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_in_the_second_run)
    with pytest.raises(KeyboardInterrupt):
        run_arena(arena, console=None, show_progress=False)
    first, second = (tmp_path / "stopped" / "runs" / f"{r}-seed0" for r in RECIPES)
    assert [e["step"] for e in read_jsonl(first / "eval.jsonl")] == [2]
    assert [m["step"] for m in read_jsonl(second / "metrics.jsonl")] == [1]  # the step was completed, saved
    assert (second / "checkpoints" / "step-000001").is_dir()
    assert not (second / "eval.jsonl").exists()

    steps, resumed = [], []
    original_init = Trainer.__init__

    def spy_init(self, *args, **kwargs):
        resumed.append(kwargs.get("resume"))
        original_init(self, *args, **kwargs)

    def spy_step(self):
        steps.append((self.cfg.recipe, self.step + 1))
        return original_step(self)

    monkeypatch.setattr(Trainer, "__init__", spy_init)
    monkeypatch.setattr(Trainer, "train_step", spy_step)
    first_metrics = (first / "metrics.jsonl").read_bytes()
    result = run_arena(
        make_arena(tiny_overrides, tmp_path / "stopped", "eval.at_start=false"),
        console=None,
        show_progress=False,
    )
    assert result["skipped"] == ["grpo-seed0"] and result["trained"] == ["dr_grpo-seed0"]
    assert resumed == [True]  # the second run continued from its checkpoint
    assert steps == [("dr_grpo", 2)]  # only the missing step was trained
    assert [m["step"] for m in read_jsonl(second / "metrics.jsonl")] == [1, 2]
    assert [e["step"] for e in read_jsonl(second / "eval.jsonl")] == [2]
    assert (first / "metrics.jsonl").read_bytes() == first_metrics
    assert "dr_grpo" in (tmp_path / "stopped" / "report.html").read_text()


def test_the_command_line_continues_an_arena_described_in_a_file(
    finished_arena, tiny_overrides, tmp_path, capsys
):
    from grpozoo.cli import main

    arena, _ = finished_arena
    config = tmp_path / "arena.yaml"
    definition = {
        "recipes": RECIPES,
        "steps": 2,
        "seeds": 1,
        "set": arena_sets(tiny_overrides),
        "output": str(arena.directory),
    }
    config.write_text(yaml.safe_dump(definition))
    (arena.directory / "report.html").unlink()
    assert main(["arena", "--config", str(config), "--no-progress"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "2 recipes × 1 seeds" in out and "(2 finished, 0 to train)" in out
    assert (arena.directory / "report.html").exists()
    assert main(["arena", "--config", str(config), "--report-only"]) == 0
    assert "report.html" in capsys.readouterr().out


def test_runs_in_parallel_processes_give_the_same_numbers(finished_arena, tiny_overrides, tmp_path):
    arena, _ = finished_arena
    parallel = make_arena(tiny_overrides, tmp_path / "parallel")
    parallel.parallel = 2
    result = run_arena(parallel, console=None, show_progress=False)
    assert sorted(result["trained"]) == ["dr_grpo-seed0", "grpo-seed0"]

    def numbers(directory: Path, recipe: str, name: str) -> list[dict[str, Any]]:
        rows = read_jsonl(directory / "runs" / f"{recipe}-seed0" / name)
        return [{k: v for k, v in r.items() if not k.startswith(("time/", "tokens_per_s"))} for r in rows]

    for recipe in RECIPES:
        for name in ("metrics.jsonl", "eval.jsonl"):
            assert numbers(tmp_path / "parallel", recipe, name) == numbers(arena.directory, recipe, name)
    assert (tmp_path / "parallel" / "report.html").exists()
