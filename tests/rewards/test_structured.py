"""RL-Struct JSON reward: parse, schema, validity and content parts."""

import json

import pytest

from grpozoo.registry import rewards
from grpozoo.rewards.structured import (
    content_score,
    extract_json,
    is_valid,
    json_reward_parts,
    json_structured_reward,
    leaves,
    schema_checks,
    schema_from_example,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age"],
}
GOLD = {"name": "Ada", "age": 36, "tags": ["math"]}


def _reward(completions, **params):
    size = len(completions)
    params.setdefault("json_schema", SCHEMA)
    return json_structured_reward(completions, [""] * size, answer=[json.dumps(GOLD)] * size, **params)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Here you go:\n```json\n{"a": 2}\n```\nDone.', {"a": 2}),
        ("```\n[1, 2]\n```", [1, 2]),
        ('The object is {"a": {"b": 3}} as asked.', {"a": {"b": 3}}),
        ("no json {here", None),
        ("", None),
    ],
)
def test_extract_json(text, expected):
    ok, value = extract_json(text)
    assert ok == (expected is not None)
    assert value == expected


def test_perfect_output_gets_the_max_a30():
    assert _reward([json.dumps(GOLD)]) == [1.0]


def test_unparseable_json_gets_the_minimum_whatever_its_content_a30_b53():
    broken = '{"name": "Ada", "age": 36, "tags": ["math"]'  # the right content, one brace short
    assert _reward([broken, "nothing at all"]) == [0.0, 0.0]
    parts = json_reward_parts(broken, SCHEMA, GOLD)
    assert parts == {"parse": 0.0, "schema": 0.0, "valid": 0.0, "content": 0.0}


def test_extra_keys_lower_the_schema_part_a30():
    clean = json_reward_parts('{"name": "Ada", "age": 36}', SCHEMA, GOLD)
    extra = json_reward_parts('{"name": "Ada", "age": 36, "ssn": "123"}', SCHEMA, GOLD)
    assert extra["schema"] < clean["schema"]
    # checks by hand: type, 2 required, name type, age type (5/5) vs the same plus a failed extra key (5/6)
    assert clean["schema"] == 1.0 and extra["schema"] == pytest.approx(5 / 6)
    # JSON Schema itself allows additional properties unless told otherwise
    assert extra["valid"] == 1.0


def test_adding_a_required_key_raises_the_schema_part_b53():
    missing = json_reward_parts('{"name": "Ada"}', SCHEMA, GOLD)
    complete = json_reward_parts('{"name": "Ada", "age": 36}', SCHEMA, GOLD)
    # type + 1 of 2 required + name type = 3/4, then 5/5
    assert missing["schema"] == pytest.approx(3 / 4) and complete["schema"] == 1.0
    assert missing["valid"] == 0.0 and complete["valid"] == 1.0


def test_reward_by_hand():
    # parse 1, schema 5/6 (an extra key), valid 1, content: name and age right, tags missing = 2/3
    out = _reward(['{"name": "ada ", "age": 36.0, "extra": 1}'])
    assert out == pytest.approx([(1 + 5 / 6 + 1 + 2 / 3) / 4])


def test_wrong_types_fail_their_checks():
    passed, total = schema_checks({"name": 7, "age": "x"}, SCHEMA)
    assert (passed, total) == (3, 5)
    assert schema_checks([1], SCHEMA) == (0, 3)  # not an object: its required keys count as failed too


def test_schema_from_a_column_and_inferred_from_the_gold():
    row_schema = json.dumps({"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]})
    out = json_structured_reward(
        ['{"x": 1.5}'], [""], schema=[row_schema], gold_column=None, content_weight=0
    )
    assert out == [1.0]
    inferred = schema_from_example(GOLD)
    assert inferred["required"] == ["name", "age", "tags"] and inferred["additionalProperties"] is False
    out = json_structured_reward(
        ['{"name": "Ada", "age": 36, "tags": ["math"], "x": 0}'], [""], answer=[GOLD]
    )
    assert out[0] < 1.0  # the inferred schema forbids the extra key


def test_schema_parameter_overrides_the_column():
    strict = {"type": "object", "properties": {"y": {"type": "string"}}, "required": ["y"]}
    out = json_structured_reward(
        ['{"y": "ok"}'], [""], json_schema=json.dumps(strict), gold_column=None, content_weight=0
    )
    assert out == [1.0]


def test_content_score_and_leaves():
    assert leaves({"a": {"b": 1, "c": [2, 3]}, "d": []}) == {
        ("a", "b"): 1,
        ("a", "c", 0): 2,
        ("a", "c", 1): 3,
        ("d",): [],
    }
    assert content_score({"a": {"b": 1, "c": [2, 4]}}, {"a": {"b": 1, "c": [2, 3]}}) == pytest.approx(2 / 3)
    assert content_score({"flag": 1}, {"flag": True}) == 0.0  # true is not 1
    assert content_score({"s": "  Hello   World"}, {"s": "hello world"}) == 1.0


def test_small_validator_agrees_with_json_schema_rules():
    assert is_valid({"name": "a", "age": 3}, SCHEMA)
    assert not is_valid({"name": "a"}, SCHEMA)
    assert not is_valid({"name": "a", "age": 3, "tags": [1]}, SCHEMA)
    assert is_valid({"k": 1}, {"type": "object"})  # no properties listed: any key is allowed
    assert is_valid(3.0, {"type": "integer"}) and not is_valid(True, {"type": "integer"})
    assert is_valid("b", {"enum": ["a", "b"]}) and not is_valid("c", {"enum": ["a", "b"]})


def test_clear_errors():
    with pytest.raises(ValueError, match="compares content with the 'answer' column"):
        json_structured_reward(['{"a": 1}'], [""], json_schema=SCHEMA)
    with pytest.raises(ValueError, match="gold of sample 0 is not valid JSON"):
        json_structured_reward(['{"a": 1}'], [""], answer=["not json"])
    with pytest.raises(ValueError, match="needs a JSON schema"):
        json_structured_reward(['{"a": 1}'], [""], gold_column=None, content_weight=0)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        _reward(['{"a": 1}'], parse_weight=-1)
    with pytest.raises(ValueError, match="type 'map'"):
        schema_checks({}, {"type": "map"})


def test_registered():
    assert rewards.get("json_structured") is json_structured_reward
