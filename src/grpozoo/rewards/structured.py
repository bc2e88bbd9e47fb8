"""Structured-output reward: JSON that parses, follows a schema and carries the right content."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from grpozoo.registry import rewards

FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_MISSING = object()


def extract_json(text: str) -> tuple[bool, Any]:
    """``(True, value)`` for the JSON value in ``text``: the last fenced ```` ```json ```` block, else
    the whole text, else the JSON value that opens at the text's first ``{``/``[`` (prose around it
    is allowed); ``(False, None)`` if none."""
    candidates = [block.strip() for block in reversed(FENCE.findall(text))] + [text.strip()]
    for candidate in candidates:
        try:
            return True, json.loads(candidate)
        except ValueError:
            continue
    start = re.search(r"[\[{]", text)
    if start is None:
        return False, None
    try:  # the value opening at the first bracket; never an inner piece of a broken object
        return True, json.JSONDecoder().raw_decode(text, start.start())[0]
    except ValueError:
        return False, None


def schema_from_example(example: Any) -> dict[str, Any]:
    """A JSON schema that ``example`` satisfies exactly: its types, every key required, no other keys."""
    if isinstance(example, dict):
        return {
            "type": "object",
            "properties": {key: schema_from_example(value) for key, value in example.items()},
            "required": list(example),
            "additionalProperties": False,
        }
    if isinstance(example, list):
        return {"type": "array", "items": schema_from_example(example[0])} if example else {"type": "array"}
    for name in ("boolean", "null", "integer", "number", "string"):
        if _TYPES[name](example):
            return {"type": name}
    return {}


def schema_checks(value: Any, schema: dict[str, Any], penalize_extra: bool = True) -> tuple[int, int]:
    """``(passed, total)`` over the schema's checks on ``value``: its ``type`` and ``enum``, each
    ``required`` key present, each key allowed (with ``penalize_extra``, a key outside the listed
    ``properties`` fails unless ``additionalProperties`` is a schema or true), and the same, recursively,
    for each present property and array item. Keywords other than type, enum, required,
    properties, additionalProperties and items are not checked."""
    passed = total = 0
    expected = schema.get("type")
    if expected is not None:
        total += 1
        names = expected if isinstance(expected, list) else [expected]
        unknown = [n for n in names if n not in _TYPES]
        if unknown:
            raise ValueError(f"JSON schema type {unknown[0]!r} is not one of {', '.join(_TYPES)}")
        if not any(_TYPES[n](value) for n in names):
            return passed, total + len(schema.get("required", []))
        passed += 1
    if "enum" in schema:
        total += 1
        passed += value in schema["enum"]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            total += 1
            passed += key in value
        extra = schema.get("additionalProperties", not penalize_extra)
        for key, item in value.items():
            if key in properties:
                sub = schema_checks(item, properties[key], penalize_extra)
            elif isinstance(extra, dict):
                sub = schema_checks(item, extra, penalize_extra)
            elif "properties" in schema:
                sub = (int(bool(extra)), 1)
            else:  # a schema that lists no properties allows any key
                continue
            passed, total = passed + sub[0], total + sub[1]
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            sub = schema_checks(item, schema["items"], penalize_extra)
            passed, total = passed + sub[0], total + sub[1]
    return passed, total


def is_valid(value: Any, schema: dict[str, Any]) -> bool:
    """Whether ``value`` validates against ``schema``: with the ``jsonschema`` package when installed
    (the whole specification), else by ``schema_checks`` with JSON Schema's own rule for extra keys."""
    try:
        import jsonschema
    except ImportError:
        passed, total = schema_checks(value, schema, penalize_extra=False)
        return passed == total
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def leaves(value: Any, path: tuple = ()) -> dict[tuple, Any]:
    """``{path: leaf}`` for every scalar in a JSON value (an empty dict or list is a leaf)."""
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in leaves(item, (*path, key)).items()}
    if isinstance(value, list) and value:
        return {k: v for index, item in enumerate(value) for k, v in leaves(item, (*path, index)).items()}
    return {path: value}


def _lookup(value: Any, path: tuple) -> Any:
    for key in path:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
        else:
            return _MISSING
    return value


def _same_leaf(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()
    return a == b


def content_score(value: Any, gold: Any) -> float:
    """Share of the gold's leaves found with an equal value at the same path in ``value`` (strings
    compared case- and space-insensitively, numbers to a relative 1e-6)."""
    gold_leaves = leaves(gold)
    hits = sum(_same_leaf(_lookup(value, path), leaf) for path, leaf in gold_leaves.items())
    return hits / len(gold_leaves)


def _as_json(reward: str, what: str, raw: Any, index: int) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError as error:
        raise ValueError(
            f"reward {reward!r}: the {what} of sample {index} is not valid JSON ({error}): {raw[:80]!r}"
        ) from None


def json_reward_parts(
    completion: str, schema: dict[str, Any] | None, gold: Any = _MISSING, penalize_extra: bool = True
) -> dict[str, float]:
    """``{parse, schema, valid, content}`` for one completion, each in [0, 1]. Every part is 0 when
    the JSON does not parse; ``content`` is absent without a gold; the schema defaults to the one
    the gold satisfies exactly (``schema_from_example``)."""
    parsed, value = extract_json(completion)
    if schema is None:
        schema = schema_from_example(gold) if gold is not _MISSING else {}
    parts = {"parse": float(parsed)}
    passed, total = schema_checks(value, schema, penalize_extra) if parsed else (0, 1)
    parts["schema"] = passed / total if total else float(parsed)
    parts["valid"] = float(parsed and is_valid(value, schema))
    if gold is not _MISSING:
        parts["content"] = content_score(value, gold) if parsed else 0.0
    return parts


@rewards.register("json_structured")
def json_structured_reward(
    completions: list[str],
    prompts: list[str],
    json_schema: dict[str, Any] | str | None = None,
    schema_column: str = "schema",
    gold_column: str | None = "answer",
    parse_weight: float = 0.25,
    schema_weight: float = 0.25,
    content_weight: float = 0.25,
    valid_weight: float = 0.25,
    penalize_extra: bool = True,
    **columns: Any,
) -> list[float]:
    """RL-Struct hierarchical structured-output reward (Hu and Wu 2025, *RL-Struct: A Lightweight
    Reinforcement Learning Framework for Reliable Structured Output in LLMs*, arXiv:2512.00319).

    ``[B]``: ``(w_p·R_parse + w_s·R_schema + w_c·R_content + w_v·R_valid) / Σw`` in [0, 1]
    (``json_reward_parts``). ``R_parse``: the completion holds JSON (``extract_json``);
    ``R_schema``: share of the schema's checks passed — required keys present, types right, extra or
    hallucinated keys counted as failures; ``R_valid``: it validates (``is_valid``);
    ``R_content``: share of the gold's leaf values reproduced. An output that does not parse gets
    0 whatever its content; a perfect one gets 1.

    The schema is the ``json_schema`` parameter (dict or JSON text), else the row's ``schema_column``,
    else the one the gold satisfies exactly. The gold is the row's ``gold_column`` (JSON text or a
    JSON value); without one, set ``content_weight`` to 0 (or ``gold_column: null``).
    GUESS: equal weights, every later term gated on parsing only, and ``penalize_extra``.
    """
    size = len(completions)
    weights = {
        "parse": parse_weight,
        "schema": schema_weight,
        "content": content_weight,
        "valid": valid_weight,
    }
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"reward 'json_structured': weights must be >= 0 with a positive sum, got {weights}")
    fixed = (
        _as_json("json_structured", "json_schema parameter", json_schema, 0)
        if json_schema is not None
        else None
    )
    schemas: Sequence[Any] = columns.get(schema_column) or [None] * size
    golds: Sequence[Any] | None = columns.get(gold_column) if gold_column else None
    if golds is None and content_weight > 0:
        raise ValueError(
            f"reward 'json_structured' compares content with the {gold_column!r} column, which this task "
            f"lacks; its columns: {', '.join(sorted(columns)) or '(none)'}. Set params.gold_column to the "
            "column holding the expected JSON, or params.content_weight to 0"
        )
    if golds is None and fixed is None and all(s is None for s in schemas):
        raise ValueError(
            "reward 'json_structured' needs a JSON schema: params.json_schema, a 'schema' column "
            "(params.schema_column), or a gold column to infer one from"
        )
    out = []
    for index, completion in enumerate(completions):
        row_schema = (
            fixed if fixed is not None else _as_json("json_structured", "schema", schemas[index], index)
        )
        gold = _as_json("json_structured", "gold", golds[index], index) if golds is not None else _MISSING
        parts = json_reward_parts(completion, row_schema, gold, penalize_extra)
        total = sum(weights[name] * value for name, value in parts.items())
        out.append(total / sum(weights[name] for name in parts))
    return out
