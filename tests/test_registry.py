"""Registries: lookup, "did you mean" errors, and parameter checks."""

import pytest

from grpozoo.algos.losses.clipped import ppo_clip_loss
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
