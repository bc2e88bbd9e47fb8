"""Run configuration: defaults, overrides, precedence, and the error messages for bad input."""

import inspect

import pytest
import yaml
from pydantic import ValidationError

from grpozoo import registry
from grpozoo.config import (
    DEFAULT_TASK_PARAMS,
    ConfigError,
    RewardConfig,
    RunConfig,
    TaskConfig,
    deep_merge,
    load_run_config,
    load_yaml,
    merge_layers,
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
    assert "recipe, model, task, rewards, rollout, generation, algorithm, train, eval, log, output_dir" in str(info.value)


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


def effective_params(registry_of, component) -> dict:
    """What a component runs with: its function's defaults, overridden by its configured params."""
    signature = inspect.signature(registry_of.get(component.name))
    defaults = {k: p.default for k, p in signature.parameters.items() if p.default is not p.empty}
    return {**defaults, **component.params}


def test_naming_another_loss_runs_it_with_its_own_defaults_not_the_recipes_params():
    cfg = resolve_config(recipe="grpo", overrides=["algorithm.loss.name=cispo"])
    assert cfg.algorithm.loss.name == "cispo" and cfg.algorithm.loss.params == {}
    params = effective_params(registry.losses, cfg.algorithm.loss)
    assert (params["eps_low"], params["eps_high"]) == (1.0, 4.0)  # CISPO's, not GRPO's 0.2 / 0.2


@pytest.mark.parametrize(
    ("recipe", "component", "other"),
    [("grpo", "advantage", "rloo"), ("dapo", "loss", "cispo"), ("knapsack_rl", "selector", "uniform"),
     ("fg_expo", "selector", "uniform")],
)
def test_a_layer_naming_a_component_drops_the_params_of_the_one_it_replaces(recipe, component, other):
    assert getattr(resolve_config(recipe=recipe).algorithm, component).params  # the recipe gives some
    cfg = resolve_config(recipe=recipe, overrides=[f"algorithm.{component}.name={other}"])
    assert getattr(cfg.algorithm, component).model_dump() == {"name": other, "params": {}}


def test_params_named_with_the_component_or_in_a_later_layer_apply(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("algorithm:\n  loss: {name: cispo, params: {eps_low: 0.5}}\n")
    later = resolve_config(path, overrides=["algorithm.loss.params.eps_high=6"])
    assert later.algorithm.loss.params == {"eps_low": 0.5, "eps_high": 6}
    # the --set overrides are one layer: their order does not matter
    for order in (["algorithm.loss.params.eps_high=6", "algorithm.loss.name=cispo"],
                  ["algorithm.loss.name=cispo", "algorithm.loss.params.eps_high=6"]):
        assert resolve_config(overrides=order).algorithm.loss.params == {"eps_high": 6}


def test_an_earlier_layers_params_do_not_survive_a_later_layer_naming_the_component(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("algorithm:\n  loss: {params: {eps_high: 0.3}}\n")  # meant for the recipe's ppo_clip
    cfg = resolve_config(path, overrides=["algorithm.loss.name=cispo"])
    assert cfg.algorithm.loss.params == {}


def test_merge_layers_restarts_params_only_where_a_layer_sets_the_name():
    recipe = {"algorithm": {"loss": {"name": "ppo_clip", "params": {"eps_low": 0.2}},
                            "advantage": {"name": "grpo", "params": {"scale": "group"}}}}
    layer = {"algorithm": {"loss": {"name": "cispo"}, "advantage": {"params": {"scale": "batch"}}}}
    merged = merge_layers(recipe, layer)["algorithm"]
    assert merged == {"loss": {"name": "cispo"}, "advantage": {"name": "grpo", "params": {"scale": "batch"}}}
    assert recipe["algorithm"]["loss"]["params"] == {"eps_low": 0.2}  # inputs untouched


def test_resuming_with_another_component_name_drops_the_saved_params(tmp_path):
    save_config(resolve_config(recipe="dapo"), tmp_path / "config.yaml")
    cfg = load_run_config(tmp_path, ["algorithm.loss.name=cispo"])
    assert cfg.algorithm.loss.model_dump() == {"name": "cispo", "params": {}}


def test_a_data_file_task_carries_no_reasoning_gym_params(tmp_path):
    cfg = resolve_config(task="data.jsonl")
    assert cfg.task.params == {}
    save_config(cfg, tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["task"]["params"] == {} and "min_terms" not in (tmp_path / "config.yaml").read_text()
    # the default task keeps its parameters; another task gets its own only
    assert resolve_config().task.params == DEFAULT_TASK_PARAMS
    assert RunConfig().task.params == DEFAULT_TASK_PARAMS
    other = resolve_config(task="basic_arithmetic", overrides=["task.params.max_digits=2"])
    assert other.task.params == {"max_digits": 2}


def test_a_config_file_task_params_do_not_follow_a_command_line_task(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("task: {name: chain_sum, params: {min_terms: 3, max_terms: 4}}\n")
    assert resolve_config(path).task.params == {"min_terms": 3, "max_terms": 4}
    assert resolve_config(path, task="data.jsonl").task.params == {}
