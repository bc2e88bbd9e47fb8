"""Worked solutions of reasoning-gym tasks, and the hint-guided recipes training on them."""

import re

import pytest
import reasoning_gym
import torch

from grpozoo.config import DEFAULT_TASK, DEFAULT_TASK_PARAMS, TaskConfig, resolve_config
from grpozoo.errors import ConfigError
from grpozoo.tasks import make_task
from grpozoo.tasks.solutions import SOLVERS, worked_solution
from grpozoo.training.trainer import Trainer

STEP = re.compile(r"^(-?\d+) ([-+]) \(?(-?\d+)\)? = (-?\d+)$")
ARITHMETIC = re.compile(r"^[\d\s+\-*/()]+$")


def _chain_sum_rows(params, n=20, seed=0):
    task = make_task(TaskConfig(name="chain_sum", params=params, train_size=n, eval_size=1, seed=seed))
    return task.train_rows[:n]


@pytest.mark.parametrize("params", [
    DEFAULT_TASK_PARAMS,
    {"min_terms": 2, "max_terms": 6, "min_digits": 1, "max_digits": 4},
])
def test_chain_sum_solutions_are_the_sum_worked_step_by_step(params):
    rows = _chain_sum_rows(params)
    assert len(rows) == 20
    for row in rows:
        solution = row["solution"]
        expression = row["entry"]["metadata"]["expression"]
        terms = [int(t) for t in re.findall(r"\d+", expression)]
        signs = re.findall(r"[-+]", expression)
        lines = solution.splitlines()
        assert lines[0].startswith(f"Work out {expression} ")  # the plan first
        assert lines[-1] == f"The answer is {row['answer']}" and solution.endswith(row["answer"])
        steps = [STEP.match(line) for line in lines[1:-1]]
        assert all(steps) and len(steps) == len(terms) - 1
        running = terms[0]
        for step, sign, term in zip(steps, signs, terms[1:], strict=True):
            left, op, right, result = step.groups()
            assert (int(left), op, int(right)) == (running, sign, term)  # the expression's own operands, in order
            assert int(result) == (int(left) + int(right) if op == "+" else int(left) - int(right))
            running = int(result)
        assert str(running) == row["answer"]
        # hints: the plan and the first steps, then more of the steps, then the whole solution
        hints = row["hints"]
        assert hints[0].startswith(lines[0]) and hints[-1] == solution
        assert all(solution.startswith(h) and len(h) < len(later) for h, later in zip(hints, hints[1:], strict=False))
        if len(terms) == 2:
            assert hints == [lines[0], "\n".join(lines[:2]), solution]


def _equalities_hold(line):
    """Every ``a = b = c`` chain of pure integer arithmetic on the line evaluates to one value
    (``/`` dividing rounding down); returns how many such chains were checked."""
    parts = [p.strip() for p in re.sub(r"\(rounded down to a whole number\)", "", line).split(" = ")]
    if len(parts) < 2 or not all(ARITHMETIC.match(p) for p in parts):
        return 0
    values = {eval(p.replace("/", "//")) for p in parts}  # noqa: S307 (digits and operators only)
    assert len(values) == 1, line
    return 1


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_every_solver_gives_checked_solutions_ending_with_the_answer(name):
    dataset = reasoning_gym.create_dataset(name, size=20, seed=7)
    checked = 0
    for i in range(20):
        entry = dataset[i]
        solution = worked_solution(name, entry)
        assert solution is not None, (name, entry)
        assert solution.splitlines()[-1] == f"The answer is {entry['answer']}"
        assert dataset.score_answer(solution.splitlines()[-1].removeprefix("The answer is "), entry) == 1.0
        checked += sum(_equalities_hold(line) for line in solution.splitlines())
    assert checked >= 20 or name in ("count_bits", "leg_counting")


def test_products_multiply_by_place_value():
    entry = {"answer": "793546072", "metadata": {"expression": "18271 * 43432"}}
    assert worked_solution("products", entry).splitlines()[1] == (
        "18271 * 43432 = 18271 * 40000 + 18271 * 3000 + 18271 * 400 + 18271 * 30 + 18271 * 2"
        " = 730840000 + 54813000 + 7308400 + 548130 + 36542 = 793546072"
    )


def test_a_row_whose_answer_does_not_follow_from_its_metadata_gets_no_solution():
    assert worked_solution("chain_sum", {"answer": "9", "metadata": {"expression": "4 + 4"}}) is None
    assert worked_solution("chain_sum", {"answer": "8", "metadata": {}}) is None
    assert worked_solution("spell_backward", {"answer": "x", "metadata": {}}) is None  # no solver
    # reasoning-gym's basic_arithmetic without brackets computes left to right, ignoring precedence:
    # those rows' answers do not follow from their expressions and are left without a solution
    task = make_task(TaskConfig(name="basic_arithmetic", params={"allow_parentheses": False},
                                train_size=60, eval_size=1, seed=0))
    with_solution = [r for r in task.train_rows if "solution" in r]
    assert 0 < len(with_solution) < len(task.train_rows)
    for row in with_solution:
        assert row["solution"].endswith(f"The answer is {row['answer']}")
        assert eval(row["entry"]["metadata"]["expression"].replace("/", "//")) == int(row["answer"])  # noqa: S307


# ---------------------------------------------------------------- guided recipes on reasoning-gym


def _recording(calls):
    def spy(completions, prompts, **columns):
        calls.append((list(prompts), list(columns["solution"])))
        return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]

    return spy


@pytest.mark.parametrize("recipe", ["scaf_grpo", "ghpo", "guide_grpo"])
def test_hint_guided_recipes_start_and_train_on_the_default_task(recipe, tiny_overrides):
    calls = []
    overrides = [*tiny_overrides, f"recipe={recipe}", "rewards=[{name: task}, {name: spy}]", "train.steps=1",
                 "algorithm.guidance.start_fraction=0.0"]  # Scaf-GRPO's unguided opening would cover the one step
    cfg = resolve_config(overrides=overrides)
    assert cfg.task.name == DEFAULT_TASK
    trainer = Trainer(cfg, reward_functions={"spy": _recording(calls)})
    assert all(row["hints"] and row["solution"] for row in trainer.task.train_rows)
    torch.manual_seed(0)
    metrics = trainer.train_step()
    assert metrics["grad_norm"] > 0
    # the random tiny model fails every prompt, so guidance resamples with the worked solutions' hints
    assert metrics["guidance/stuck_groups"] >= 1 and metrics["guidance/hinted_rollouts"] >= 1
    hinted = [(prompt, solution) for prompts, solutions in calls[1:] for prompt, solution in zip(prompts, solutions, strict=True)]
    assert hinted and all(solution[:12] in prompt for prompt, solution in hinted)
    assert not any(solution[:12] in prompt for prompt, solution in zip(*calls[0], strict=True))  # unhinted first round


def test_a_guided_recipe_on_a_reasoning_gym_task_without_solutions_still_fails_at_start_up(tiny_overrides):
    cfg = resolve_config(overrides=[*tiny_overrides, "recipe=scaf_grpo", "task.name=letter_counting"])
    with pytest.raises(ConfigError) as info:
        Trainer(cfg)
    message = str(info.value)
    assert "no train row of task 'letter_counting' has one" in message
    assert "'hints' column" in message and "algorithm.guidance.mode=off" in message
    assert "reasoning-gym task with worked solutions (basic_arithmetic, chain_sum" in message
