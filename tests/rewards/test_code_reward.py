"""The code_tests reward: the program extracted from a completion, run against the row's tests."""

from __future__ import annotations

import json
import math

import pytest
import torch

from grpozoo.config import RewardConfig
from grpozoo.registry import rewards as reward_registry
from grpozoo.rewards import RewardError, RewardModel
from grpozoo.rewards.code import code_tests_reward, extract_code

FAST = {"wall_s": 2.0, "cpu_s": 1, "memory_mb": 128, "max_processes": 8, "workers": 2}
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(-1, 0) == -1"]


def fenced(code: str, tag: str = "python") -> str:
    return f"Here is my solution:\n```{tag}\n{code}```\nIt adds."


def test_extract_code_prefers_the_last_python_block():
    text = "```python\ndef f(): return 1\n```\nbetter:\n```py\ndef f(): return 2\n```\n```text\n2\n```"
    assert extract_code(text) == "def f(): return 2\n"


def test_extract_code_falls_back_to_a_bare_fence_then_the_whole_text():
    assert extract_code("```\nx = 1\n```\n```bash\nls\n```") == "x = 1\n"
    assert extract_code("```bash\nls\n```") == "```bash\nls\n```"
    assert extract_code("def f():\n    return 1\n") == "def f():\n    return 1\n"


def test_extract_code_reads_a_truncated_last_block_to_the_end():
    assert extract_code("Solution:\n```python\ndef f():\n    return") == "def f():\n    return"


def test_code_tests_is_registered():
    assert reward_registry.get("code_tests") is code_tests_reward
    assert reward_registry.spec("code_tests").reports_timeouts


def test_fraction_of_tests_passed_and_timeouts_missing_and_counted():
    completions = [
        fenced("def add(a, b):\n    return a + b\n"),  # 3 of 3
        fenced("def add(a, b):\n    return abs(a + b)\n"),  # fails add(-1, 0) == -1: 2 of 3
        "def add(a, b):\n    return a * b\n",  # no fence: the whole text; add(2, 2) == 4 only: 1 of 3
        fenced("def add(a, b):\n    while True:\n        pass\n"),  # times out
    ]
    model = RewardModel([RewardConfig(name="code_tests", params=FAST)])
    assert model.timeout_metrics() == {"reward/code_tests/timeouts": 0.0}  # logged from the first step
    total, parts = model(completions, ["p"] * 4, {"tests": [ADD_TESTS] * 4})
    values = parts["code_tests"]
    torch.testing.assert_close(values[:3], torch.tensor([1.0, 2 / 3, 1 / 3]))
    assert math.isnan(values[3])  # missing, never 0 or 1
    assert total[3] == 0.0  # a sample every reward is silent on totals 0 (and is counted below)
    assert model.timeout_metrics() == {"reward/code_tests/timeouts": 1.0}
    assert model.timeout_metrics() == {"reward/code_tests/timeouts": 0.0}  # per step


def test_all_or_nothing():
    completions = [
        fenced("def add(a, b):\n    return a + b\n"),
        fenced("def add(a, b):\n    return abs(a + b)\n"),
    ]
    scores = code_tests_reward(completions, ["p", "p"], tests=[ADD_TESTS] * 2, all_or_nothing=True, **FAST)
    assert scores == [1.0, 0.0] and scores.timeouts == 0


def test_stdin_stdout_tests_from_a_json_column_with_another_name():
    program = fenced("n = int(input())\nprint(n * n)\n")
    cases = json.dumps({"inputs": ["3\n", "4\n", "5\n"], "outputs": ["9\n", "16\n", "26\n"]})
    scores = code_tests_reward([program], ["p"], column="io", io=[cases], **FAST)
    assert scores == [pytest.approx(2 / 3)]


def test_hostile_completion_scores_zero_without_harm(tmp_path):
    target = tmp_path / "pwned.txt"
    completion = fenced(
        f"import os\nopen({str(target)!r}, 'w').write('x')\ndef add(a, b):\n    return a + b\n"
    )
    assert code_tests_reward([completion], ["p"], tests=[ADD_TESTS], **FAST) == [0.0]
    assert not target.exists()


def test_missing_column_names_it_and_the_fix():
    model = RewardModel([RewardConfig(name="code_tests", params=FAST)])
    with pytest.raises(
        RewardError, match=r"reward 'code_tests' raised KeyError.*column 'tests'.*params.column"
    ):
        model(["x = 1"], ["p"], {"answer": ["1"]})


def test_a_row_without_tests_is_an_error():
    with pytest.raises(ValueError, match="row 1 has no test cases in column 'tests'"):
        code_tests_reward(["x = 1", "x = 1"], ["p", "p"], tests=[["assert x == 1"], []], **FAST)


def test_a_wrong_program_that_disables_the_checks_scores_zero():
    forged = fenced("def add(a, b):\n    return 0\nimport builtins\nbuiltins.exec = lambda *a, **k: None\n")
    assert code_tests_reward([forged], ["p"], tests=[ADD_TESTS], **FAST) == [0.0]


def test_an_assert_test_without_a_literal_side_is_refused_before_any_run():
    tests = [ADD_TESTS, ["assert add(2, 1) == add(1, 2)"]]
    with pytest.raises(ValueError, match=r"row 1 .*add\(2, 1\) == add\(1, 2\).*no literal side.*accepted:"):
        code_tests_reward(["x = 1", "x = 1"], ["p", "p"], tests=tests, **FAST)
