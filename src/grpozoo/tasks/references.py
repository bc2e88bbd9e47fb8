"""A dataset's rows in grpozoo's terms: its own column names mapped to grpozoo's (``task.columns``),
and its reference answer split into the final answer that correctness compares against and the
worked solution before it (``task.reference_format``).

Formats of the reference answer:

- ``auto``: the answer column as it is.
- ``gsm8k``: worked text, then ``#### 42``: the final answer follows the last ``####``; the text
  before it, without GSM8K's calculator annotations (``<<48/2=24>>``), is the solution.
- ``boxed``: the content of the last ``\\boxed{...}`` (nested braces balanced) is the final answer;
  the whole reference is the solution when it holds more than the box.
- ``last_line``: the last non-empty line is the final answer (a leading ``Answer:``, ``The answer
  is`` label dropped); the lines before it are the solution.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from grpozoo.errors import DataError
from grpozoo.registry import did_you_mean
from grpozoo.rewards.extraction import last_boxed
from grpozoo.tasks.hints import attach_hints

ROLE_COLUMNS = ("prompt", "messages", "answer", "hints", "solution")
CALCULATOR = re.compile(r"<<[^<>]*>>")
ANSWER_LABEL = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is\b|[:=])\s*", re.IGNORECASE)
# column names datasets commonly use for the question and the reference answer, for suggestions
QUESTION_NAMES = ("question", "problem", "query", "input", "instruction", "text")
ANSWER_NAMES = ("final_answer", "answer", "solution", "output", "target", "label", "response")

Parsed = tuple[str, str]  # (final answer, worked solution; "" when there is none)


def parse_gsm8k(reference: str) -> Parsed:
    """The final answer after the last ``####`` and the worked text before it."""
    head, marker, tail = reference.rpartition("####")
    if not marker:
        raise ValueError("has no '####' marker before its final answer")
    answer = tail.strip()
    if not answer:
        raise ValueError("has nothing after its last '####'")
    return answer, CALCULATOR.sub("", head).strip()


def parse_boxed(reference: str) -> Parsed:
    """The content of the last ``\\boxed{...}``, and the reference as the solution."""
    answer = last_boxed(reference)
    if answer is None:
        raise ValueError("has no complete \\boxed{...} (none, or its braces do not close)")
    if not answer:
        raise ValueError("has an empty \\boxed{}")
    outside = reference.replace(f"\\boxed{{{answer}}}", "", 1).strip()
    return answer, reference.strip() if outside else ""


def parse_last_line(reference: str) -> Parsed:
    """The last non-empty line (without an ``Answer:`` label), and the lines before it."""
    lines = [line.rstrip() for line in reference.splitlines() if line.strip()]
    if not lines:
        raise ValueError("is empty")
    answer = ANSWER_LABEL.sub("", lines[-1].strip()).strip()
    if not answer:
        raise ValueError(f"ends with the line {lines[-1].strip()!r}, which holds no answer")
    return answer, "\n".join(lines[:-1]).strip()


PARSERS = {"gsm8k": parse_gsm8k, "boxed": parse_boxed, "last_line": parse_last_line}


def parse_reference(reference: str, reference_format: str) -> Parsed:
    """(final answer, worked solution) of a reference answer written in ``reference_format``;
    ``ValueError`` saying what the reference lacks when it is not written that way."""
    if reference_format == "auto":
        return reference, ""
    if reference_format not in PARSERS:
        raise ValueError(f"reference_format {reference_format!r} is not one of auto, {', '.join(PARSERS)}")
    return PARSERS[reference_format](reference)


def map_columns(rows: list[dict[str, Any]], columns: dict[str, str], available: list[str],
                source: str) -> list[dict[str, Any]]:
    """Rows with the dataset's columns renamed to grpozoo's by ``columns`` (grpozoo name -> the
    dataset's column); a column mapped from is dropped unless it is itself one of the targets."""
    for target, column in columns.items():
        if column not in available:
            raise DataError(
                f"{source}: task.columns.{target} names the column {column!r}, which the dataset does not "
                f"have.{did_you_mean(column, available)} Its columns: {', '.join(available)}. Set "
                f"task.columns.{target} to one of them, e.g. --set task.columns.{target}="
                f"{_suggest(available, QUESTION_NAMES if target in ('prompt', 'messages') else ANSWER_NAMES, column)}"
            )
    if not columns:
        return rows
    dropped = set(columns.values()) - set(columns)
    out = []
    for row in rows:
        mapped = {key: value for key, value in row.items() if key not in dropped}
        mapped.update({target: row[column] for target, column in columns.items()})
        out.append(mapped)
    return out


def check_columns(available: list[str], source: str) -> None:
    """A dataset needs a ``prompt`` or ``messages`` column and an ``answer`` column (after
    ``task.columns``); say which is missing, which columns there are, and how to map one."""
    if "prompt" not in available and "messages" not in available:
        raise DataError(
            f"{source} has no 'prompt' (text) or 'messages' (chat) column; its columns: {', '.join(available)}. "
            f"Map the question's column with task.columns, e.g. --set task.columns.prompt="
            f"{_suggest(available, QUESTION_NAMES)}"
        )
    if "answer" not in available:
        raise DataError(
            f"{source} has no 'answer' column; its columns: {', '.join(available)}. Map the reference "
            f"answer's column with task.columns, e.g. --set task.columns.answer={_suggest(available, ANSWER_NAMES)}"
            " (and task.reference_format=gsm8k, boxed or last_line when it holds a worked solution)"
        )


def check_row(row: dict[str, Any], index: int, source: str) -> None:
    """A row needs a non-empty ``prompt`` or ``messages`` and an ``answer``; say which row lacks it."""
    if not row.get("prompt") and not row.get("messages"):
        raise DataError(
            f"{source}: row {index} has no 'prompt' (text) or 'messages' (chat) column value; "
            f"its columns: {', '.join(row)}"
        )
    if row.get("answer") is None or str(row["answer"]).strip() == "":
        raise DataError(f"{source}: row {index} has no 'answer' value; its columns: {', '.join(row)}")


def prepare_rows(rows: list[dict[str, Any]], cfg, source: str) -> list[dict[str, Any]]:
    """A dataset's rows as grpozoo reads them: columns mapped (``cfg.columns``), each row checked,
    its reference answer parsed (``cfg.reference_format``: the final answer becomes ``answer``, the
    worked text ``solution`` unless the row has one) and, where a row has a solution but no hints,
    hints derived from it (:func:`grpozoo.tasks.hints.hints_from_solution`)."""
    if not rows:
        raise DataError(f"{source} has no rows")
    rows = map_columns(rows, cfg.columns, list(rows[0]), source)
    check_columns(list(rows[0]), source)
    out = []
    for index, row in enumerate(rows):
        check_row(row, index, source)
        reference = str(row["answer"])
        try:
            answer, solution = parse_reference(reference, cfg.reference_format)
        except ValueError as error:
            shown = reference if len(reference) <= 120 else reference[:60] + " … " + reference[-50:]
            raise DataError(
                f"{source}: row {index}'s answer {shown!r} {error} (task.reference_format="
                f"{cfg.reference_format}); fix the row, or choose the task.reference_format its answers are "
                f"written in (auto takes the answer column as it is)"
            ) from None
        row = dict(row)
        if cfg.reference_format != "auto":
            row["answer"] = answer
            if solution and not _text(row.get("solution")):
                row["solution"] = solution
        out.append(attach_hints(row))
    return out


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _suggest(available: list[str], likely: tuple[str, ...], typed: str | None = None) -> str:
    """A column of the dataset that probably holds what is asked for: the closest to a mistyped
    name, else one with a usual name, else a placeholder."""
    close = difflib.get_close_matches(typed, available, n=1) if typed else []
    if close:
        return close[0]
    lowered = {column.lower(): column for column in available}
    return next((lowered[name] for name in likely if name in lowered), "<column>")
