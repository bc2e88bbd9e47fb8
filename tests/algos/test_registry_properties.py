"""Properties every registered component must have, checked with hypothesis over random batches:
finite values of the right shape for groups with all-equal rewards, single-member groups and
zero-length completions, and a finite gradient from every loss."""

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
    t = max(max(lengths), 1)
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.arange(t).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).float()
    sampling = -torch.rand(b, t, generator=gen) * 3 * mask
    answers = draw(st.lists(st.sampled_from(["1", "2", "3", None]), min_size=b, max_size=b))
    ids = torch.randint(100, 104, (b, t), generator=gen) * mask.long()  # few distinct tokens: shared prefixes
    batch = make_rollouts(
        rewards,
        group_ids,
        lengths=lengths,
        num_tokens=t,
        completion_ids=ids,
        sampling_logprobs=sampling,
        old_logprobs=sampling + 0.1 * torch.randn(b, t, generator=gen) * mask,
        ref_logprobs=sampling + 0.1 * torch.randn(b, t, generator=gen) * mask,
        entropies=torch.rand(b, t, generator=gen) * 2 * mask,
        baseline_rewards=torch.tensor(draw(st.lists(values, min_size=b, max_size=b))),
        answers=answers,
        reward_parts={"task": torch.tensor(rewards), "format": torch.tensor(rewards) * 0.5},
        completion_token_texts=[
            [draw(st.sampled_from(["a", ".", " b", "\n"])) for _ in range(n)] for n in lengths
        ],
        state={},
    )
    return batch


def _segment_values(fn, batch) -> torch.Tensor | None:
    boundaries = getattr(fn, "segment_boundaries", None)
    if boundaries is None:
        return None
    asked = boundaries(batch)
    values = torch.rand(asked.shape, generator=torch.Generator().manual_seed(0))
    return torch.where(asked, values, torch.full_like(values, float("nan")))


def _advantages(name: str, batch):
    fn = registry.advantages.get(name)
    batch.segment_values = _segment_values(fn, batch)
    out = fn(batch.rewards, batch.group_ids, batch)
    return out if isinstance(out, AdvantageOutput) else AdvantageOutput(out)


@pytest.mark.parametrize("name", registry.advantages.names())
@SETTINGS
@given(batch=batches())
def test_every_advantage_estimator_is_finite_and_shaped(name, batch):
    out = _advantages(name, batch)
    b, t = batch.completion_mask.shape
    assert out.advantages.shape in ((b,), (b, t)), f"{name}: shape {tuple(out.advantages.shape)}"
    assert torch.isfinite(out.advantages).all(), f"{name}: {out.advantages}"
    if out.keep is not None:
        assert out.keep.shape == (b,) and out.keep.dtype == torch.bool
    for key, value in out.extras.items():
        assert value.shape[0] == b and torch.isfinite(value).all(), f"{name}: extra {key}"


@pytest.mark.parametrize("name", registry.token_weights.names())
@SETTINGS
@given(batch=batches())
def test_every_token_weighting_is_finite_and_shaped(name, batch):
    batch.advantages = _advantages("grpo", batch).advantages
    weights = registry.token_weights.get(name)(batch)
    assert weights.shape == batch.completion_mask.shape
    assert torch.isfinite(weights).all()
    assert (weights[batch.completion_mask == 0] == 0).all(), f"{name}: weight on padding"


@pytest.mark.parametrize("name", registry.losses.names())
@SETTINGS
@given(batch=batches(), token_level=st.booleans())
def test_every_loss_has_a_finite_value_and_gradient(name, batch, token_level):
    advantages = _advantages("grpo", batch).advantages
    mask = batch.completion_mask.float()
    batch.advantages = advantages.unsqueeze(1) * mask if token_level else advantages
    batch.extras = _advantages("copo", batch).extras if "copo" in registry.advantages else {}
    logp = (batch.old_logprobs + 0.2 * torch.randn(mask.shape) * mask).requires_grad_(True)
    loss, diagnostics = registry.losses.get(name)(logp, batch.old_logprobs, batch.advantages, mask, batch)
    assert loss.shape == mask.shape, f"{name}: loss shape {tuple(loss.shape)}"
    assert torch.isfinite(loss).all(), f"{name}: {loss}"
    for key, value in diagnostics.items():
        assert value.shape == mask.shape and torch.isfinite(value).all(), f"{name}: diagnostic {key}"
    totals = BatchTotals.of(mask, mask.shape[1], batch.group_ids)
    registry.aggregations.get("token_mean")(loss, mask, batch.group_ids, totals).backward()
    assert logp.grad is None or torch.isfinite(logp.grad).all(), f"{name}: gradient {logp.grad}"
