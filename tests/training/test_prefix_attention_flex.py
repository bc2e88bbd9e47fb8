"""The flex attention path of the shared-prefix learning forward (Prefix Grouper: Liu et al. 2025,
"Prefix Grouper: Efficient GRPO Training through Shared-Prefix Forward", arXiv:2506.05433): its mask
allows exactly the pairs of the split attention's dense masks, and, forced in eager mode on the
CPU, it gives the SDPA path's outputs and gradients, on small tensors and on the tiny model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn.attention.flex_attention import create_mask
from training.test_shared_prefix import _grads
from training.test_trainer import make_trainer

from grpozoo.training import prefix_attention
from grpozoo.training.forward import shared_prefix_logprobs
from grpozoo.training.prefix_attention import (
    attention_kernel,
    flex_mask_mod,
    pack_groups,
    shared_prefix_attention,
)

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


@pytest.fixture
def flex_backward_on_cpu(monkeypatch):
    """PyTorch's flex_attention refuses, on the CPU, inputs that require gradients: a check at its
    entry (its eager implementation has a backward). The check is passed here so that the eager
    backward can be compared with SDPA's; every other input check still runs."""
    import torch.nn.attention.flex_attention as flex

    original = flex._validate_device
    monkeypatch.setattr(flex, "_validate_device", lambda q, k, v: original(q.detach(), k.detach(), v.detach()))


def make_batch(prompt_lengths, row_groups, completion_lengths, seed=0):
    """The fields :func:`pack_groups` reads: row ``r`` has the (left-padded) prompt of group
    ``row_groups[r]``, of ``prompt_lengths[group]`` tokens, and ``completion_lengths[r]``
    (right-padded) completion tokens."""
    generator = torch.Generator().manual_seed(seed)
    width, length, rows = max(prompt_lengths), max(completion_lengths), len(row_groups)
    prompt_ids = torch.zeros(rows, width, dtype=torch.long)
    prompt_mask = torch.zeros(rows, width, dtype=torch.long)
    for row, group in enumerate(row_groups):
        n = prompt_lengths[group]
        prompt_ids[row, width - n:] = 100 * (group + 1) + torch.arange(n)  # distinct per group
        prompt_mask[row, width - n:] = 1
    completion_mask = (torch.arange(length)[None] < torch.tensor(completion_lengths)[:, None]).long()
    completion_ids = torch.randint(1, 50, (rows, length), generator=generator) * completion_mask
    return SimpleNamespace(prompt_ids=prompt_ids, prompt_mask=prompt_mask, completion_ids=completion_ids,
                           completion_mask=completion_mask)


# three groups with prompts of 3, 1 and 4 tokens; group 1 has a single row; rows interleaved, with
# completions of 1 to 5 tokens (a completion of 1 token has no inputs)
MIXED = make_batch([3, 1, 4], [0, 2, 1, 0, 2, 0, 2], [5, 1, 3, 1, 4, 2, 5])


@st.composite
def batches(draw):
    groups = draw(st.integers(1, 4))
    prompt_lengths = draw(st.lists(st.integers(1, 5), min_size=groups, max_size=groups))
    rows_per_group = draw(st.lists(st.integers(1, 3), min_size=groups, max_size=groups))
    row_groups = [g for g, n in enumerate(rows_per_group) for _ in range(n)]
    row_groups = draw(st.permutations(row_groups))
    completion_lengths = draw(st.lists(st.integers(1, 5), min_size=len(row_groups), max_size=len(row_groups)))
    return make_batch(prompt_lengths, row_groups, completion_lengths, seed=draw(st.integers(0, 100)))


def dense_from_split_masks(layout) -> torch.Tensor:
    """``[N, N]`` (query, key): the pairs ``prompt_allowed`` and ``row_allowed`` allow, at valid
    query slots, in packed indices."""
    n = len(layout.ids)
    dense = torch.zeros(n, n, dtype=torch.bool)
    valid = layout.prompt_allowed & layout.prompt_valid[:, :, None] & layout.prompt_valid[:, None, :]
    g, i, j = valid.nonzero(as_tuple=True)
    dense[layout.prompt_tokens[g, i], layout.prompt_tokens[g, j]] = True
    r, s, m = (layout.row_allowed & layout.row_valid[:, :, None]).nonzero(as_tuple=True)
    dense[layout.row_tokens[r, s], layout.row_keys[r, m]] = True
    return dense


def dense_from_mask_mod(layout) -> torch.Tensor:
    n = len(layout.ids)
    return create_mask(flex_mask_mod(layout), None, None, n, n, device="cpu")[0, 0]


def test_per_token_fields_and_mask_of_a_small_layout():
    """Two groups (prompts of 1 and 2 tokens) with completions of 3, 1 and 2 tokens, packed as
    ``[5 | 11 12 | 7 8 | 31]``: the mask written out by hand."""
    batch = SimpleNamespace(
        prompt_ids=torch.tensor([[0, 5], [7, 8], [0, 5]]),
        prompt_mask=torch.tensor([[0, 1], [1, 1], [0, 1]]),
        completion_ids=torch.tensor([[11, 12, 13], [21, 0, 0], [31, 32, 0]]),
        completion_mask=torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]]),
    )
    layout = pack_groups(batch)
    assert layout.token_group.tolist() == [0, 0, 0, 1, 1, 0]
    assert layout.token_row.tolist() == [-1, 0, 0, -1, -1, 2]
    assert layout.token_step.tolist() == [0, 0, 1, 0, 1, 0]
    allowed = [  # query -> keys
        [0],
        [0, 1],
        [0, 1, 2],
        [3],
        [3, 4],
        [0, 5],  # row 2: its group's prompt and itself, not row 0
    ]
    expected = torch.zeros(6, 6, dtype=torch.bool)
    for q, keys in enumerate(allowed):
        expected[q, keys] = True
    assert torch.equal(dense_from_mask_mod(layout), expected)
    assert torch.equal(dense_from_split_masks(layout), expected)
    moved = layout.to("cpu")
    assert torch.equal(moved.token_row, layout.token_row) and moved.block_mask is None


@settings(max_examples=60, deadline=None)
@given(batches())
def test_mask_mod_allows_exactly_the_pairs_of_the_dense_masks(batch):
    layout = pack_groups(batch)
    # every packed token is the query of exactly one valid slot, so the dense masks cover every row
    slots = torch.cat([layout.prompt_tokens[layout.prompt_valid], layout.row_tokens[layout.row_valid]])
    assert sorted(slots.tolist()) == list(range(len(layout.ids)))
    assert torch.equal(dense_from_mask_mod(layout), dense_from_split_masks(layout))


def test_mask_mod_on_a_mixed_batch():
    layout = pack_groups(MIXED)
    assert layout.prompt_valid.sum(1).unique().numel() == 3  # prompts of different lengths
    assert (torch.bincount(layout.group_of_row) == 1).any()  # a row with a prompt of its own
    assert torch.equal(dense_from_mask_mod(layout), dense_from_split_masks(layout))


def _attention(kernel, layout, query, key, value, weights, scaling, dropout=0.0):
    """Output of :func:`shared_prefix_attention` under ``kernel`` and the gradients of a weighted
    sum of it with respect to ``query``, ``key``, ``value``."""
    query, key, value = (x.clone().requires_grad_() for x in (query, key, value))
    with attention_kernel(kernel):
        out, _ = shared_prefix_attention(None, query, key, value, None, scaling=scaling, dropout=dropout,
                                         shared_prefix=layout)
    (out * weights).sum().backward()
    return out.detach(), query.grad, key.grad, value.grad


def _inputs(layout, heads, kv_heads, dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n = len(layout.ids)
    query = torch.randn(1, heads, n, dim, generator=generator)
    key = torch.randn(1, kv_heads, n, dim, generator=generator)
    value = torch.randn(1, kv_heads, n, dim, generator=generator)
    weights = torch.randn(1, n, heads, dim, generator=generator)
    return query, key, value, weights


def _assert_flex_equals_sdpa(layout, heads, kv_heads, scaling):
    query, key, value, weights = _inputs(layout, heads, kv_heads)
    sdpa = _attention("sdpa", layout, query, key, value, weights, scaling)
    assert layout.block_mask is None  # the SDPA path builds no block mask
    flex = _attention("flex", layout, query, key, value, weights, scaling)
    assert layout.block_mask is not None  # the flex path ran
    for name, a, b in zip(["output", "query grad", "key grad", "value grad"], flex, sdpa, strict=True):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("scaling", [None, 0.37])
@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_flex_path_equals_the_sdpa_path_on_small_tensors(flex_backward_on_cpu, kv_heads, scaling):
    _assert_flex_equals_sdpa(pack_groups(MIXED), 4, kv_heads, scaling)


# the fixture only lifts PyTorch's check: it may stay for every drawn example
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches(), st.sampled_from([(4, 2), (2, 2), (3, 1)]), st.sampled_from([None, 0.5]))
def test_flex_path_equals_the_sdpa_path_on_drawn_batches(flex_backward_on_cpu, batch, heads, scaling):
    _assert_flex_equals_sdpa(pack_groups(batch), *heads, scaling)


def test_the_cpu_takes_the_sdpa_path_by_default_and_dropout_always():
    layout = pack_groups(MIXED)
    query, key, value, _ = _inputs(layout, 4, 2)
    with torch.no_grad():
        default, _ = shared_prefix_attention(None, query, key, value, None, shared_prefix=layout)
        assert layout.block_mask is None
        with attention_kernel("sdpa"):
            sdpa, _ = shared_prefix_attention(None, query, key, value, None, shared_prefix=layout)
        torch.testing.assert_close(default, sdpa, rtol=0, atol=0)
        # flex has no dropout: asked for, the forced flex path gives way to SDPA (same draws)
        torch.manual_seed(5)
        with attention_kernel("sdpa"):
            dropped, _ = shared_prefix_attention(None, query, key, value, None, dropout=0.5, shared_prefix=layout)
        torch.manual_seed(5)
        with attention_kernel("flex"):
            forced, _ = shared_prefix_attention(None, query, key, value, None, dropout=0.5, shared_prefix=layout)
        assert layout.block_mask is None
        torch.testing.assert_close(forced, dropped, rtol=0, atol=0)
        assert not torch.allclose(dropped, sdpa)  # dropout did act


def test_attention_kernel_restores_the_previous_choice():
    with attention_kernel("flex"):
        with attention_kernel("sdpa"):
            assert prefix_attention._kernel == "sdpa"
        assert prefix_attention._kernel == "flex"
        with pytest.raises(ValueError, match="attention kernel"):
            with attention_kernel("fused"):  # type: ignore[arg-type]
                pass
        assert prefix_attention._kernel == "flex"
    assert prefix_attention._kernel == "auto"


@pytest.mark.parametrize("lora", [True, False])
def test_flex_path_equals_the_sdpa_path_on_the_tiny_model(tiny_overrides, lora, flex_backward_on_cpu, monkeypatch):
    trainer = make_trainer(
        tiny_overrides,
        f"model.lora.enabled={lora}",
        "rollout.prompts_per_step=3",
        "rollout.group_size=3",
        "rollout.max_new_tokens=8",
        "task.params.max_digits=3",
    )
    torch.manual_seed(0)
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(3), trainer.step)
    # all rows of two groups and one of the third (a prompt of its own), interleaved
    groups = pack_groups(batch).group_of_row
    keep = [r for r in range(batch.batch_size) if groups[r] != 2] + [int((groups == 2).nonzero()[0])]
    batch = batch.select([keep[i] for i in (0, 6, 3, 1, 4, 2, 5)])
    lengths = torch.tensor([8, 1, 5, 3, 1, 7, 2])  # a completion of 1 token has no inputs
    batch.completion_mask = (torch.arange(8)[None] < lengths[:, None]).long()
    batch.completion_ids = batch.completion_ids.masked_fill(batch.completion_mask == 0, trainer.tokenizer.pad_token_id)
    layout = pack_groups(batch)
    assert layout.prompt_valid.sum(1).unique().numel() > 1, "prompts should differ in length"
    assert (torch.bincount(layout.group_of_row) == 1).any() and (torch.bincount(layout.group_of_row) > 1).any()

    flex_calls = []
    original = prefix_attention._flex_attend
    monkeypatch.setattr(prefix_attention, "_flex_attend", lambda *a, **k: flex_calls.append(1) or original(*a, **k))
    with attention_kernel("sdpa"):
        sdpa_logp, sdpa_entropy, sdpa = _grads(trainer.model, shared_prefix_logprobs, batch)
    assert not flex_calls
    with attention_kernel("flex"):
        flex_logp, flex_entropy, flex = _grads(trainer.model, shared_prefix_logprobs, batch)
    assert len(flex_calls) == 2  # both layers took the flex path
    torch.testing.assert_close(flex_logp, sdpa_logp, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(flex_entropy, sdpa_entropy, rtol=1e-5, atol=1e-5)
    assert sdpa.keys() == flex.keys() and sdpa
    for name in sdpa:
        torch.testing.assert_close(flex[name], sdpa[name], rtol=1e-5, atol=1e-5, msg=name)
