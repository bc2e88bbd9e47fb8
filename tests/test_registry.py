"""Registries: lookup, "did you mean" errors, and parameter checks."""

import inspect
from collections.abc import Sequence
from typing import Literal

import pytest

from grpozoo.algos.losses.clipped import cispo_loss, ppo_clip_loss
from grpozoo.errors import ConfigError
from grpozoo.registry import (
    LossSpec,
    Registry,
    Spec,
    UnknownNameError,
    advantages,
    check_params,
    did_you_mean,
    losses,
)


def _registry():
    reg = Registry("widget", Spec)
    for name in ("alpha", "beta", "gamma"):
        reg.register(name)(name.upper())
    return reg


def test_get_and_names_and_contains():
    reg = _registry()
    assert reg.get("beta") == "BETA"
    assert reg.names() == ["alpha", "beta", "gamma"]
    assert "gamma" in reg and "delta" not in reg


def test_register_returns_the_item_unchanged():
    reg = Registry("widget", Spec)

    def fn():
        return 1

    assert reg.register("fn")(fn) is fn


def test_unknown_name_suggests_close_name_and_lists_choices():
    with pytest.raises(UnknownNameError) as info:
        _registry().get("alpah")
    message = str(info.value)
    assert message == "unknown widget 'alpah'. Did you mean 'alpha'? Valid choices: alpha, beta, gamma"


def test_unknown_name_without_close_match_still_lists_choices():
    with pytest.raises(UnknownNameError) as info:
        _registry().get("zzzzzz")
    message = str(info.value)
    assert "Did you mean" not in message
    assert "'zzzzzz'" in message and "Valid choices: alpha, beta, gamma" in message


def test_unknown_name_error_is_key_and_value_error_with_unquoted_message():
    with pytest.raises(KeyError):
        _registry().get("x")
    with pytest.raises(ValueError):
        _registry().get("x")
    error = UnknownNameError("plain message")
    assert str(error) == "plain message"  # KeyError alone would give "'plain message'"


def test_duplicate_registration_raises():
    reg = _registry()
    with pytest.raises(ValueError, match="widget 'alpha' is registered twice"):
        reg.register("alpha")("again")
    assert reg.get("alpha") == "ALPHA"


def test_global_registries_hold_the_builtin_components():
    assert "grpo" in advantages.names()
    with pytest.raises(UnknownNameError, match="Did you mean 'ppo_clip'"):
        losses.get("ppo_clp")


def test_did_you_mean_helper():
    assert did_you_mean("stepz", ["steps", "seed"]) == " Did you mean 'steps'?"
    assert did_you_mean("qqq", ["steps", "seed"]) == ""


def test_check_params_accepts_known_parameters():
    check_params("policy loss", "ppo_clip", ppo_clip_loss, {"eps_low": 0.1, "eps_high": 0.3}, positional=4)
    check_params("policy loss", "ppo_clip", ppo_clip_loss, {}, positional=4)


def test_check_params_rejects_unknown_parameter_naming_it_and_listing_valid_ones():
    with pytest.raises(ValueError) as info:
        check_params("policy loss", "ppo_clip", ppo_clip_loss, {"eps_hgh": 0.3}, positional=4)
    assert str(info.value) == (
        "policy loss 'ppo_clip' has no parameter 'eps_hgh'. Did you mean 'eps_high'? Its parameters: eps_low, eps_high, dual_clip, ratio_cap"
    )


def test_check_params_does_not_accept_pipeline_arguments_or_ctx():
    # the first `positional` arguments and ctx are filled by the pipeline, never by params
    for key in ("mask", "ctx"):
        with pytest.raises(ValueError, match=f"no parameter '{key}'"):
            check_params("policy loss", "ppo_clip", ppo_clip_loss, {key: 1}, positional=4)


def test_check_params_with_no_parameters_says_none():
    def fn(a, b):
        return a + b

    with pytest.raises(ValueError, match=r"Its parameters: \(none\)"):
        check_params("thing", "fn", fn, {"c": 1}, positional=2)


def test_check_params_allows_anything_with_var_keyword():
    def fn(a, **kwargs):
        return a

    check_params("thing", "fn", fn, {"whatever": 1, "else": 2}, positional=1)


def test_component_metadata_is_declared_at_registration_and_checked():
    reg = Registry("widget", LossSpec)
    reg.register("grouped", whole_groups=True, needs={"old_logprobs"})(len)
    assert reg.spec("grouped") == LossSpec(needs=frozenset({"old_logprobs"}), whole_groups=True)
    assert not hasattr(len, "whole_groups")  # nothing is attached to the function itself
    with pytest.raises(TypeError, match="whole_group"):
        reg.register("typo", whole_group=True)
    with pytest.raises(ValueError, match="unknown need"):
        reg.register("bad", needs={"reference"})


def typed_component(
    x,
    eps: float = 0.2,
    count: int = 1,
    flag: bool = False,
    cap: float | None = None,
    mode: Literal["group", "batch"] = "group",
    names: str | Sequence[str] = "a",
    weights: dict[str, float] | None = None,
    **columns,
):
    return x


def test_check_params_names_the_component_key_value_and_expected_type():
    with pytest.raises(ConfigError) as info:
        check_params("policy loss", "cispo", cispo_loss, {"eps_high": "high"}, positional=4)
    message = str(info.value)
    assert message.startswith("policy loss 'cispo' parameter eps_high: expected float")
    assert message.endswith("got 'high' (str)")


@pytest.mark.parametrize(
    "params",
    [{"eps": 1}, {"eps": 0.5}, {"count": 3}, {"flag": True}, {"cap": None}, {"cap": 2}, {"mode": "batch"},
     {"names": "b"}, {"names": ["b", "c"]}, {"weights": {"a": 1, "b": 0.5}}, {"weights": None},
     {"not_named": object()}],  # **columns takes any other name, unchecked
)
def test_check_params_accepts_values_of_the_annotated_type(params):
    check_params("thing", "typed", typed_component, params, positional=1)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"eps": True}, "parameter eps: expected float, got True (bool)"),  # a bool is no number
        ({"eps": "0.1"}, "parameter eps: expected float, got '0.1' (str)"),
        ({"count": 2.0}, "parameter count: expected int, got 2.0 (float)"),
        ({"count": False}, "parameter count: expected int, got False (bool)"),
        ({"flag": 1}, "parameter flag: expected bool, got 1 (int)"),
        ({"cap": "none"}, "parameter cap: expected float | None, got 'none' (str)"),
        ({"mode": "grup"},
         "parameter mode: expected one of 'group', 'batch', got 'grup' (str). Did you mean 'group'?"),
        ({"names": [1]}, "parameter names: expected str | Sequence[str], got [1] (list)"),
        ({"weights": {"a": "x"}},
         "parameter weights: expected dict[str, float] | None, got {'a': 'x'} (dict)"),
    ],
)
def test_check_params_refuses_values_of_another_type(params, expected):
    with pytest.raises(ConfigError) as info:
        check_params("thing", "typed", typed_component, params, positional=1)
    assert str(info.value) == f"thing 'typed' {expected}"


def test_check_params_resolves_string_annotations_one_parameter_at_a_time():
    # as written under `from __future__ import annotations`; a name only type checkers import
    # leaves its own parameter unchecked, not the others
    def fn(x, ctx: "TypeCheckersOnly" = None, eps: "float" = 0.2,  # noqa: F821
           mode: "Literal['a', 'b']" = "a"):
        return x

    check_params("thing", "fn", fn, {"eps": 1, "mode": "b"}, positional=1)
    with pytest.raises(ConfigError, match="parameter eps: expected float"):
        check_params("thing", "fn", fn, {"eps": "x"}, positional=1)
    with pytest.raises(ConfigError, match="parameter mode: expected one of 'a', 'b'"):
        check_params("thing", "fn", fn, {"mode": "c"}, positional=1)


def test_every_recipes_params_have_the_types_their_components_declare():
    from grpozoo import registry
    from grpozoo.config import resolve_config
    from grpozoo.recipes import all_recipes

    positional = {"advantage": (registry.advantages, 2), "loss": (registry.losses, 4),
                  "selector": (registry.selectors, 2)}
    for recipe in all_recipes():
        algorithm = resolve_config(recipe=recipe.name).algorithm
        components = [(kind, reg, getattr(algorithm, kind), n) for kind, (reg, n) in positional.items()]
        components += [("token_weights", registry.token_weights, c, 0) for c in algorithm.token_weights]
        components += [("group_filters", registry.group_filters, c, 1) for c in algorithm.group_filters]
        for kind, reg, component, n in components:
            fn = reg.get(component.name)
            check_params(f"{recipe.name} {kind}", component.name, fn, component.params, n)


# Where the pipeline passes the batch to each kind of component: (registry, index of that argument).
BATCH_ARGUMENT = {
    "advantage estimator": ("advantages", 2),
    "token weighting": ("token_weights", 0),
    "group filter": ("group_filters", 0),
    "policy loss": ("losses", 4),
}


def _batch_functions():
    """``(label, function, index of its batch argument)`` for every registered component that
    receives the batch, and for the functions declared with it (a loss's whole-batch statistics,
    an estimator's segment boundaries, a selector's ``update``)."""
    from grpozoo import registry

    for kind, (attribute, index) in BATCH_ARGUMENT.items():
        reg = getattr(registry, attribute)
        for name in reg.names():
            yield f"{kind} {name!r}", reg.get(name), index
            spec = reg.spec(name)
            for declared, at in (("statistics", 2), ("policy_statistics", 4), ("segment_boundaries", 0)):
                fn = getattr(spec, declared, None)
                if fn is not None:
                    yield f"{kind} {name!r} {declared}", fn, at
    for name in registry.selectors.names():
        yield f"selector {name!r} update", registry.selectors.get(name).update, 2


def test_every_component_annotates_the_batch_it_receives_as_rollouts():
    """Components read the batch by attribute and are type-checked against ``Rollouts``; an
    untyped (or ``Any``) batch argument would hide a misspelt field or an unchecked None from mypy.
    An estimator that does not read it may default it to None."""
    from typing import get_args, get_type_hints

    from grpozoo.rollouts import Rollouts

    untyped = []
    for label, fn, index in _batch_functions():
        parameter = list(inspect.signature(fn).parameters)[index]
        hint = get_type_hints(fn).get(parameter)
        if hint is None or set(get_args(hint) or (hint,)) - {type(None)} != {Rollouts}:
            untyped.append(f"{label}: {parameter}: {'not annotated' if hint is None else hint}")
    assert not untyped, "batch arguments not annotated as Rollouts:\n" + "\n".join(untyped)
