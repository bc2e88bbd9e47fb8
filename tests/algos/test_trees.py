"""TEMPO prefix-tree advantages (Tran, Yao & Yu 2025) and segment SPO, chain variant (Guo et al.
2025), by hand."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.advantages.trees import (
    branch_deltas,
    prefix_tree,
    segment_advantages,
    segment_spo_advantage,
    spo_chain_boundaries,
    tempo_advantage,
)
from grpozoo.registry import advantages
from tests.factories import make_rollouts

NAN = math.nan


def test_estimators_are_registered():
    assert advantages.get("tempo") is tempo_advantage
    assert advantages.get("segment_spo") is segment_spo_advantage
    assert advantages.spec("segment_spo").needs == {"segment_values"}
    assert advantages.spec("tempo").needs == frozenset()


# ---------------------------------------------------------------- TEMPO


def test_root_value_is_the_mean_reward():
    tree = prefix_tree([[1, 2], [1, 3], [4]], [1.0, 0.0, 0.5])
    assert tree.values[0] == 0.5
    assert tree.values[tree.paths[0][1]] == 0.5  # prefix [1]: mean(1, 0)
    assert tree.children[0] == 2 and tree.children[tree.paths[0][1]] == 2


def test_distinct_first_tokens_branch_only_at_the_root():
    sequences = [[1, 5, 6], [2, 5, 6], [3, 5]]
    values = [1.0, 0.0, 0.0]
    deltas = branch_deltas(prefix_tree(sequences, values))
    # t=0: V(s_1) - V(root) = v_i - 1/3; later tokens are on single-child chains: 0
    assert deltas == [
        pytest.approx([2 / 3, 0.0, 0.0]),
        pytest.approx([-1 / 3, 0.0, 0.0]),
        pytest.approx([-1 / 3, 0.0]),
    ]


def test_identical_responses_give_grpo():
    ids = torch.tensor([[5, 6, 7]] * 3)
    ctx = make_rollouts([1.0, 0.0, 0.0], num_tokens=3, completion_ids=ids)
    out = tempo_advantage(ctx.rewards, ctx.group_ids, ctx)
    torch.testing.assert_close(out, grpo_advantage(ctx.rewards, ctx.group_ids).unsqueeze(1).expand(3, 3))


def test_tempo_by_hand():
    # group rewards [1, 0, 1]: mean 2/3, unbiased std sqrt(1/3): A = [a, -2a, a], a = (1/3)/(0.57735 + 1e-4)
    a = (1 / 3) / (math.sqrt(1 / 3) + 1e-4)
    ids = torch.tensor([[1, 2, 3, 0], [1, 2, 4, 5], [7, 8, 0, 0]])
    ctx = make_rollouts([1.0, 0.0, 1.0], lengths=[3, 4, 2], completion_ids=ids)
    out = tempo_advantage(ctx.rewards, ctx.group_ids, ctx)
    # normalised node values: root 0 (branch: 1 | 7), [1] = mean(a, -2a) = -a/2, [1,2] = -a/2
    # (branch: 3 | 4), [1,2,3] = a, [1,2,4] = -2a, [7] = a
    expected = torch.tensor(
        [
            [a - a / 2, a, a + 1.5 * a, 0.0],
            [-2 * a - a / 2, -2 * a, -2 * a - 1.5 * a, -2 * a],
            [a + a, a, 0.0, 0.0],
        ]
    )
    torch.testing.assert_close(out, expected)


@settings(max_examples=50, deadline=None)
@given(
    sequences=st.lists(st.lists(st.integers(0, 2), min_size=4, max_size=4), min_size=1, max_size=6),
    rewards=st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6),
)
def test_deltas_telescope_to_leaf_minus_root(sequences, rewards):
    # equal lengths: no response ends inside another's path, so non-branch steps keep V
    tree = prefix_tree(sequences, rewards[: len(sequences)])
    mean_reward = sum(rewards[: len(sequences)]) / len(sequences)
    assert math.isclose(tree.values[0], mean_reward, abs_tol=1e-12)
    for path, deltas in zip(tree.paths, branch_deltas(tree), strict=True):
        assert math.isclose(sum(deltas), tree.values[path[-1]] - tree.values[0], abs_tol=1e-9)


def test_tempo_padding_and_empty_rows_are_zero_and_groups_are_separate():
    ids = torch.tensor([[1, 2, 0], [1, 3, 0], [1, 2, 9], [4, 0, 0]])
    ctx = make_rollouts(
        [1.0, 0.0, 1.0, 0.0], group_ids=[0, 0, 1, 1], lengths=[2, 2, 3, 0], completion_ids=ids
    )
    out = tempo_advantage(ctx.rewards, ctx.group_ids, ctx)
    assert torch.isfinite(out).all()
    assert out[0, 2] == 0 and out[1, 2] == 0 and (out[3] == 0).all()
    # group 1: the empty row ends at the root, so the root has a single child and no delta
    torch.testing.assert_close(out[2], grpo_advantage(ctx.rewards, ctx.group_ids)[2].expand(3))


# ---------------------------------------------------------------- segment SPO (chain)

# row 0: 6 tokens, cutpoints (log-prob < log 0.9) at tokens 0, 2, 3, 5; row 1: 3 tokens, all cutpoints
LOGPROBS = torch.tensor([[-1.0, -0.01, -2.0, -3.0, -0.01, -2.0], [-1.0, -1.0, -1.0, 0.0, 0.0, 0.0]])


def _segment_ctx(values=None):
    return make_rollouts([1.0, 0.0], lengths=[6, 3], sampling_logprobs=LOGPROBS, segment_values=values)


def test_chain_boundaries_every_second_cutpoint():
    out = spo_chain_boundaries(LOGPROBS, _segment_ctx().completion_mask, math.log(0.9), every=2)
    # row 0: 0, after the 2nd cutpoint (token 2) -> 3, after the 4th (token 5) -> 6 = L
    # row 1: 0, after the 2nd cutpoint (token 1) -> 2, L = 3
    expected = torch.tensor([[1, 0, 0, 1, 0, 0, 1], [1, 0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(out, expected)
    attached = advantages.spec("segment_spo").segment_boundaries(_segment_ctx(), every=2, probability_mask=True)
    assert torch.equal(attached, expected)


def test_empty_row_has_one_boundary_at_zero():
    mask = torch.tensor([[0, 0, 0]])
    out = spo_chain_boundaries(torch.full((1, 3), -5.0), mask, -0.1, every=1)
    assert out.tolist() == [[True, False, False, False]]


def _values():
    v = torch.full((2, 7), NAN)
    v[0, 0], v[0, 3] = 0.4, 0.7  # V(prompt) = 0.4, V(after 3 tokens) = 0.7, end = reward 1
    v[1, 0], v[1, 2] = 0.5, 0.2  # V(prompt) = 0.5, V(after 2 tokens) = 0.2, end = reward 0
    return v


def test_segment_advantages_telescope_to_reward_minus_start_value():
    ctx = _segment_ctx(_values())
    out = segment_spo_advantage(ctx.rewards, ctx.group_ids, ctx, every=2, probability_mask=False)
    # row 0: segments [0,3) and [3,6): 0.7 - 0.4, 1 - 0.7; row 1: [0,2) 0.2 - 0.5, [2,3) 0 - 0.2
    expected = torch.tensor([[0.3, 0.3, 0.3, 0.3, 0.3, 0.3], [-0.3, -0.3, -0.2, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(out, expected)
    # one value per segment (its first token) sums to r - V(s_0)
    torch.testing.assert_close(out[0, 0] + out[0, 3], torch.tensor(1.0 - 0.4))
    torch.testing.assert_close(out[1, 0] + out[1, 2], torch.tensor(0.0 - 0.5))


def test_probability_mask_zeroes_high_probability_tokens():
    ctx = _segment_ctx(_values())
    out = segment_spo_advantage(ctx.rewards, ctx.group_ids, ctx, every=2, probability_mask=True)
    expected = torch.tensor([[0.3, 0.0, 0.3, 0.3, 0.0, 0.3], [-0.3, -0.3, -0.2, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(out, expected)


def test_all_equal_values_give_zero():
    values = torch.full((2, 7), NAN)
    values[0, [0, 3, 6]] = 1.0  # every value equals the reward of its row
    values[1, [0, 2, 3]] = 0.0
    ctx = _segment_ctx(values)
    out = segment_spo_advantage(ctx.rewards, ctx.group_ids, ctx, every=2, probability_mask=False)
    assert torch.equal(out, torch.zeros(2, 6))


def test_without_values_it_says_what_is_missing():
    ctx = _segment_ctx()
    ctx.segment_values = None
    with pytest.raises(ValueError, match="segment_values"):
        segment_spo_advantage(ctx.rewards, ctx.group_ids, ctx, probability_mask=False)


def test_segment_advantages_ignore_nan_off_boundaries():
    values = torch.tensor([[0.0, NAN, 2.0, NAN]])
    boundaries = torch.tensor([[True, False, True, False]])
    out = segment_advantages(values, boundaries, torch.tensor([[1, 1, 0]]))
    torch.testing.assert_close(out, torch.tensor([[2.0, 2.0, 0.0]], dtype=torch.float64))
