"""Run configuration: defaults, overrides, precedence, and the error messages for bad input."""

import pytest
import yaml
from pydantic import ValidationError

from grpozoo.config import (
    ConfigError,
    RewardConfig,
    RunConfig,
    TaskConfig,
    deep_merge,
    load_yaml,
    parse_override,
    resolve_config,
    save_config,
)
from grpozoo.registry import UnknownNameError


def test_defaults():
    cfg = resolve_config()
    assert cfg.recipe == "grpo"
    assert cfg.model.name == "smollm2-135m"
    assert cfg.task.name == "chain_sum"
    assert [r.name for r in cfg.rewards] == ["task"]
    # the grpo recipe fills the algorithm section
    assert cfg.algorithm.advantage.name == "grpo"
    assert cfg.algorithm.advantage.params == {"scale": "group"}
    assert cfg.algorithm.loss.name == "ppo_clip"
    assert cfg.algorithm.loss.params == {"eps_low": 0.2, "eps_high": 0.2}
    assert cfg.algorithm.aggregation == "token_mean"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.steps=10", {"train": {"steps": 10}}),
        ("a.b.c=[1, 2]", {"a": {"b": {"c": [1, 2]}}}),
        ("model.lora.enabled=false", {"model": {"lora": {"enabled": False}}}),
        ("train.learning_rate=0.5", {"train": {"learning_rate": 0.5}}),
        ("output_dir=runs/x", {"output_dir": "runs/x"}),
        ("task.instruction=", {"task": {"instruction": ""}}),
        ("task.instruction=a=b", {"task": {"instruction": "a=b"}}),
        ("rewards=[{name: task, weight: 2}]", {"rewards": [{"name": "task", "weight": 2}]}),
        ("eval.temperature=null", {"eval": {"temperature": None}}),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_parse_override_errors():
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        parse_override("train.steps")
    with pytest.raises(ConfigError, match="empty key segment in 'train..steps'"):
        parse_override("train..steps=1")


def test_parse_override_reads_exponent_floats_as_numbers():
    assert parse_override("algorithm.loss.params.eps_high=1e-3") == {
        "algorithm": {"loss": {"params": {"eps_high": 0.001}}}
    }


def test_overrides_apply_and_are_typed():
    cfg = resolve_config(overrides=["train.steps=10", "model.lora.r=4", "rollout.temperature=0.7"])
    assert cfg.train.steps == 10
    assert cfg.model.lora.r == 4
    assert cfg.model.lora.alpha == 32  # untouched sibling keeps its default
    assert cfg.rollout.temperature == pytest.approx(0.7)


def test_later_override_wins():
    assert resolve_config(overrides=["train.steps=3", "train.steps=5"]).train.steps == 5


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError) as info:
        resolve_config(overrides=["train.stepz=10"])
    message = str(info.value)
    assert "unknown config key 'train.stepz'" in message
    assert "Did you mean 'steps'?" in message
    assert "Valid keys here: steps, learning_rate" in message


def test_unknown_top_level_key_lists_sections():
    with pytest.raises(ConfigError, match="unknown config key 'trian'. Did you mean 'train'?") as info:
        resolve_config(overrides=["trian.steps=1"])
    assert "recipe, model, task, rewards, rollout, algorithm, train, eval, log, output_dir" in str(info.value)


def test_unknown_key_inside_a_list_item():
    with pytest.raises(ConfigError) as info:
        resolve_config(overrides=["rewards=[{name: task, wieght: 2}]"])
    message = str(info.value)
    assert "'rewards.0.wieght'" in message and "Did you mean 'weight'?" in message
    assert "Valid keys here: name, weight, params" in message


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError) as info:
        resolve_config(overrides=["train.steps=abc"])
    assert "config key 'train.steps' = 'abc'" in str(info.value)


def test_out_of_range_value_names_key_and_value():
    with pytest.raises(ConfigError, match=r"config key 'rollout.top_p' = 1.5: .*less than or equal to 1"):
        resolve_config(overrides=["rollout.top_p=1.5"])


def test_wrong_literal_names_key_and_value():
    with pytest.raises(ConfigError, match="config key 'model.dtype' = 'float8'"):
        resolve_config(overrides=["model.dtype=float8"])


def test_empty_rewards_rejected():
    with pytest.raises(ConfigError, match="at least one reward is needed"):
        resolve_config(overrides=["rewards=[]"])


def test_unknown_recipe_lists_valid_choices():
    with pytest.raises(UnknownNameError) as info:
        resolve_config(recipe="grpoo")
    message = str(info.value)
    assert "unknown recipe 'grpoo'" in message
    assert "Did you mean 'grpo'?" in message
    assert "Valid choices:" in message and "grpo" in message.split("Valid choices:")[1]


def test_precedence_defaults_recipe_file_overrides_shortcuts(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "train": {"steps": 5, "seed": 3},
                "algorithm": {"loss": {"params": {"eps_high": 0.28}}},
                "rollout": {"group_size": 6},
            }
        )
    )
    cfg = resolve_config(path, overrides=["train.steps=7", "rollout.group_size=2"])
    assert cfg.train.learning_rate == pytest.approx(2e-4)  # default
    assert cfg.algorithm.advantage.params == {"scale": "group"}  # recipe
    # file beats recipe, merging into the recipe's params rather than replacing them
    assert cfg.algorithm.loss.params == {"eps_low": 0.2, "eps_high": 0.28}
    assert cfg.train.seed == 3  # file
    assert cfg.train.steps == 7  # override beats file
    assert cfg.rollout.group_size == 2
    assert resolve_config(path, overrides=["train.steps=7"], steps=9).train.steps == 9  # shortcut beats override
    assert resolve_config(path, steps=None).train.steps == 5  # a None shortcut is "not given"


def test_recipe_can_come_from_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("recipe: grpoo\n")
    with pytest.raises(UnknownNameError, match="Did you mean 'grpo'"):
        resolve_config(path)


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping at the top level, not list"):
        load_yaml(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml(empty) == {}


def test_deep_merge_does_not_mutate_and_merges_nested():
    base = {"a": {"x": 1, "y": [1]}, "b": 2}
    override = {"a": {"y": [2], "z": 3}}
    out = deep_merge(base, override)
    assert out == {"a": {"x": 1, "y": [2], "z": 3}, "b": 2}
    assert base == {"a": {"x": 1, "y": [1]}, "b": 2}
    out["a"]["y"].append(9)
    assert override == {"a": {"y": [2], "z": 3}}


def test_save_config_round_trips(tmp_path):
    cfg = resolve_config(overrides=["train.steps=11", "rewards=[{name: task}, {name: format, weight: 0.5}]"])
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    again = resolve_config(path)
    assert again == cfg


def test_sections_forbid_unknown_keys_directly():
    with pytest.raises(ValidationError, match="extra_forbidden"):
        TaskConfig(nam="x")
    assert RewardConfig(name="format").weight == 1.0
    assert isinstance(RunConfig(), RunConfig)
