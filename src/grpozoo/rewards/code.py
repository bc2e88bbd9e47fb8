"""Code-execution reward: the completion's program run against the row's test cases in the sandbox.

The isolation and its limits are described in ``grpozoo.rewards.sandbox``.
"""

from __future__ import annotations

import re
from typing import Literal

from grpozoo.registry import rewards
from grpozoo.rewards.combine import RewardScores
from grpozoo.rewards.sandbox import Limits, Sandbox, SandboxResult
from grpozoo.rewards.test_cases import TestCase, parse_tests

# an opening fence with its language tag; the block runs to the next fence or, unclosed, to the end
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = frozenset({"python", "python3", "py"})


def extract_code(completion: str) -> str:
    """The program in a completion: the last ```python (or ```py, ```python3) fenced block; else
    the last fenced block without a language; else the whole text. A last block whose closing
    fence was cut off (a truncated completion) runs to the end of the text."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(completion)]
    for wanted in (lambda tag: tag in _PYTHON_TAGS, lambda tag: tag == ""):
        chosen = [body for tag, body in blocks if wanted(tag)]
        if chosen:
            return chosen[-1]
    return completion


def _check_sandbox(sandbox: str = "bwrap", **_: object) -> None:
    """At start-up: the sandbox mode is known and, by default, bubblewrap runs here."""
    Sandbox(mode=sandbox, workers=1)


@rewards.register("code_tests", reports_timeouts=True, check=_check_sandbox)
def code_tests_reward(
    completions,
    prompts,
    column: str = "tests",
    all_or_nothing: bool = False,
    wall_s: float = 10.0,
    cpu_s: int = 10,
    memory_mb: int = 512,
    max_processes: int = 16,
    workers: int | None = None,
    sandbox: Literal["bwrap", "unsafe_audit_only"] = "bwrap",
    **columns,
) -> RewardScores:
    """The fraction of the row's test cases the completion's program passes (1.0 or 0.0 with
    ``all_or_nothing``), run in the sandbox (``grpozoo.rewards.sandbox``); returns ``[B]`` scores.

    The program is ``extract_code(completion)``. The tests come from the dataset column ``column``
    (default ``tests``), one list per row, in either form (see ``test_cases.parse_tests``):

    - assert statements, as in MBPP (Austin et al., 2021): ``["assert add(1, 2) == 3",
      "assert add(-1, 1) == 0"]``; the program's ``if __name__ == "__main__":`` block does not
      run. The program's process only evaluates each assert's expression (``add(1, 2)``) and
      sends back its value as plain data; the comparison with the expected literal is made in the
      trainer, so patching the interpreter, reading frames or printing markers cannot forge a
      pass. Each assert must be top-level and compare with a literal (``X == L``, ``!=``, ``<``,
      ``in``, ``is None``, …, ``math.isclose(X, L)``, joined by ``and``) or be ``assert X`` /
      ``assert not X`` (truthiness only: weak); other statements run as setup. A test with an
      assert inside a block (HumanEval's ``check(candidate)``) or comparing two computed values
      (``assert f(2) == f(1) + 3``) is refused with an error when the tests are read
      (``test_cases`` lists the forms). An exception in a test fails that test;
    - stdin/stdout pairs, the program run as a script for each and its output compared line by
      line (trailing spaces ignored): ``[{"input": "1 2\\n", "output": "3"}]``, or the layout of
      APPS (Hendrycks et al., 2021) ``{"inputs": [...], "outputs": [...]}``; a JSON string of
      either is read too.

    A program whose run timed out (wall clock or CPU) scores None — missing, never 0 or 1 — and
    is counted in the returned ``RewardScores.timeouts`` (logged as ``reward/code_tests/timeouts``).
    ``wall_s``, ``cpu_s``, ``memory_mb`` and ``max_processes`` are per test run; ``workers`` bounds
    the programs run at once (default: the number of cores); ``sandbox`` is the isolation mode:
    ``"bwrap"`` (bubblewrap; an error naming the fix where it cannot run) or ``"unsafe_audit_only"``
    (see ``Sandbox``). GUESS: the limits' defaults (``sandbox.Limits``).
    """
    if column not in columns:
        available = ", ".join(sorted(columns)) or "none"
        raise KeyError(
            f"code_tests needs a column {column!r} of test cases in the task (columns here: {available}); "
            "add it to the dataset or set params.column"
        )
    tests = [_row_tests(index, value, column) for index, value in enumerate(columns[column])]
    limits = Limits(wall_s=wall_s, cpu_s=cpu_s, memory_mb=memory_mb, max_processes=max_processes)
    runner = Sandbox(limits, workers=workers, mode=sandbox)
    results = runner.run_many([extract_code(c) for c in completions], tests)
    return RewardScores(
        [_score(r, all_or_nothing) for r in results], timeouts=sum(r.fraction is None for r in results)
    )



def _row_tests(index: int, value, column: str) -> list[TestCase]:
    """The test cases of row ``index``; a ValueError names the row and the column."""
    try:
        cases = parse_tests(value)
    except ValueError as error:
        raise ValueError(f"code_tests: row {index} of column {column!r}: {error}") from None
    if not cases:
        raise ValueError(f"code_tests: row {index} has no test cases in column {column!r}")
    return cases


def _score(result: SandboxResult, all_or_nothing: bool) -> float | None:
    fraction = result.fraction
    if fraction is None or not all_or_nothing:
        return fraction
    return float(result.passed == result.total)
