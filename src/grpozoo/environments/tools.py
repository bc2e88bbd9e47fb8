"""Built-in tools and the environment that runs them.

A model calls a tool by writing, in its turn, a fenced block whose info string names the tool
(```` ```python ```` … ```` ``` ````, ```` ```calculator ```` … ```` ``` ````) or, in the syntax of
chat templates that have one, ``<tool_call>{"name": "python", "arguments": {"code": "…"}}</tool_call>``;
it then ends its turn. The first call of a turn runs; its output comes back as a ``tool`` message
and the model takes another turn. A turn without a call is the model's answer and ends the episode.

* ``python`` runs the code in grpozoo's code sandbox (:class:`~grpozoo.rewards.sandbox.Sandbox`:
  no network, no files of this machine, time and memory limits) and returns its stdout, or its
  error's last lines. Running past the time limit ends the episode (``tool_timeout``), as does a
  program killed for memory or by a signal (``tool_crash``): there is no output to give back.
* ``calculator`` evaluates one arithmetic expression (numbers, ``+ - * / // % **`` and
  parentheses), without ``eval``.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from grpozoo.environments import ANSWERED, TOOL_CRASH, TOOL_TIMEOUT, Reply

TOOLS = ("python", "calculator")
# what a task's system prompt can tell the model (the tool-use recipe's does)
INSTRUCTIONS = {
    "python": "To compute, write Python in a block like\n```python\nprint(123 * 456)\n```\nand stop; "
              "its output comes back to you. Then give the answer.",
    "calculator": "To compute, write one expression in a block like\n```calculator\n123 * 456\n```\nand "
                  "stop; its value comes back to you. Then give the answer.",
}
MAX_OUTPUT_CHARS = 1000  # of a tool's output given back to the model

_FENCED = re.compile(r"```([A-Za-z_]\w*)[ \t]*\n(.*?)```", re.DOTALL)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def parse_tool_call(turn: str, tools: tuple[str, ...] | list[str]) -> tuple[str, str] | None:
    """The first call in ``turn`` of one of ``tools``: ``(tool, input)``, or None. A tagged call's
    JSON ``arguments`` give the input as ``code``/``expression``/``input``, or as a plain string; a
    tagged call that is not valid JSON is no call."""
    calls: list[tuple[int, str, str]] = []
    for match in _FENCED.finditer(turn):
        if match.group(1) in tools:
            calls.append((match.start(), match.group(1), match.group(2)))
    for match in _TAGGED.finditer(turn):
        try:
            call = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        if not isinstance(call, dict) or call.get("name") not in tools:
            continue
        arguments = call.get("arguments", "")
        if isinstance(arguments, dict):
            arguments = next((arguments[k] for k in ("code", "expression", "input") if k in arguments), "")
        if isinstance(arguments, str):
            calls.append((match.start(), call["name"], arguments))
    if not calls:
        return None
    _, tool, text = min(calls)
    return tool, text


_BINARY: dict[type, Callable[[Any, Any], Any]] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_DIGITS = 1000  # of an integer the calculator computes (a power could otherwise take minutes)


def calculate(expression: str) -> str:
    """The value of an arithmetic ``expression``, or ``error: …``; never evaluates anything else."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        value = _value(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError) as error:
        return f"error: {error}"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


def _value(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1 and abs(left) > 1:
            # digits of the result: right · log10|left|
            if abs(right) * math.log10(abs(left)) > MAX_DIGITS:
                raise ValueError(f"the result would have more than {MAX_DIGITS} digits")
        return _BINARY[type(node.op)](left, right)
    raise ValueError(f"only numbers, + - * / // % ** and parentheses are allowed, not {type(node).__name__}")


class ToolEnvironment:
    """Runs the model's tool calls (``tools``: names from :data:`TOOLS`); the python tool in a
    sandbox with ``timeout_s`` of wall and CPU time and ``memory_mb`` of memory per call. Reward
    parts: ``tool_calls`` (1 per call run)."""

    def __init__(self, tools: list[str] | tuple[str, ...], timeout_s: float = 5.0, memory_mb: int = 512,
                 sandbox=None):
        unknown = [t for t in tools if t not in TOOLS]
        if unknown or not tools:
            raise ValueError(f"rollout.tools={list(tools)}: choose among {', '.join(TOOLS)}")
        self.tools = tuple(tools)
        self.sandbox = sandbox
        if sandbox is None and "python" in self.tools:
            from grpozoo.rewards.sandbox import Limits, Sandbox

            self.sandbox = Sandbox(Limits(wall_s=timeout_s, cpu_s=max(1, math.ceil(timeout_s)), memory_mb=memory_mb),
                                   workers=1)

    def reset(self, row: dict[str, Any]) -> None:
        pass  # the tools keep no state between calls

    def step(self, turn: str) -> Reply:
        call = parse_tool_call(turn, self.tools)
        if call is None:
            return Reply(None, ANSWERED)
        tool, text = call
        parts = {"tool_calls": 1.0}
        if tool == "calculator":
            return Reply({"role": "tool", "content": calculate(text)}, parts=parts)
        run = self.sandbox.execute(text)
        if run.status == "timeout":
            return Reply(None, TOOL_TIMEOUT, parts)
        if run.status in ("memory", "killed"):
            return Reply(None, TOOL_CRASH, parts)
        output = run.stdout if run.status == "ok" else run.stdout + _last_lines(run.stderr, 3)
        output = output.strip() or "(no output)"
        if len(output) > MAX_OUTPUT_CHARS:
            output = output[:MAX_OUTPUT_CHARS] + " …(cut)"
        return Reply({"role": "tool", "content": output}, parts=parts)


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.strip().splitlines()[-count:])
