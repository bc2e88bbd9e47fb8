"""Worked solutions for reasoning-gym tasks, built from the metadata each row carries.

reasoning-gym rows hold a question, a final answer and the numbers they were made from (the
expression of an arithmetic chain, the operands of a GCD, …), not a worked solution. For the tasks
below the metadata fixes the solution, so it is written out step by step: a first line with the
plan, one line per step, and a last line ``The answer is <the row's answer>``. A solution is kept
only when its own result equals the row's answer; otherwise (metadata of another form, a row whose
answer does not follow from its expression) the row has no solution and is not guided.

The solution becomes the row's ``solution`` column and its hints (see :mod:`grpozoo.tasks.hints`),
which the hint-guided recipes (Scaf-GRPO, GHPO, Guide-GRPO) read.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

Entry = dict[str, Any]


class Unsolvable(ValueError):
    """The row's metadata does not give a worked solution."""


def worked_solution(task: str, entry: Entry) -> str | None:
    """The worked solution of reasoning-gym ``task``'s ``entry`` (question, answer, metadata), or
    None when the task has no solver or the row's metadata does not give one."""
    solver = SOLVERS.get(task)
    if solver is None:
        return None
    try:
        return solver(entry)
    except (Unsolvable, ImportError, KeyError, TypeError, ValueError, SyntaxError, ZeroDivisionError,
            RecursionError):
        return None


def _finish(steps: list[str], value: Any, entry: Entry, shown: str | None = None) -> str:
    """The solution's lines ending with the row's answer, once ``value`` is checked to be it."""
    answer = str(entry["answer"]).strip()
    if str(value) != answer:
        raise Unsolvable(f"worked result {value} is not the row's answer {answer}")
    return "\n".join([*steps, f"The answer is {shown if shown is not None else answer}"])


# ---------------------------------------------------------------- arithmetic expressions

SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _operand(value: int) -> str:
    return f"({value})" if value < 0 else str(value)


def _multiplication(a: int, b: int) -> str:
    """``a * b = c``, worked by place value when both factors have several digits."""
    product = a * b
    if a >= 10 and b >= 10:
        digits = str(b)
        parts = [int(d) * 10 ** (len(digits) - 1 - i) for i, d in enumerate(digits) if d != "0"]
        if len(parts) > 1:
            split = " + ".join(f"{a} * {p}" for p in parts)
            partial = " + ".join(str(a * p) for p in parts)
            return f"{a} * {b} = {split} = {partial} = {product}"
    return f"{a} * {_operand(b)} = {product}"


def _evaluate(node: ast.AST, steps: list[str]) -> int:
    """The value of an integer expression, one line per operation in the order Python evaluates it
    (brackets, then multiplication and division, then addition and subtraction, left to right);
    ``/`` divides rounding down, as reasoning-gym's basic_arithmetic does."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        if isinstance(node.operand, ast.Constant):
            value = _evaluate(node.operand, steps)
            return -value if isinstance(node.op, ast.USub) else value
        inner = _evaluate(node.operand, steps)
        if isinstance(node.op, ast.UAdd):
            return inner
        steps.append(f"-({inner}) = {-inner}")
        return -inner
    if isinstance(node, ast.BinOp) and type(node.op) in SYMBOLS:
        a = _evaluate(node.left, steps)
        b = _evaluate(node.right, steps)
        if isinstance(node.op, ast.Add):
            steps.append(f"{a} + {_operand(b)} = {a + b}")
            return a + b
        if isinstance(node.op, ast.Sub):
            steps.append(f"{a} - {_operand(b)} = {a - b}")
            return a - b
        if isinstance(node.op, ast.Mult):
            steps.append(_multiplication(a, b))
            return a * b
        if b == 0:
            raise Unsolvable("division by zero")
        note = "" if a % b == 0 else " (rounded down to a whole number)"
        steps.append(f"{a} / {_operand(b)} = {a // b}{note}")
        return a // b
    raise Unsolvable(f"unsupported expression part {ast.dump(node)}")


def solve_expression(entry: Entry) -> str:
    """chain_sum, basic_arithmetic, products: the metadata's ``expression``, one operation a line."""
    expression = str(entry["metadata"]["expression"]).strip()
    tree = ast.parse(expression, mode="eval")
    operators = {type(n.op) for n in ast.walk(tree) if isinstance(n, ast.BinOp)}
    if operators <= {ast.Add, ast.Sub}:
        order = "brackets first, then from left to right" if "(" in expression else "from left to right"
        plan = f"Work out {expression} {order}, one number at a time."
    else:
        plan = (f"Work out {expression} one operation at a time: brackets first, then multiplication and "
                "division, then addition and subtraction, each from left to right.")
    steps = [plan]
    value = _evaluate(tree.body, steps)
    if len(steps) == 1:  # a lone number
        steps.append(f"{expression} = {value}")
    return _finish(steps, value, entry)


# ---------------------------------------------------------------- number theory


def _euclid(a: int, b: int, steps: list[str]) -> int:
    """gcd(a, b) by Euclid's algorithm, one division a line."""
    x, y = max(a, b), min(a, b)
    if y <= 0:
        raise Unsolvable("Euclid's algorithm needs positive numbers")
    while y:
        steps.append(f"{x} = {x // y} * {y} + {x % y}")
        x, y = y, x % y
    steps.append(f"gcd({a}, {b}) = {x}")
    return x


def solve_gcd(entry: Entry) -> str:
    numbers = [int(n) for n in entry["metadata"]["numbers"]]
    steps = ["Use Euclid's algorithm: divide the larger number by the smaller, then repeat with the "
             "smaller number and the remainder until the remainder is 0; the last divisor is the GCD."]
    value = numbers[0]
    for n in numbers[1:]:
        value = _euclid(value, n, steps)
    return _finish(steps, value, entry)


def solve_lcm(entry: Entry) -> str:
    numbers = [int(n) for n in entry["metadata"]["numbers"]]
    steps = ["lcm(a, b) = a * b / gcd(a, b); find each GCD with Euclid's algorithm."]
    value = numbers[0]
    for n in numbers[1:]:
        g = _euclid(value, n, steps)
        steps.append(f"lcm({value}, {n}) = {value} * {n} / {g} = {value * n // g}")
        value = value * n // g
    return _finish(steps, value, entry)


def solve_fraction_simplification(entry: Entry) -> str:
    meta = entry["metadata"]
    numerator, denominator = int(meta["numerator"]), int(meta["denominator"])
    steps = [f"Divide {numerator} and {denominator} by their greatest common divisor; find it with "
             "Euclid's algorithm."]
    g = _euclid(numerator, denominator, steps)
    top, bottom = numerator // g, denominator // g
    steps.append(f"{numerator} / {g} = {top} and {denominator} / {g} = {bottom}")
    if (top, bottom) != (int(meta["simplified_numerator"]), int(meta["simplified_denominator"])):
        raise Unsolvable("the simplified fraction is not the row's")
    return _finish(steps, entry["answer"], entry)


def solve_prime_factorization(entry: Entry) -> str:
    number = int(entry["metadata"]["number"])
    if number < 2:
        raise Unsolvable("no prime factorization below 2")
    steps = [f"Divide {number} by the smallest prime that divides it, and repeat with the quotient "
             "until it is prime."]
    factors, rest, p = [], number, 2
    while p * p <= rest:
        if rest % p == 0:
            steps.append(f"{rest} / {p} = {rest // p}")
            factors.append(p)
            rest //= p
        else:
            p += 1
    factors.append(rest)
    steps.append(f"{rest} is prime")
    if factors != sorted(int(f) for f in entry["metadata"]["factors"]):
        raise Unsolvable("the factors are not the row's")
    return _finish(steps, entry["answer"], entry)


def solve_count_bits(entry: Entry) -> str:
    number = int(entry["metadata"]["number"])
    binary = bin(number)[2:]
    steps = [f"Write {number} in binary and count its 1 digits.", f"{number} in binary is {binary}",
             f"It has {binary.count('1')} ones"]
    return _finish(steps, binary.count("1"), entry)


# ---------------------------------------------------------------- word problems


def solve_leg_counting(entry: Entry) -> str:
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    animals = entry["metadata"]["animals"]
    steps = ["Multiply each animal's count by its number of legs, then add the results."]
    totals = []
    for animal, count in animals.items():
        legs = ANIMALS[animal]
        steps.append(f"{animal}: {count} * {legs} legs = {count * legs}")
        totals.append(count * legs)
    steps.append(f"{' + '.join(map(str, totals))} = {sum(totals)}")
    return _finish(steps, sum(totals), entry)


SOLVERS: dict[str, Callable[[Entry], str]] = {
    "chain_sum": solve_expression,
    "basic_arithmetic": solve_expression,
    "products": solve_expression,
    "gcd": solve_gcd,
    "lcm": solve_lcm,
    "fraction_simplification": solve_fraction_simplification,
    "prime_factorization": solve_prime_factorization,
    "count_bits": solve_count_bits,
    "leg_counting": solve_leg_counting,
}


def how_to_give_solutions(rows: list[dict[str, Any]], hints: bool = False) -> str:
    """The end of an error for a task whose ``rows`` carry no worked solution: their columns, and
    the ways to give one (``hints`` too, where hints serve as well)."""
    columns = sorted({key for row in rows[:50] for key in row})
    or_hints = " or a 'hints' column" if hints else ""
    return (
        f"(its columns: {', '.join(columns) or 'none'}). Give a dataset with a 'solution' column (task.columns "
        f"maps yours to it, e.g. --set task.columns.solution=reasoning; task.reference_format=gsm8k or boxed "
        f"takes it from a worked reference answer){or_hints}, or use a "
        f"reasoning-gym task with worked solutions ({', '.join(sorted(SOLVERS))})"
    )
