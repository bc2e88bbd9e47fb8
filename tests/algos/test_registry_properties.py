"""Properties every registered component must have, checked with hypothesis over random batches and
on fixed edge cases (all-equal rewards in every group, single-member groups, zero-length
completions): finite values of the right shape, and a finite gradient that reaches the policy's
log-probs from every loss."""

from __future__ import annotations

import pytest
import torch
from factories import make_rollouts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpozoo import registry
from grpozoo.algos.advantages import AdvantageOutput
from grpozoo.algos.aggregation import BatchTotals

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def full_batch(
    rewards: list[float],
    group_ids: list[int],
    lengths: list[int],
    seed: int = 0,
    answers: list[str | None] | None = None,
    baselines: list[float] | None = None,
    token_texts: list[list[str]] | None = None,
):
    """A batch with the given rewards, groups and completion lengths, and every optional field a
    component may read, filled from ``seed``."""
    b = len(group_ids)
    t = max(max(lengths), 1)
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.arange(t).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).float()
    sampling = -torch.rand(b, t, generator=gen) * 3 * mask
    ids = torch.randint(100, 104, (b, t), generator=gen) * mask.long()  # few distinct tokens: shared prefixes
    old = sampling + 0.1 * torch.randn(b, t, generator=gen) * mask
    ref = sampling + 0.1 * torch.randn(b, t, generator=gen) * mask
    entropies = torch.rand(b, t, generator=gen) * 2 * mask
    return make_rollouts(
        rewards,
        group_ids,
        lengths=lengths,
        num_tokens=t,
        completion_ids=ids,
        sampling_logprobs=sampling,
        old_logprobs=old,
        ref_logprobs=ref,
        entropies=entropies,
        baseline_rewards=torch.tensor(baselines if baselines is not None else [0.5] * b),
        budget_rewards=torch.rand(b, t + 1, generator=gen),  # a forced answer's reward at every cut
        # a self-teacher's log-probs and entropies, and every third row a demonstration
        teacher_logprobs=sampling + 0.3 * torch.randn(b, t, generator=gen) * mask,
        teacher_entropies=torch.rand(b, t, generator=gen) * 2 * mask,
        demonstration=torch.arange(b) % 3 == 2,
        answers=answers if answers is not None else [["1", "2", None][i % 3] for i in range(b)],
        reward_parts={"task": torch.tensor(rewards), "format": torch.tensor(rewards) * 0.5},
        completion_token_texts=(
            token_texts if token_texts is not None else [[["a", ".", " b", "\n"][j % 4] for j in range(n)] for n in lengths]
        ),
        step_flags=(torch.rand(b, t, generator=gen) < 0.3).float() * mask,  # a critic's flagged steps
        values=torch.rand(b, t + 1, generator=gen),  # a learned critic's V(s_t)
        probe_values=torch.rand(b, generator=gen),  # a learned probe's predicted reward per rollout
        state={},
    )


@st.composite
def batches(draw):
    """A batch of 1–4 groups of 1–4 completions of 0–5 tokens, with binary or real rewards
    (often all equal within a group), and every optional field a component may read."""
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    group_ids = [g for g, n in enumerate(sizes) for _ in range(n)]
    b = len(group_ids)
    binary = draw(st.booleans())
    values = st.sampled_from([0.0, 1.0]) if binary else st.floats(-3, 3, width=32)
    rewards = draw(st.lists(values, min_size=b, max_size=b))
    if draw(st.booleans()):  # all-equal rewards within every group
        rewards = [rewards[group_ids.index(g)] for g in group_ids]
    lengths = draw(st.lists(st.integers(0, 5), min_size=b, max_size=b))
    return full_batch(
        rewards,
        group_ids,
        lengths,
        seed=draw(st.integers(0, 2**16)),
        answers=draw(st.lists(st.sampled_from(["1", "2", "3", None]), min_size=b, max_size=b)),
        baselines=draw(st.lists(values, min_size=b, max_size=b)),
        token_texts=[[draw(st.sampled_from(["a", ".", " b", "\n"])) for _ in range(n)] for n in lengths],
    )


# The edge cases every component must survive, checked deterministically besides the random batches:
# (rewards, group ids, completion lengths)
EDGE_CASES = {
    "all_equal_rewards_in_every_group": ([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.5, 0.5], [0, 0, 0, 1, 1, 1, 2, 2],
                                         [3, 5, 1, 4, 2, 5, 3, 3]),
    "all_equal_binary_rewards_in_one_group": ([0.0, 0.0, 0.0, 0.0], [0, 0, 0, 0], [2, 4, 5, 1]),
    "a_single_member_group": ([1.0, 0.0, 1.0, 0.0], [0, 1, 1, 1], [4, 2, 3, 5]),
    "only_single_member_groups": ([1.0, 0.0, 0.5], [0, 1, 2], [3, 1, 4]),
    "a_single_completion": ([1.0], [0], [3]),
    "a_zero_length_completion": ([1.0, 0.0, 1.0, 0.0, 1.0, 0.0], [0, 0, 0, 1, 1, 1], [0, 3, 2, 4, 0, 5]),
    "every_completion_zero_length": ([1.0, 0.0, 0.0, 1.0], [0, 0, 1, 1], [0, 0, 0, 0]),
}


def edge_batch(case: str):
    rewards, group_ids, lengths = EDGE_CASES[case]
    return full_batch(rewards, group_ids, lengths, seed=sorted(EDGE_CASES).index(case))


def _segment_values(name: str, batch) -> torch.Tensor | None:
    boundaries = registry.advantages.spec(name).segment_boundaries
    if boundaries is None:
        return None
    asked = boundaries(batch)
    values = torch.rand(asked.shape, generator=torch.Generator().manual_seed(0))
    return torch.where(asked, values, torch.full_like(values, float("nan")))


def _advantages(name: str, batch):
    fn = registry.advantages.get(name)
    batch.segment_values = _segment_values(name, batch)
    if "answer_logprobs" in registry.advantages.spec(name).needs:  # log-probabilities at the same boundaries
        batch.answer_logprobs = _segment_values(name, batch).clamp(min=1e-6).log()
    out = fn(batch.rewards, batch.group_ids, batch)
    return out if isinstance(out, AdvantageOutput) else AdvantageOutput(out)


def check_advantages(name: str, batch) -> None:
    out = _advantages(name, batch)
    b, t = batch.completion_mask.shape
    assert out.advantages.shape in ((b,), (b, t)), f"{name}: shape {tuple(out.advantages.shape)}"
    assert torch.isfinite(out.advantages).all(), f"{name}: {out.advantages}"
    if out.keep is not None:
        assert out.keep.shape == (b,) and out.keep.dtype == torch.bool
    for key, value in out.extras.items():
        assert value.shape[0] == b and torch.isfinite(value).all(), f"{name}: extra {key}"


@pytest.mark.parametrize("name", registry.advantages.names())
@SETTINGS
@given(batch=batches())
def test_every_advantage_estimator_is_finite_and_shaped(name, batch):
    check_advantages(name, batch)


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("name", registry.advantages.names())
def test_every_advantage_estimator_survives_the_edge_cases(name, case):
    check_advantages(name, edge_batch(case))


def check_token_weights(name: str, batch) -> None:
    batch.advantages = _advantages("grpo", batch).advantages
    weights = registry.token_weights.get(name)(batch)
    assert weights.shape == batch.completion_mask.shape
    assert torch.isfinite(weights).all()
    assert (weights[batch.completion_mask == 0] == 0).all(), f"{name}: weight on padding"


@pytest.mark.parametrize("name", registry.token_weights.names())
@SETTINGS
@given(batch=batches())
def test_every_token_weighting_is_finite_and_shaped(name, batch):
    check_token_weights(name, batch)


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("name", registry.token_weights.names())
def test_every_token_weighting_survives_the_edge_cases(name, case):
    check_token_weights(name, edge_batch(case))


def check_loss(name: str, loss_fn, batch, token_level: bool) -> None:
    """The loss of ``batch`` is finite and ``[B, T]``, and so are its diagnostics; its token-mean
    backpropagates to the policy's log-probs a finite gradient (not None: a loss must depend on them)."""
    advantages = _advantages("grpo", batch).advantages
    mask = batch.completion_mask.float()
    batch.advantages = advantages.unsqueeze(1) * mask if token_level else advantages
    batch.extras = _advantages("copo", batch).extras if "copo" in registry.advantages else {}
    gen = torch.Generator().manual_seed(1)
    logp = (batch.old_logprobs + 0.2 * torch.randn(mask.shape, generator=gen) * mask).requires_grad_(True)
    loss, diagnostics = loss_fn(logp, batch.old_logprobs, batch.advantages, mask, batch)
    assert loss.shape == mask.shape, f"{name}: loss shape {tuple(loss.shape)}"
    assert torch.isfinite(loss).all(), f"{name}: {loss}"
    for key, value in diagnostics.items():
        assert value.shape == mask.shape and torch.isfinite(value).all(), f"{name}: diagnostic {key}"
    assert loss.requires_grad, f"{name}: the loss does not depend on the log-probs (detached)"
    totals = BatchTotals.of(mask, mask.shape[1], batch.group_ids)
    registry.aggregations.get("token_mean")(loss, mask, batch.group_ids, totals).backward()
    assert logp.grad is not None, f"{name}: no gradient reaches the log-probs"
    assert logp.grad.shape == mask.shape and torch.isfinite(logp.grad).all(), f"{name}: gradient {logp.grad}"


@pytest.mark.parametrize("name", registry.losses.names())
@SETTINGS
@given(batch=batches(), token_level=st.booleans())
def test_every_loss_has_a_finite_value_and_gradient(name, batch, token_level):
    check_loss(name, registry.losses.get(name), batch, token_level)


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("name", registry.losses.names())
def test_every_loss_survives_the_edge_cases(name, case):
    check_loss(name, registry.losses.get(name), edge_batch(case), token_level=False)


def test_the_gradient_check_fails_a_loss_that_detaches_everything():
    def detached(logp, old_logp, advantages, mask, ctx, **params):
        return (-(logp.detach() - old_logp) * mask), {}

    def through_a_side_input(logp, old_logp, advantages, mask, ctx, **params):
        side = torch.zeros_like(logp, requires_grad=True)  # a graph, but none of it from logp
        return side + logp.detach() * mask, {}

    with pytest.raises(AssertionError, match="detached"):
        check_loss("detached", detached, edge_batch("a_single_member_group"), token_level=False)
    with pytest.raises(AssertionError, match="no gradient"):
        check_loss("side", through_a_side_input, edge_batch("a_single_member_group"), token_level=False)
    check_loss("ppo_clip", registry.losses.get("ppo_clip"), edge_batch("a_single_member_group"), token_level=False)
