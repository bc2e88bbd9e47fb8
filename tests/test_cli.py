"""The command line: a tiny end-to-end run, and bad input failing fast with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import grpozoo.cli as cli
from grpozoo.cli import main
from grpozoo.recipes import all_recipes


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, " ".join((out.out + out.err).split())  # rich wraps long lines


def sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def test_recipes_lists_grpo_with_its_paper(capsys):
    code, out = run_cli(capsys, "recipes")
    assert code == 0
    assert "grpo" in out and "DeepSeekMath" in out


def test_recipes_lists_every_registered_recipe_with_its_paper(capsys, monkeypatch):
    from rich.console import Console

    # wide enough that no cell wraps: one table line per recipe
    monkeypatch.setattr(cli, "console", Console(width=5000))
    code = main(["recipes"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [[cell.strip() for cell in line.strip().strip("│").split("│")] for line in out.splitlines()
            if line.startswith("│")]
    listed = [(row[0], row[-1]) for row in rows]
    registered = [(recipe.name, recipe.citation) for recipe in all_recipes()]
    assert len(registered) > 50
    assert sorted(listed) == sorted(registered)


def test_train_then_resume_then_eval_a_run(capsys, tiny_overrides, tmp_path):
    code, out = run_cli(capsys, "train", "--steps", "1", "--no-progress", *sets(tiny_overrides))
    assert code == 0, out
    run = tmp_path / "run"
    code, out = run_cli(capsys, "train", "--resume", str(run), "--steps", "2", "--no-progress")
    assert code == 0, out
    assert "resuming" in out and "at step 1" in out
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    result_file = tmp_path / "eval.json"
    code, out = run_cli(capsys, "eval", "--run", str(run), "--samples", "2", "--output", str(result_file))
    assert code == 0, out
    result = json.loads(result_file.read_text())
    assert result["prompts"] == 6 and 0.0 <= result["accuracy"] <= 1.0 and "pass@2" in result
    assert result["model"].endswith("step-000002")
    for key in ("maj@2", "pass^2", "length_p50", "length_histogram", "mean_entropy", "calibration_auc"):
        assert key in result, key
    for words in ("pass@k", "maj@k", "pass^k", "length histogram", "entropy (nats/token)", "calibration AUC"):
        assert words in out, words
    # a checkpoint on its own (its run is found from it), printed as JSON: the same numbers
    code, out = run_cli(capsys, "eval", "--checkpoint", str(run / "checkpoints" / "step-000002"), "--samples", "2",
                        "--json")
    assert code == 0, out
    assert json.loads(out) == result


def test_eval_of_a_model_is_reproducible_with_a_seed(capsys, tiny_overrides, tmp_path):
    results = []
    for name in ("a.json", "b.json"):
        code, out = run_cli(capsys, "eval", *sets(tiny_overrides), "--samples", "2", "--output", str(tmp_path / name))
        assert code == 0, out
        results.append(json.loads((tmp_path / name).read_text()))
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--recipe", "grpoo"], ["unknown recipe 'grpoo'", "Did you mean 'grpo'", "Valid choices"]),
        (["--task", "chain_summ"], ["unknown task 'chain_summ'", "Did you mean 'chain_sum'"]),
        (["--model", "no/such/model/dir"], ["unknown model 'no/such/model/dir'", "smollm2-135m"]),
        (["--set", "train.stepz=3"], ["unknown config key 'train.stepz'", "Did you mean 'steps'"]),
        (["--set", "rollout.group_size=many"], ["rollout.group_size", "'many'"]),
        (["--set", "algorithm.advantage.name=gpro"], ["unknown advantage estimator 'gpro'", "Did you mean 'grpo'"]),
        (["--set", "algorithm.loss.params.epsilon=0.3"], ["policy loss 'ppo_clip' has no parameter 'epsilon'",
                                                         "eps_low"]),
    ],
)
def test_bad_names_and_keys_fail_fast_naming_the_culprit(capsys, tiny_overrides, argv, expected):
    # a --set given after the fixture's overrides wins; "--model" must beat the fixture's model.name
    base = [o for o in tiny_overrides if not (argv[0] == "--model" and o.startswith("model.name="))]
    code, out = run_cli(capsys, "train", "--no-progress", *sets(base), *argv)
    assert code == 2
    for text in expected:
        assert text in out


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_dataset_row_missing_its_answer_names_the_row(capsys, tiny_overrides, tmp_path):
    rows = [{"prompt": f"{i} + 1 =", "answer": str(i + 1)} for i in range(10)]
    rows[7] = {"prompt": "7 + 1 ="}
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    code, out = run_cli(capsys, "train", "--no-progress", *sets(tiny_overrides), "--task", str(data))
    assert code == 2
    assert "row 7 has no 'answer' value" in out


def reward_file(tmp_path, body: str) -> str:
    path = tmp_path / "my_rewards.py"
    path.write_text("def bad(completions, prompts, **columns):\n" + body)
    return f"{path}:bad"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    raise RuntimeError('verifier crashed')\n", ["reward 'bad' raised RuntimeError: verifier crashed"]),
        ("    return [1.0]\n", ["reward 'bad' returned 1 values for 6 completions"]),
        ("    return [0.0] * 3 + [float('nan')] + [0.0] * 2\n", ["reward 'bad' returned nan for sample 3"]),
    ],
)
def test_a_faulty_reward_function_is_named(capsys, tiny_overrides, tmp_path, body, expected):
    name = reward_file(tmp_path, body)
    code, out = run_cli(capsys, "train", "--no-progress", *sets(tiny_overrides),
                        "--set", f"rewards=[{{name: '{name}'}}]", "--set", "eval.at_start=false")
    assert code == 2
    for text in expected:
        assert text in out


def test_a_new_run_never_appends_to_an_existing_run_directory(capsys, tiny_overrides, tmp_path):
    args = ["train", "--steps", "1", "--no-progress", *sets(tiny_overrides), "--set", "eval.at_start=false",
            "--set", "eval.at_end=false"]
    assert run_cli(capsys, *args)[0] == 0
    code, out = run_cli(capsys, *args)
    assert code == 2
    assert "already holds a run" in out and "--resume" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--steps", "2"], ["an arena needs recipes: --recipes grpo,dr_grpo"]),
        (["--recipes", "grpo,dr_grpoo"], ["unknown recipe 'dr_grpoo'", "Did you mean 'dr_grpo'"]),
        (["--recipes", "grpo", "--seeds", "two"], ["--seeds 'two': expected a number of seeds"]),
        (["--recipes", "grpo", "--set", "output_dir=elsewhere"], ["which the arena sets itself", "--output"]),
        (["--recipes", "grpo", "--set", "rollout.group_sise=2"],
         ["arena entry 'grpo'", "unknown config key 'rollout.group_sise'", "Did you mean 'group_size'"]),
        (["--recipes", "grpo", "--parallel", "0"], ["--parallel 0: at least 1 run at a time"]),
        (["--recipes", "grpo", "--config", "no/such/arena.yaml"], ["config file 'no/such/arena.yaml' does not exist"]),
    ],
)
def test_bad_arena_input_fails_fast_naming_the_culprit(capsys, tmp_path, argv, expected):
    code, out = run_cli(capsys, "arena", "--output", str(tmp_path / "arena"), *argv)
    assert code == 2, out
    for text in expected:
        assert text in out
    assert not (tmp_path / "arena" / "runs").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--set", "algorithm.loss.params.eps_high=high"],
         ["policy loss 'ppo_clip' parameter eps_high: expected float", "got 'high' (str)"]),
        (["--set", "algorithm.advantage.params.scale=grup"],
         ["advantage estimator 'grpo' parameter scale: expected one of 'group', 'batch', 'none', "
          "got 'grup' (str). Did you mean 'group'?"]),
        (["--set", "rewards=[{name: format, params: {style: 3}}]"],
         ["reward 'format' parameter style: expected str, got 3 (int)"]),
    ],
)
def test_a_component_parameter_of_the_wrong_type_fails_at_start_up_in_one_line(capsys, tiny_overrides, argv,
                                                                                 expected):
    code, out = run_cli(capsys, "train", "--no-progress", *sets(tiny_overrides), *argv)
    assert code == 2 and "Traceback" not in out
    for text in expected:
        assert text in out


def test_an_unreadable_data_file_fails_in_one_line_naming_its_line(capsys, tiny_overrides, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"prompt": "1 + 1 =", "answer": "2"}\n' * 2 + '{"prompt": "2 + 2 =", "answer": 4\n')
    code, out = run_cli(capsys, "train", "--no-progress", *sets(tiny_overrides), "--task", str(path))
    assert code == 2
    assert f"task file {str(path)!r} cannot be read: line 3 is not valid JSON" in out


def test_a_run_on_a_data_file_saves_no_parameters_of_the_default_task(capsys, tiny_overrides, tmp_path):
    rows = [{"prompt": f"{i} + 1 =", "answer": str(i + 1)} for i in range(10)]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    code, out = run_cli(capsys, "train", "--steps", "1", "--no-progress", *sets(tiny_overrides),
                        "--task", str(data), "--set", "eval.at_start=false", "--set", "eval.at_end=false")
    assert code == 0, out
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert yaml.safe_load(saved)["task"]["params"] == {} and "min_terms" not in saved


def test_a_bug_during_training_keeps_its_traceback(tiny_overrides, monkeypatch):
    from grpozoo.training import Trainer

    def broken_step(self):
        raise ValueError("boom")

    monkeypatch.setattr(Trainer, "train_step", broken_step)
    with pytest.raises(ValueError, match="boom"):  # not caught into one line: Python prints the traceback
        main(["train", "--no-progress", *sets(tiny_overrides), "--set", "eval.at_start=false"])


def test_a_step_that_fails_before_its_update_leaves_a_checkpoint_that_resumes_exactly(
    capsys, tiny_overrides, tmp_path, monkeypatch
):
    from grpozoo.training.learner import Learner

    args = ["--steps", "3", "--no-progress", *sets(tiny_overrides), "--set", "train.checkpoint_every=10",
            "--set", "eval.at_start=false", "--set", "eval.at_end=false"]
    assert run_cli(capsys, "train", *args, "--output", str(tmp_path / "straight"))[0] == 0

    original = Learner.advantages

    def fails_at_step_two(self, batch):  # sampling moved the selector and random state; no update yet
        if batch.step == 2:
            raise AttributeError("a bug in step 2")
        return original(self, batch)

    monkeypatch.setattr(Learner, "advantages", fails_at_step_two)
    with pytest.raises(AttributeError, match="a bug in step 2"):
        main(["train", *args, "--output", str(tmp_path / "failed")])
    assert "step 2 failed; saved a checkpoint of step 1" in " ".join(capsys.readouterr().out.split())
    assert (tmp_path / "failed" / "checkpoints" / "step-000001").is_dir()
    monkeypatch.setattr(Learner, "advantages", original)
    code, out = run_cli(capsys, "train", "--resume", str(tmp_path / "failed"), "--steps", "3",
                        "--no-progress")
    assert code == 0, out

    def read(name):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if not k.startswith(("time/", "tokens_per_s"))}
                for line in lines]

    straight, resumed = read("straight"), read("failed")
    assert [m["step"] for m in resumed] == [1, 2, 3]
    for x, y in zip(straight, resumed, strict=True):
        assert x == pytest.approx(y, rel=1e-5, abs=1e-7), x["step"]


def test_a_server_engine_that_is_down_is_one_line_naming_its_url(capsys, tiny_overrides):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once closed
    code, out = run_cli(capsys, "train", "--no-progress", *sets(tiny_overrides), "--set", "generation.engine=vllm_server",
                        "--set", f"generation.url={url}", "--set", "generation.retries=0")
    assert code == 2
    assert f"vLLM server {url}/v1/models" in out and "Traceback" not in out and "grpozoo serve" in out


def test_serve_prints_a_vllm_command_with_what_the_engine_needs(capsys, tiny_model_dir):
    code, out = run_cli(capsys, "serve", "--print", "--python", "/opt/vllm/bin/python", "--model", str(tiny_model_dir),
                        "--port", "8123", "--lora-rank", "32", "--device", "cpu")
    assert code == 0
    assert out.startswith("VLLM_ALLOW_RUNTIME_LORA_UPDATING=True VLLM_SERVER_DEV_MODE=1")
    for part in ["/opt/vllm/bin/python -m vllm.entrypoints.openai.api_server", f"--model {tiny_model_dir}",
                 "--port 8123", "--logprobs-mode processed_logprobs", "--enable-lora", "--max-lora-rank 32",
                 "--worker-extension-cls grpozoo_vllm_worker.WeightSync", "--dtype float32 --enforce-eager"]:
        assert part in out, part
    extension = next(p for p in out.split("PYTHONPATH=")[1].split()[0].split(":") if p.endswith("vllm_extension"))
    assert (Path(extension) / "grpozoo_vllm_worker.py").is_file()
