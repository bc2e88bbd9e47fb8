"""Test cases for the code sandbox: the ``TestCase`` type, reading a dataset row's tests in their
accepted forms (``parse_tests``) and the stdout comparison of stdin/stdout tests (``same_output``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TestCase:
    """One test: Python ``code`` run after the program (assert statements), or an ``stdin`` fed to
    the program whose stdout must equal ``expected`` (line by line, trailing spaces and trailing
    blank lines ignored)."""

    __test__ = False  # not a pytest class

    code: str | None = None
    stdin: str | None = None
    expected: str | None = None

    def __post_init__(self):
        if (self.code is None) == (self.expected is None):
            raise ValueError(
                "a test case is either code (assert statements) or an expected output (with an optional stdin)"
            )


def parse_tests(value: Any) -> list[TestCase]:
    """The test cases of one dataset row, in any of these forms:

    - a list of strings: each is Python code run after the program (``assert f(2) == 4``);
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
