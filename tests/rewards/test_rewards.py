"""RewardModel: weighted combination, named parts, user functions, and clear errors."""

import math
import sys

import pytest
import torch

from grpozoo.config import RewardConfig
from grpozoo.errors import ConfigError
from grpozoo.registry import rewards as reward_registry
from grpozoo.rewards import RewardError, RewardModel
from grpozoo.rewards.builtin import format_reward, math_verify_reward
from grpozoo.rewards.combine import load_reward_function

COMPLETIONS = ["a", "bb", "ccc"]
PROMPTS = ["p0", "p1", "p2"]


def length(completions, prompts, **columns):
    return [float(len(c)) for c in completions]


def is_long(completions, prompts, **columns):
    return [1.0 if len(c) >= 2 else 0.0 for c in completions]


def _model(*specs, **functions):
    return RewardModel([RewardConfig(**s) for s in specs], functions=functions)


def test_weighted_sum_and_named_parts():
    model = _model({"name": "length", "weight": 0.5}, {"name": "is_long", "weight": 2.0}, length=length, is_long=is_long)
    total, parts = model(COMPLETIONS, PROMPTS, {})
    assert set(parts) == {"length", "is_long"}
    torch.testing.assert_close(parts["length"], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(parts["is_long"], torch.tensor([0.0, 1.0, 1.0]))
    # 0.5 * [1, 2, 3] + 2 * [0, 1, 1]
    torch.testing.assert_close(total, torch.tensor([0.5, 3.0, 3.5]))
    assert total.dtype == torch.float32


def test_columns_and_params_reach_the_function():
    seen = {}

    def spy(completions, prompts, answer, scale, **columns):
        seen.update(answer=answer, scale=scale, columns=columns, prompts=prompts)
        return [scale * float(a) for a in answer]

    model = _model({"name": "spy", "params": {"scale": 10.0}}, spy=spy)
    total, _ = model(COMPLETIONS, PROMPTS, {"answer": ["1", "2", "3"], "extra": [7, 8, 9]})
    torch.testing.assert_close(total, torch.tensor([10.0, 20.0, 30.0]))
    assert seen == {"answer": ["1", "2", "3"], "scale": 10.0, "columns": {"extra": [7, 8, 9]}, "prompts": PROMPTS}


def test_none_is_nan_in_part_and_left_out_of_total():
    def partial(completions, prompts, **columns):
        return [None, 1.0, None]

    def other(completions, prompts, **columns):
        return [2.0, None, None]

    model = _model({"name": "partial", "weight": 3.0}, {"name": "other"}, partial=partial, other=other)
    total, parts = model(COMPLETIONS, PROMPTS, {})
    assert math.isnan(parts["partial"][0]) and math.isnan(parts["partial"][2])
    assert parts["partial"][1].item() == 1.0
    assert math.isnan(parts["other"][1])
    # sample 0: other only -> 2; sample 1: partial only -> 3; sample 2: nobody -> 0
    torch.testing.assert_close(total, torch.tensor([2.0, 3.0, 0.0]))
    assert torch.isfinite(total).all()


def test_async_reward_function():
    async def slow_length(completions, prompts, **columns):
        return [float(len(c)) for c in completions]

    model = _model({"name": "slow_length", "weight": 2.0}, {"name": "is_long"}, slow_length=slow_length, is_long=is_long)
    total, parts = model(COMPLETIONS, PROMPTS, {})
    torch.testing.assert_close(parts["slow_length"], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(total, torch.tensor([2.0, 5.0, 7.0]))


def test_async_reward_that_raises_is_named():
    async def broken(completions, prompts, **columns):
        raise KeyError("gold")

    with pytest.raises(RewardError, match="reward 'broken' raised KeyError"):
        _model({"name": "broken"}, broken=broken)(COMPLETIONS, PROMPTS, {})


def test_user_function_from_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text("def shouty(completions, prompts, **columns):\n    return [float(c.isupper()) for c in completions]\n")
    model = _model({"name": f"{path}:shouty"})
    assert [p.name for p in model.parts] == ["shouty"]
    total, parts = model(["YES", "no", "OK"], PROMPTS, {})
    torch.testing.assert_close(total, torch.tensor([1.0, 0.0, 1.0]))
    assert set(parts) == {"shouty"}


def test_user_function_from_module(tmp_path, monkeypatch):
    module = "grpozoo_test_user_reward_module"
    (tmp_path / f"{module}.py").write_text(
        "def count_a(completions, prompts, **columns):\n    return [float(c.count('a')) for c in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    total, parts = _model({"name": f"{module}:count_a"})(["banana", "xyz", "a"], PROMPTS, {})
    torch.testing.assert_close(parts["count_a"], torch.tensor([3.0, 0.0, 1.0]))
    torch.testing.assert_close(total, parts["count_a"])


def test_loading_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_reward_function(f"{tmp_path / 'nope.py'}:fn")
    path = tmp_path / "r.py"
    path.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="has no function 'fn'"):
        load_reward_function(f"{path}:fn")
    with pytest.raises(ConfigError, match="has no function 'x'"):
        load_reward_function(f"{path}:x")  # exists but not callable
    with pytest.raises(ValueError, match="Did you mean 'format'"):
        load_reward_function("formatt")


def test_builtin_names_resolve_to_registered_functions():
    assert load_reward_function("format") is format_reward
    assert load_reward_function("math_verify") is math_verify_reward
    assert "task" in reward_registry


def test_duplicate_part_names_rejected():
    with pytest.raises(ValueError, match="two rewards share a name"):
        _model({"name": "length"}, {"name": "length", "weight": 2.0}, length=length)


def test_reward_that_raises_names_the_function():
    def broken(completions, prompts, **columns):
        raise ZeroDivisionError("division by zero")

    with pytest.raises(RewardError, match="reward 'broken' raised ZeroDivisionError: division by zero"):
        _model({"name": "broken"}, broken=broken)(COMPLETIONS, PROMPTS, {})


def test_wrong_number_of_values_names_function_and_both_counts():
    def short(completions, prompts, **columns):
        return [1.0, 0.0]

    with pytest.raises(RewardError, match="reward 'short' returned 2 values for 3 completions"):
        _model({"name": "short"}, short=short)(COMPLETIONS, PROMPTS, {})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_names_function_and_sample(bad):
    def nan_at_1(completions, prompts, **columns):
        return [0.0, bad, 1.0]

    with pytest.raises(RewardError) as info:
        _model({"name": "nan_at_1"}, nan_at_1=nan_at_1)(COMPLETIONS, PROMPTS, {})
    message = str(info.value)
    assert "'nan_at_1'" in message and "sample 1" in message and "None" in message


def test_non_number_value_names_function_and_sample():
    def wordy(completions, prompts, **columns):
        return [0.0, 1.0, "yes"]

    with pytest.raises(RewardError, match="reward 'wordy' returned 'yes' for sample 2: not a number"):
        _model({"name": "wordy"}, wordy=wordy)(COMPLETIONS, PROMPTS, {})


def test_non_list_return_is_rejected():
    def scalar(completions, prompts, **columns):
        return 1.0

    with pytest.raises(RewardError, match="reward 'scalar' returned float; it must return a list of 3 floats"):
        _model({"name": "scalar"}, scalar=scalar)(COMPLETIONS, PROMPTS, {})


def test_tensor_and_bool_values_are_accepted():
    def as_tensor(completions, prompts, **columns):
        return torch.tensor([0.25, 0.5, 0.75])

    def as_bool(completions, prompts, **columns):
        return [True, False, True]

    total, _ = _model({"name": "as_tensor"}, {"name": "as_bool"}, as_tensor=as_tensor, as_bool=as_bool)(
        COMPLETIONS, PROMPTS, {}
    )
    torch.testing.assert_close(total, torch.tensor([1.25, 0.5, 1.75]))


# ---------------------------------------------------------------- built-in rewards


def test_format_reward_boxed_and_answer_tag():
    completions = ["so \\boxed{4}", "the answer is 4", "<answer>4</answer>", "\\boxed{unclosed"]
    assert format_reward(completions, [""] * 4) == [1.0, 0.0, 0.0, 0.0]
    assert format_reward(completions, [""] * 4, style="answer_tag") == [0.0, 0.0, 1.0, 0.0]


def test_format_reward_does_not_pay_for_an_empty_box_or_tag():
    assert format_reward(["so \\boxed{}", "\\boxed{  }", "\\boxed{4} then \\boxed{}"], [""] * 3) == [0.0, 0.0, 0.0]
    assert format_reward(["<answer></answer>", "<answer> </answer>"], [""] * 2, style="answer_tag") == [0.0, 0.0]


def test_format_reward_through_reward_model():
    model = _model({"name": "format", "params": {"style": "answer_tag"}, "weight": 0.5})
    total, parts = model(["<answer>1</answer>", "1"], ["", ""], {"answer": ["1", "1"]})
    torch.testing.assert_close(parts["format"], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(total, torch.tensor([0.5, 0.0]))


def test_math_verify_reward_boxed_equivalence():
    completions = ["so \\boxed{1/2}", "\\boxed{\\frac{1}{2}}", "\\boxed{0.6}", "no box: 0.5", "\\boxed{x=3}"]
    answers = ["0.5", "0.5", "0.5", "0.5", "3"]
    out = math_verify_reward(completions, [""] * 5, answer=answers, answer_format="boxed")
    assert out == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_math_verify_reward_last_number_and_answer_tag():
    out = math_verify_reward(["it is 1,000.", "it is 10", "nothing"], [""] * 3, answer=[1000, "1000", "7"])
    assert out == [1.0, 0.0, 0.0]
    out = math_verify_reward(["<answer>x = 3</answer>"], [""], answer=["3"], answer_format="answer_tag")
    assert out == [1.0]


def test_math_verify_through_reward_model_with_answer_column():
    model = _model({"name": "math_verify", "params": {"answer_format": "boxed"}}, {"name": "format"})
    total, parts = model(["\\boxed{1/2}", "\\boxed{3}", "0.5"], PROMPTS, {"answer": ["0.5", "4", "0.5"]})
    torch.testing.assert_close(parts["math_verify"], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(parts["format"], torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(total, torch.tensor([2.0, 1.0, 0.0]))


def test_task_reward_passes_task_score_through():
    total, _ = _model({"name": "task", "weight": 2.0})(COMPLETIONS, PROMPTS, {"task_score": [1, 0, 0.5]})
    torch.testing.assert_close(total, torch.tensor([2.0, 0.0, 1.0]))
