"""Arena definitions from flags and YAML files: entries, seeds, shared and per-recipe overrides,
and clear errors for bad input. No training here."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpozoo.arena import arena_from_args, parse_seeds
from grpozoo.arena.spec import default_directory
from grpozoo.config import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, [0, 1, 2]), ("2", [0, 1]), ("0,7,42", [0, 7, 42]), ("5,", [5]), ([4, 1], [4, 1])],
)
def test_seeds_are_a_count_or_a_list(value, expected):
    assert parse_seeds(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x", "--seeds 'x': expected a number of seeds (3 means 0,1,2) or a list like 0,7,42"),
        ("0,a", "--seeds '0,a': every seed in a list must be an integer"),
        (0, "--seeds 0: at least one seed is needed"),
        ([1, 1], "a seed is listed twice"),
    ],
)
def test_bad_seeds_are_named(value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_seeds(value)


def test_runs_share_everything_but_the_algorithm_and_go_seed_by_seed(tmp_path):
    arena = arena_from_args(
        recipes="grpo,dr_grpo",
        task="chain_sum",
        steps=5,
        seeds=2,
        overrides=["rollout.group_size=6"],
        output=tmp_path / "a",
    )
    runs = arena.runs()
    assert [r.label for r in runs] == ["grpo-seed0", "dr_grpo-seed0", "grpo-seed1", "dr_grpo-seed1"]
    assert [r.run_dir for r in runs][:2] == [
        tmp_path / "a" / "runs" / "grpo-seed0",
        tmp_path / "a" / "runs" / "dr_grpo-seed0",
    ]
    for run in runs:
        assert run.cfg.recipe == run.entry.recipe and run.cfg.train.seed == run.seed
        assert (
            run.cfg.train.steps == 5 and run.cfg.rollout.group_size == 6 and run.cfg.task.name == "chain_sum"
        )
        assert run.cfg.output_dir == str(run.run_dir)
    assert runs[0].cfg.algorithm.aggregation == "token_mean"
    assert runs[1].cfg.algorithm.aggregation == "constant_normalizer"


def test_a_recipe_keeps_its_own_settings_unless_the_arena_overrides_them(tmp_path):
    own = arena_from_args(recipes="grpo,mc_grpo", output=tmp_path)
    assert [r.cfg.rollout.group_size for r in own.runs()] == [4, 5]  # MC-GRPO samples G+1
    pinned = arena_from_args(recipes="grpo,mc_grpo", overrides=["rollout.group_size=8"], output=tmp_path)
    assert [r.cfg.rollout.group_size for r in pinned.runs()] == [8, 8]


def test_an_arena_file_with_entries_and_overrides(tmp_path):
    config = write(
        tmp_path / "arena.yaml",
        """
recipes:
  - grpo
  - {recipe: dapo, name: dapo-long, set: [rollout.max_new_tokens=48]}
  - {recipe: dapo, name: dapo-lr, set: {train: {learning_rate: 1.0e-4}}}
task: chain_sum
steps: 3
seeds: [0, 7]
set: {rollout: {prompts_per_step: 2}, train: {learning_rate: 3e-4}}
parallel: 2
output: %s
"""
        % (tmp_path / "out"),
    )
    arena = arena_from_args(config=config, overrides=["rollout.group_size=2"])
    assert arena.directory == tmp_path / "out" and arena.seeds == [0, 7] and arena.parallel == 2
    by_label = {r.label: r.cfg for r in arena.runs()}
    assert set(by_label) == {f"{n}-seed{s}" for n in ("grpo", "dapo-long", "dapo-lr") for s in (0, 7)}
    assert by_label["dapo-long-seed7"].rollout.max_new_tokens == 48
    assert by_label["grpo-seed0"].rollout.max_new_tokens == 24
    assert by_label["dapo-lr-seed0"].train.learning_rate == pytest.approx(1e-4)  # the entry's own value wins
    assert by_label["grpo-seed0"].train.learning_rate == pytest.approx(3e-4)  # the file's shared value
    assert all(
        c.rollout.prompts_per_step == 2 and c.rollout.group_size == 2 and c.train.steps == 3
        for c in by_label.values()
    )
    # flags win over the file; an entry of the file named on --recipes keeps its overrides
    narrowed = arena_from_args(config=config, recipes="dapo-long,dr_grpo", steps=4, seeds="1")
    assert [r.label for r in narrowed.runs()] == ["dapo-long-seed0", "dr_grpo-seed0"]
    assert narrowed.runs()[0].cfg.rollout.max_new_tokens == 48 and narrowed.runs()[0].cfg.train.steps == 4


def test_the_default_directory_names_the_task_and_steps():
    assert default_directory("chain_sum", 20) == Path("arenas/chain_sum-20steps")
    assert arena_from_args(recipes="grpo", steps=7).directory == Path("arenas/chain_sum-7steps")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "an arena needs recipes: --recipes grpo,dr_grpo"),
        ({"recipes": "grpoo"}, "unknown recipe 'grpoo'. Did you mean 'grpo'"),
        ({"recipes": "grpo,grpo"}, "arena entry 'grpo' appears twice: give the second one its own name"),
        (
            {"recipes": "grpo", "overrides": ["output_dir=x"]},
            "--set sets output_dir='x', which the arena sets itself: the arena puts every run in DIR/runs",
        ),
        (
            {"recipes": "grpo", "overrides": ["train.seed=3"]},
            "--set sets train.seed=3, which the arena sets itself: the seeds come from --seeds",
        ),
        (
            {"recipes": "grpo", "overrides": ["recipe=dapo"]},
            "--set sets recipe='dapo', which the arena sets itself",
        ),
    ],
)
def test_bad_arenas_fail_naming_the_culprit(kwargs, message):
    with pytest.raises((ConfigError, KeyError), match=message.replace("(", r"\(").replace(")", r"\)")):
        arena_from_args(**kwargs)


def test_a_bad_key_of_one_run_is_found_before_any_training(tmp_path):
    from grpozoo.arena import run_arena

    arena = arena_from_args(recipes="grpo", overrides=["train.stepz=3"], output=tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"arena entry 'grpo' \(recipe 'grpo', seed 0\): unknown config key "
        r"'train.stepz'. Did you mean 'steps'",
    ):
        run_arena(arena, console=None)
    arena = arena_from_args(recipes="grpo", overrides=["algorithm.loss.name=ppo_clipp"], output=tmp_path)
    with pytest.raises(ConfigError, match="arena entry 'grpo': unknown policy loss 'ppo_clipp'"):
        run_arena(arena, console=None)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("recipe: [grpo]\n", "unknown key 'recipe'. Did you mean 'recipes'"),
        ("recipes: [{recipe: grpo, sett: []}]\n", "unknown key 'recipes.0.sett'. Did you mean 'set'"),
        ("recipes: [grpo]\nseeds: many\n", "seeds = 'many': Input should be a valid integer"),
        ("recipes: [grpo]\nsteps: -2\n", "steps = -2: Input should be greater than 0"),
        ("- grpo\n", "must hold a mapping at the top level"),
        ("recipes: [{recipe: grpo, name: 'a b'}]\n", "a name may hold only letters, digits"),
    ],
)
def test_bad_arena_files_are_named(tmp_path, text, message):
    config = write(tmp_path / "arena.yaml", text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        arena_from_args(config=config)


def test_a_run_is_new_resumable_or_finished_by_what_its_directory_holds(tmp_path):
    from grpozoo.arena import run_state
    from grpozoo.training.checkpoint import STATE_FILE

    run = arena_from_args(recipes="grpo", steps=2, output=tmp_path).runs()[0]
    assert run_state(run) == "new"
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    assert run_state(run) == "new"  # stopped before its first checkpoint: starts again

    def checkpoint(step: int) -> None:
        path = run.run_dir / "checkpoints" / f"step-{step:06d}"
        path.mkdir(parents=True)
        (path / STATE_FILE).write_bytes(b"")

    checkpoint(1)
    assert run_state(run) == "resume"
    checkpoint(2)
    assert run_state(run) == "resume"  # trained, but its final evaluation is missing
    (run.run_dir / "eval.jsonl").write_text('{"step": 0}\n{"step": 2}\n')
    assert run_state(run) == "finished"
    longer = arena_from_args(recipes="grpo", steps=3, output=tmp_path).runs()[0]
    assert run_state(longer) == "resume"  # more steps asked for: it continues
