"""Fixed benchmarks: HumanEval judged in the code sandbox (canonical solutions pass, wrong and
cheating ones fail), its pass@k, the reasoning-gym suite, and ``grpozoo eval --benchmark``."""

from __future__ import annotations

import json
import math
from functools import cache

import pytest

from grpozoo.config import TaskConfig
from grpozoo.evaluation.benchmarks import (
    BENCHMARKS,
    RG_SIZE,
    HumanEvalTask,
    get_benchmark,
    humaneval_problems,
    humaneval_program,
    pass_at_ks,
    reasoning_gym_suite,
    run_humaneval,
)
from grpozoo.evaluation.metrics import pass_at_k
from grpozoo.rewards.sandbox import Limits, Sandbox


@cache
def problems() -> dict[str, dict]:
    return {p["task_id"]: p for p in humaneval_problems()}


@cache
def sandbox(wall_s: float = 10.0) -> Sandbox:
    return Sandbox(Limits(wall_s=wall_s, cpu_s=math.ceil(wall_s)), workers=2)


def judge(task_id: str, body: str, wall_s: float = 10.0):
    """The sandbox's result for ``body`` continuing ``task_id``'s prompt."""
    problem = problems()[task_id]
    return run_humaneval([problem], [problem["prompt"] + body], sandbox(wall_s))[0]


def naive_judge(task_id: str, body: str) -> bool:
    """A harness that trusts the process: prompt, body, test and ``check(entry_point)`` as one
    script in the same sandbox, passed when it exits with status 0 and prints nothing. The cheats
    below pass it, so their failing the real harness is the harness's doing."""
    problem = problems()[task_id]
    script = f"{problem['prompt']}{body}\n{problem['test']}\ncheck({problem['entry_point']})\n"
    return sandbox().run(script, [{"input": "", "output": ""}]).passed == 1


# ----------------------------------------------------------------------------- the data
def test_the_package_ships_all_164_problems():
    found = humaneval_problems()
    assert len(found) == 164
    assert [p["task_id"] for p in found[:2]] == ["HumanEval/0", "HumanEval/1"]
    assert {"prompt", "canonical_solution", "test", "entry_point"} <= set(found[0])


# ----------------------------------------------------------------------------- right solutions pass
def test_every_canonical_solution_passes_in_the_sandbox():
    # all 164: about 10 s on 2 cores
    found = humaneval_problems()
    results = run_humaneval(found, [p["prompt"] + p["canonical_solution"] for p in found], sandbox())
    failed = {
        p["task_id"]: (r.status, r.stderr_tail[-300:])
        for p, r in zip(found, results, strict=True)
        if r.passed != 1
    }
    assert not failed


def test_a_chat_reply_with_the_whole_function_and_a_base_continuation_both_pass():
    problem = problems()["HumanEval/2"]
    whole = "def truncate_number(number: float) -> float:\n    return number % 1.0\n"
    reply = f"Here it is:\n```python\n{whole}```\nIt keeps the decimals."
    body = "    return number % 1.0\n"
    # a base model runs on after the body; the stop sequences cut it before it breaks the program
    continuation = body + "\n\nprint(1 / 0)\n"
    programs = [
        humaneval_program(problem, reply, chat=True),
        humaneval_program(problem, f"```python\n{body}```", chat=True),
        humaneval_program(problem, continuation, chat=False),
    ]
    assert [r.passed for r in run_humaneval([problem] * 3, programs, sandbox())] == [1, 1, 1]
    assert judge("HumanEval/2", continuation).passed == 0  # uncut, it raises


def test_a_return_value_of_a_subclass_is_read_as_its_base_type():
    # a Counter is a dict: the reference passes it, and so does the harness
    body = """\
    import collections
    counts = collections.Counter(test.split())
    top = max(counts.values(), default=0)
    return collections.Counter({k: v for k, v in counts.items() if v == top})
"""
    assert judge("HumanEval/111", body).passed == 1


def test_a_solution_that_prints_still_passes():
    assert judge("HumanEval/2", "    print('debugging', number)\n    return number % 1.0\n").passed == 1


# ----------------------------------------------------------------------------- wrong solutions fail
@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("    return 0.0\n", "ok"),  # a wrong answer: the test ran and failed
        ("    return number // 1.0\n", "ok"),
        ("    raise ValueError('no')\n", "ok"),
        ("    return number % 1.0 +\n", "ok"),  # a syntax error
        ("    pass\n", "ok"),  # returns None
    ],
)
def test_a_wrong_solution_fails(body, status):
    result = judge("HumanEval/2", body)
    assert (result.passed, result.status) == (0, status)


def test_a_solution_past_the_time_limit_fails():
    result = judge("HumanEval/2", "    while True:\n        pass\n", wall_s=1.0)
    assert (result.passed, result.status) == (0, "timeout")


# ----------------------------------------------------------------------------- cheats fail
CHEATS = {
    # ends the process with status 0 before the test's asserts run
    "os._exit(0) at import": ("HumanEval/2", "    return 0.0\nimport os\nos._exit(0)\n"),
    "sys.exit(0) at import": ("HumanEval/2", "    return 0.0\nimport sys\nsys.exit(0)\n"),
    "os._exit(0) in the call": ("HumanEval/2", "    import os\n    os._exit(0)\n"),
    "SystemExit in the call": ("HumanEval/2", "    raise SystemExit(0)\n"),
    # makes the asserts hold without the right answer
    "a patched builtin": ("HumanEval/2", "    return 0.5\nimport builtins\nbuiltins.abs = lambda x: 0\n"),
    "an object equal to everything": (
        "HumanEval/0",
        "    class Equal:\n        def __eq__(self, other):\n            return True\n    return Equal()\n",
    ),
    "a patched math.fabs": ("HumanEval/32", "    return 0.0\nimport math\nmath.fabs = lambda x: 0.0\n"),
    "a replaced math module": (
        "HumanEval/32",
        "    return 0.0\nimport math, sys, types\nfake = types.ModuleType('math')\nfake.__dict__.update(math.__dict__)\n"
        "fake.fabs = lambda x: 0.0\nsys.modules['math'] = fake\n",
    ),
    "a redefined helper the test uses": (
        "HumanEval/32",
        "    return 0.0\ndef poly(xs, x):\n    return 0.0\n",
    ),
}


@pytest.mark.parametrize("name", list(CHEATS))
def test_a_cheat_that_fools_a_trusting_harness_fails(name):
    task_id, body = CHEATS[name]
    assert naive_judge(task_id, body), "the cheat should fool a harness that trusts the process"
    assert judge(task_id, body).passed == 0


@pytest.mark.parametrize(
    "body",
    [
        # overrides check, in the program's namespace and in the builtins
        "    return 0.0\ndef check(candidate):\n    pass\nimport builtins\nbuiltins.check = check\n",
        # prints what a naive harness might look for, then ends
        "    return 0.0\nprint('passed')\nprint('All tests passed')\nimport os\nos._exit(0)\n",
        # reads the nonce the trainer wrote to stdin, prints it, ends with status 0
        "    return 0.0\nimport os\nnonce = os.read(0, 256)\nos.write(1, b'\\n' + nonce + b'\\n')\nos._exit(0)\n",
        # the same, and then lets the test run (it fails, and the nonce is gone from stdin)
        "    return 0.0\nimport os\nprint(os.read(0, 256).decode())\n",
        # a subclass of the right type whose __eq__ always holds
        "    class Equal(float):\n        def __eq__(self, other):\n            return True\n"
        "        def __sub__(self, other):\n            return 0.0\n    return Equal(0.25)\n",
    ],
)
def test_a_forged_verdict_fails(body):
    assert judge("HumanEval/2", body).passed == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("    return number % 1.0\nimport sys\nsys.settrace(lambda *a: None)\n", "trace or profile"),
        (
            "    import sys\n    sys.setprofile(lambda *a: None)\n    return number % 1.0\n",
            "trace or profile",
        ),
        (
            "    return number % 1.0\nimport threading, time\n"
            "threading.Thread(target=time.sleep, args=(3,), daemon=True).start()\n",
            "thread",
        ),
        ("    import gc\n    gc.enable()\n    return number % 1.0\n", "garbage collector"),
        ("    return number % 1.0\ndel truncate_number\n", "defines no truncate_number"),
    ],
)
def test_a_right_answer_that_tampers_with_the_interpreter_is_refused(body, reason):
    # each could let code of the program's run in the middle of the test; right answers, refused
    result = judge("HumanEval/2", body)
    assert result.passed == 0
    assert reason in result.stderr_tail


# ----------------------------------------------------------------------------- scoring and pass@k
def test_the_task_scores_a_batch_and_keeps_each_outcome():
    task = HumanEvalTask(chat=True, limit=3)
    assert [r["task_id"] for r in task.eval_rows] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    row = task.eval_rows[2]
    right = "```python\ndef truncate_number(number):\n    return number % 1.0\n```"
    wrong = "```python\ndef truncate_number(number):\n    return 0.5\n```"
    assert task.score_many([right, wrong, "no code here"], [row] * 3) == [1.0, 0.0, 0.0]
    assert task.extract(right) == "def truncate_number(number):\n    return number % 1.0"
    assert task.report() == {
        "sandbox_outcomes": {"passed": 1, "failed": 2},
        "problems": {"HumanEval/2": 1},
    }
    assert "```python\nfrom typing import List" in task.messages(task.eval_rows[0])[0]["content"]
    base = HumanEvalTask(chat=False, limit=1)
    assert base.messages(base.eval_rows[0]) == [{"role": "user", "content": base.eval_rows[0]["prompt"]}]


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 2 / 5),
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
        (5, 2, 4, 1.0),  # fewer than 4 wrong: every draw of 4 holds a right one
        (10, 3, 2, 1 - 21 / 45),  # 1 - C(7,2)/C(10,2)
        (10, 0, 10, 0.0),
        (200, 1, 100, 0.5),  # 1 - C(199,100)/C(200,100) = 1 - 100/200
    ],
)
def test_pass_at_k_by_hand(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("n", "c", "k"), [(200, 37, 1), (200, 37, 10), (200, 37, 100), (20, 19, 5), (7, 0, 3)]
)
def test_pass_at_k_equals_the_papers_numerically_stable_form(n, c, k):
    # Chen et al. 2021's code: 1 - prod(1 - k / i for i in n-c+1 … n)
    stable = 1.0 if n - c < k else 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
    assert pass_at_k(n, c, k) == pytest.approx(stable, rel=1e-12)


def test_pass_at_k_over_problems_by_hand():
    # 3 samples of 3 problems, right 0, 1 and 3 times
    assert pass_at_ks([0, 1, 3], 3, (1, 2, 3, 10)) == pytest.approx(
        {"pass@1": (0 + 1 / 3 + 1) / 3, "pass@2": (0 + (1 - 1 / 3) + 1) / 3, "pass@3": (0 + 1 + 1) / 3}
    )
    assert set(pass_at_ks([5] * 4, 12, BENCHMARKS["humaneval"].ks)) == {"pass@1", "pass@10"}


# ----------------------------------------------------------------------------- reasoning-gym suite
def suite_rows(task_cfg=None) -> list[list[tuple[str, str]]]:
    return [
        [(r["prompt"], r["answer"]) for r in t.eval_rows]
        for t in reasoning_gym_suite("rg-arithmetic", task_cfg)
    ]


def test_the_reasoning_gym_suite_is_fixed():
    first = suite_rows()
    assert [len(rows) for rows in first] == [RG_SIZE] * 5
    assert suite_rows() == first  # the same rows again
    # the run's own task seed and size do not move them; its prompt format is used
    moved = TaskConfig(seed=7, eval_size=3, train_size=9, system_prompt="Think, then answer.")
    assert suite_rows(moved) == first
    tasks = reasoning_gym_suite("rg-arithmetic", moved, limit=4)
    assert [t.name for t in tasks] == ["chain_sum", "basic_arithmetic", "products", "gcd", "lcm"]
    assert [[(r["prompt"], r["answer"]) for r in t.eval_rows] for t in tasks] == [rows[:4] for rows in first]
    assert tasks[0].messages(tasks[0].eval_rows[0])[0] == {"role": "system", "content": "Think, then answer."}


def test_the_reasoning_gym_suite_scores_with_each_tasks_verifier():
    for task in reasoning_gym_suite("rg-arithmetic", limit=5):
        for row in task.eval_rows:
            answer = int(row["answer"])
            assert task.score(f"The answer is {answer}.", row) == 1.0, (task.name, row["prompt"])
            assert task.score(f"The answer is {answer + 1}.", row) == 0.0, (task.name, row["prompt"])
            assert task.score("I do not know.", row) == 0.0


# ----------------------------------------------------------------------------- the command line
def run_eval(capsys, *argv: str) -> tuple[int, str]:
    from grpozoo.cli import main

    code = main(["eval", *argv])
    out = capsys.readouterr()
    return code, " ".join((out.out + out.err).split())


def test_eval_humaneval_with_the_tiny_model(capsys, tiny_model_dir, tmp_path):
    output = tmp_path / "humaneval.json"
    code, out = run_eval(
        capsys, "--model", str(tiny_model_dir), "--benchmark", "humaneval", "--limit", "2", "--samples", "1",
        "--max-new-tokens", "64", "--no-progress", "--output", str(output),
    )  # fmt: skip
    assert code == 0, out
    result = json.loads(output.read_text())
    assert (result["benchmark"], result["prompts"], result["samples_per_prompt"]) == ("humaneval", 2, 1)
    assert (result["temperature"], result["max_new_tokens"]) == (0.0, 64)  # one sample: greedy
    assert 0.0 <= result["pass@1"] <= 1.0 and result["pass@1"] == result["accuracy"]
    assert sum(result["sandbox_outcomes"].values()) == 2
    assert set(result["problems"]) == {"HumanEval/0", "HumanEval/1"}
    assert result["model"] == str(tiny_model_dir)
    for words in ("on humaneval (2 problems; temperature 0", "pass@k", "sandbox runs:"):
        assert words in out, words


def test_eval_of_the_reasoning_gym_suite_reports_each_task(capsys, tiny_model_dir):
    code, out = run_eval(
        capsys, "--model", str(tiny_model_dir), "--benchmark", "rg-arithmetic", "--limit", "2", "--samples", "2",
        "--max-new-tokens", "4", "--json",
    )  # fmt: skip
    assert code == 0, out
    result = json.loads(out)
    assert result["prompts"] == 10 and result["temperature"] == 1.0  # several samples: sampled
    assert list(result["tasks"]) == ["chain_sum", "basic_arithmetic", "products", "gcd", "lcm"]
    assert all(t["prompts"] == 2 and "pass@2" in t for t in result["tasks"].values())
    # overall: every prompt weighs the same, and the tasks are the same size
    assert result["accuracy"] == pytest.approx(sum(t["accuracy"] for t in result["tasks"].values()) / 5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--benchmark", "humaneavl"], "unknown benchmark 'humaneavl'. Did you mean 'humaneval'?"),
        (["--limit", "3"], "--limit and --max-new-tokens go with --benchmark NAME"),
        (["--benchmark", "humaneval", "--limit", "0"], "--limit 0: give 1 or more"),
        (["--benchmark", "no/such/bench.jsonl"], "--benchmark no/such/bench.jsonl: no such file"),
    ],
)
def test_eval_benchmark_refuses_bad_options(capsys, argv, message):
    code, out = run_eval(capsys, "--model", "/nonexistent/model", *argv)
    assert code == 2
    assert message in out


def test_the_nonce_travels_outside_the_program():
    # the program the sandbox runs never holds the nonce; stdin brings it, and the probe's literal
    # (compared in the trainer) is it; each run has its own
    class Recorder:
        def run_many(self, programs, tests):
            self.programs, self.tests = programs, tests
            return []

    recorder = Recorder()
    problem = problems()["HumanEval/2"]
    run_humaneval([problem] * 2, [problem["prompt"] + "    return 0.0\n"] * 2, recorder)
    nonces = []
    for program, (case,) in zip(recorder.programs, recorder.tests, strict=True):
        nonce = case.stdin
        assert len(nonce) == 32 and nonce not in program
        assert [(p.expression, p.op, p.literal) for p in case.probes] == [("__humaneval()", "==", nonce)]
        compile(program, "<harness>", "exec")
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_a_task_file_is_a_benchmark_of_all_its_rows_judged_by_math_verify(capsys, tiny_model_dir, tmp_path):
    bench = tmp_path / "wireless.jsonl"
    rows = [{"prompt": f"What is the capacity gain of {k} antennas?", "answer": str(k)} for k in range(1, 6)]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    benchmark = get_benchmark(str(bench))
    [task] = benchmark.tasks(None, limit=None)
    assert sorted(r["answer"] for r in task.eval_rows) == ["1", "2", "3", "4", "5"] and not task.train_rows
    row = next(r for r in task.eval_rows if r["answer"] == "4")
    assert task.score("so the gain is \\boxed{4}", row) == 1.0 and task.score("\\boxed{5}", row) == 0.0
    from grpozoo.cli import main

    code = main(["eval", "--model", str(tiny_model_dir), "--benchmark", str(bench), "--limit", "3",
                 "--max-new-tokens", "4", "--json"])
    out = capsys.readouterr().out  # the JSON alone: datasets reports its loading on stderr
    assert code == 0, out
    result = json.loads(out)
    assert result["prompts"] == 3 and result["benchmark"] == str(bench) and "arXiv:2509.23219" in result["citation"]
