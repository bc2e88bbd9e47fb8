"""Test cases for the code sandbox: the ``TestCase`` type, reading a dataset row's tests in their
accepted forms (``parse_tests``), and the verdicts, all computed in the trainer's process: the
stdout comparison of stdin/stdout tests (``same_output``) and the checks of assert tests
(``Probe``).

An assert test never runs as a whole in the program's process, so that nothing the program does
there (patching ``builtins.exec``, reading frames, printing markers, exiting early) can turn a
wrong answer into a pass: the expected values stay here. Its code is split, with ``ast``, into
top-level statements: every ``assert`` becomes a ``Probe``, every other statement is setup run in
the child after the program (imports, helper values), in order. For a probe the child evaluates
one expression ``X`` and sends back its value, encoded as plain data (None, bools, ints, floats,
complex numbers, strings, bytes, and lists, tuples, sets and dicts of them; any other object, such
as one with a custom ``__eq__``, cannot be read back and fails the probe); the comparison happens
here. Accepted asserts (an optional message after a comma is never evaluated):

- ``assert X op L`` or ``assert L op X`` with ``op`` one of ``== != < <= > >= in not in is is not``
  and ``L`` a literal (``ast.literal_eval``: numbers, also negative, strings, bytes, tuples, lists,
  dicts, sets, None, True, False); ``L`` never reaches the child;
- ``assert math.isclose(X, L, rel_tol=..., abs_tol=...)`` (``isclose`` alone too; literal
  tolerances), checked here with ``math.isclose``;
- ``assert X`` (passes when the value is truthy) and ``assert not X`` (falsy), ``X`` containing no
  comparison; a program can produce a truthy value without knowing anything, so these are only as
  strong as the test makes them;
- ``assert A and B``: each of ``A`` and ``B`` in one of these forms; ``assert not (X op L)``.

Refused when the tests are read, with an error naming the test: an ``assert`` that is not at the
top level (inside a loop, function or ``if``, such as HumanEval's ``check(candidate)``), a
comparison with no literal side (``assert f(2) == f(1) + 3``), a chain (``0 < f(x) < 3``), a
comparison inside a truth test (``assert all(f(x) == 1 for x in xs)``), and a test with no
``assert`` (it would pass by merely running). Such a comparison would run in the program's
process, where an object whose ``__eq__`` is always true passes it; rewrite the test with literal
expected values. An expression that itself brings the expected value into the child, such as
``abs(f(x) - 0.5) < 1e-6``, is accepted but weaker than ``math.isclose(f(x), 0.5, abs_tol=1e-6)``.
"""

from __future__ import annotations

import ast
import json
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

_ACCEPTED = (
    "accepted: top-level `assert X == L` (also != < <= > >= in, not in, is, is not; L on either side) with "
    "L a literal such as 5, -1.5, 'a', [1, 2], {'k': (1,)} or None, `assert math.isclose(X, L)`, `assert X` "
    "and `assert not X` with no comparison in X, and `and` of these, with any other top-level statements "
    "as setup"
)
_OPERATORS: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.In: ("in", lambda a, b: a in b),
    ast.NotIn: ("not in", lambda a, b: a not in b),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
}
_SYMBOLS = {symbol: function for symbol, function in _OPERATORS.values()}


@dataclass(frozen=True)
class Unreadable:
    """A probe's value that the child could not encode (its reason), or that arrived garbled."""

    reason: str


@dataclass(frozen=True)
class Probe:
    """One check of a top-level assert: the child evaluates ``expression`` and sends its value;
    ``failure`` checks it here against the literal, which never leaves the trainer's process.
    ``op``: a comparison operator, ``"isclose"`` (``math.isclose`` with ``tolerances``) or None for
    a truth test; ``negated``: under ``assert not``."""

    source: str
    expression: str
    op: str | None = None
    literal: Any = None
    literal_left: bool = False
    negated: bool = False
    tolerances: tuple[tuple[str, float], ...] = ()  # of ``math.isclose``

    def failure(self, value: Any) -> str | None:
        """None when ``value`` (decoded from the child) passes, else why it fails."""
        if isinstance(value, Unreadable):
            return f"AssertionError: {self.source}: the value of {self.expression} {value.reason}"
        try:
            if self.op is None:
                holds = bool(value)
            elif self.op == "isclose":
                holds = math.isclose(value, self.literal, **dict(self.tolerances))
            else:
                left, right = (self.literal, value) if self.literal_left else (value, self.literal)
                holds = bool(_SYMBOLS[self.op](left, right))
        except TypeError as error:  # e.g. an ordering between a str and an int, as in Python
            return f"TypeError: {self.source}: {error} (the value of {self.expression} is {_short(value)})"
        if holds != self.negated:
            return None
        return f"AssertionError: {self.source} (the value of {self.expression} is {_short(value)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


@dataclass(frozen=True)
class TestCase:
    """One test: Python ``code`` (assert statements and setup, split into ``steps``: see the module
    docstring), or an ``stdin`` fed to the program whose stdout must equal ``expected`` (line by
    line, trailing spaces and trailing blank lines ignored)."""

    __test__ = False  # not a pytest class

    code: str | None = None
    stdin: str | None = None
    expected: str | None = None
    # each step: setup source (run in the child) or a Probe
    steps: tuple[str | Probe, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self):
        if (self.code is None) == (self.expected is None):
            raise ValueError(
                "a test case is either code (assert statements) or an expected output (with an optional stdin)"
            )
        if self.code is not None:
            object.__setattr__(self, "steps", split_assert_test(self.code))

    @property
    def probes(self) -> list[Probe]:
        return [step for step in self.steps if isinstance(step, Probe)]


def split_assert_test(code: str) -> tuple[str | Probe, ...]:
    """An assert test's top-level statements in order: setup source for the child, or a ``Probe``
    for each ``assert``. Raises ValueError, naming the test and the accepted forms, for any other
    use of ``assert`` (see the module docstring)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        raise ValueError(f"test {_name(code)}: not valid Python ({error.msg}, line {error.lineno})") from None
    steps: list[str | Probe] = []
    for statement in tree.body:
        if isinstance(statement, ast.Assert):
            steps.extend(_probes(statement.test, code))
            continue
        if any(isinstance(node, ast.Assert) for node in ast.walk(statement)):
            raise ValueError(
                f"test {_name(code)}: an assert inside a block (line {statement.lineno}) would run in the "
                f"program's process, where the program could disable it; {_ACCEPTED}"
            )
        steps.append(ast.unparse(statement))
    if not any(isinstance(step, Probe) for step in steps):
        raise ValueError(
            f"test {_name(code)}: has no top-level assert, so nothing would be checked; {_ACCEPTED}"
        )
    return tuple(steps)


def _probes(test: ast.expr, code: str, negated: bool = False) -> list[Probe]:
    """The probes of one assert's condition ``test`` (``negated`` under an ``assert not``)."""
    source = ast.unparse(ast.Assert(test=ast.UnaryOp(ast.Not(), test) if negated else test))
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _probes(test.operand, code, not negated)
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) and not negated:
        return [probe for value in test.values for probe in _probes(value, code)]
    if isinstance(test, ast.Compare):
        return [_comparison(test, source, code, negated)]
    closeness = _isclose(test)
    if closeness is not None:
        expression, literal, tolerances = closeness
        return [Probe(source, expression, "isclose", literal, negated=negated, tolerances=tolerances)]
    if any(isinstance(node, ast.Compare) for node in ast.walk(test)):
        raise ValueError(
            f"test {_name(code)}: `{source}` compares inside an expression, which would run in the program's "
            f"process; {_ACCEPTED}"
        )
    return [Probe(source, ast.unparse(test), negated=negated)]


def _comparison(test: ast.Compare, source: str, code: str, negated: bool) -> Probe:
    if len(test.ops) != 1:
        raise ValueError(
            f"test {_name(code)}: `{source}` chains comparisons; split it into asserts; {_ACCEPTED}"
        )
    symbol = _OPERATORS[type(test.ops[0])][0]
    left, right = test.left, test.comparators[0]
    for literal_side, other, literal_left in ((right, left, False), (left, right, True)):
        found, literal = _literal(literal_side)
        if not found:
            continue
        if symbol in ("is", "is not") and not any(literal is constant for constant in (None, True, False)):
            raise ValueError(f"test {_name(code)}: `{source}` uses `{symbol}` with {literal!r}; use == or !=")
        return Probe(source, ast.unparse(other), symbol, literal, literal_left, negated)
    raise ValueError(
        f"test {_name(code)}: `{source}` compares with no literal side, so the expected value would be "
        f"computed in the program's process; {_ACCEPTED}"
    )


def _isclose(test: ast.expr) -> tuple[str, float, tuple[tuple[str, float], ...]] | None:
    """``math.isclose(X, L, rel_tol=..., abs_tol=...)`` (L and the tolerances literals, X on either
    side) as (X, L, tolerances), or None for any other expression."""
    if not (
        isinstance(test, ast.Call)
        and ast.unparse(test.func) in ("math.isclose", "isclose")
        and len(test.args) == 2
        and all(keyword.arg in ("rel_tol", "abs_tol") for keyword in test.keywords)
    ):
        return None
    tolerances = [(keyword.arg, _literal(keyword.value)) for keyword in test.keywords]
    if not all(found for _, (found, _) in tolerances):
        return None
    options = tuple((str(name), value) for name, (_, value) in tolerances)
    for literal_side, other in ((test.args[1], test.args[0]), (test.args[0], test.args[1])):
        found, literal = _literal(literal_side)
        if found:
            return ast.unparse(other), literal, options
    return None


def _literal(node: ast.expr) -> tuple[bool, Any]:
    """(True, its value) when ``node`` is a literal (``ast.literal_eval``), else (False, None)."""
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _name(code: str) -> str:
    text = " ".join(code.split())
    return repr(text if len(text) <= 80 else text[:77] + "...")


def parse_tests(value: Any) -> list[TestCase]:
    """The test cases of one dataset row, in any of these forms:

    - a list of strings: each is Python code checked after the program (``assert f(2) == 4``), in
      the forms the module docstring lists (others raise ValueError here);
    - a list of ``{"input": ..., "output": ...}`` dicts: stdin and the expected stdout;
    - ``{"inputs": [...], "outputs": [...]}`` (the APPS / TACO layout);
    - a JSON string holding any of these, or a single string of code (one test).
    """
    if isinstance(value, TestCase):
        return [value]
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in "[{":
            try:
                return parse_tests(json.loads(stripped))
            except json.JSONDecodeError:
                pass
        return [TestCase(code=value)]
    if isinstance(value, dict):
        if "inputs" in value and "outputs" in value:
            inputs, outputs = value["inputs"], value["outputs"]
            if len(inputs) != len(outputs):
                raise ValueError(f"tests: {len(inputs)} inputs but {len(outputs)} outputs")
            return [_stdio(i, o) for i, o in zip(inputs, outputs, strict=True)]
        return [_stdio_case(value)]
    if isinstance(value, Sequence):
        out: list[TestCase] = []
        for item in value:
            if isinstance(item, TestCase):
                out.append(item)
            elif isinstance(item, str):
                out.append(TestCase(code=item))
            elif isinstance(item, dict):
                out.append(_stdio_case(item))
            else:
                raise ValueError(f"tests: a test case must be a string or an input/output dict, got {item!r}")
        return out
    raise ValueError(
        f"tests: cannot read {type(value).__name__} {value!r} as test cases; use a list of assert "
        "strings or of {'input': ..., 'output': ...} dicts"
    )


def _stdio_case(item: dict) -> TestCase:
    if "output" not in item:
        raise ValueError(f"tests: an input/output test needs an 'output' key, got keys {sorted(item)}")
    return _stdio(item.get("input", ""), item["output"])


def _stdio(stdin: Any, expected: Any) -> TestCase:
    return TestCase(stdin=_text(stdin), expected=_text(expected))


def _text(value: Any) -> str:
    """A test's input or output: a list is its lines."""
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def same_output(actual: str, expected: str) -> bool:
    """Line-by-line equality ignoring trailing whitespace on each line and trailing blank lines."""

    def lines(text: str) -> list[str]:
        out = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
        while out and not out[-1]:
            out.pop()
        return out

    return lines(actual) == lines(expected)


def decode_value(text: str) -> Any:
    """A probe's value as the child's bootstrap encoded it (``sandbox_child._encode``): JSON where
    floats, tuples, sets, dicts and the like are tagged objects. Anything else is ``Unreadable``."""
    try:
        return _decode(json.loads(text))
    except (ValueError, TypeError, KeyError, RecursionError):
        return Unreadable("arrived garbled")


def _decode(item: Any) -> Any:
    if item is None or isinstance(item, bool | int | str):
        return item
    if isinstance(item, list):
        return [_decode(element) for element in item]
    if not isinstance(item, dict) or len(item) != 1:
        raise ValueError(f"not an encoded value: {item!r}")
    ((tag, content),) = item.items()
    if tag == "float":
        return float.fromhex(content)
    if tag == "complex":
        return complex(float.fromhex(content[0]), float.fromhex(content[1]))
    if tag == "bytes":
        return bytes.fromhex(content)
    if tag == "tuple":
        return tuple(_decode(element) for element in content)
    if tag == "set":
        return {_decode(element) for element in content}
    if tag == "frozenset":
        return frozenset(_decode(element) for element in content)
    if tag == "dict":
        return {_decode(key): _decode(value) for key, value in content}
    if tag == "unencodable" and isinstance(content, str):
        return Unreadable(content)
    raise ValueError(f"unknown tag {tag!r}")
