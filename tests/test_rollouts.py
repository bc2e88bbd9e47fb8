"""Rollouts.select slices every field alike."""

import torch

from grpozoo.rollouts import Rollouts


def _rollouts():
    b = 4
    return Rollouts(
        prompt_ids=torch.arange(b * 2).view(b, 2),
        prompt_mask=torch.tensor([[0, 1], [1, 1], [0, 1], [1, 1]]),
        completion_ids=torch.arange(100, 100 + b * 3).view(b, 3),
        completion_mask=torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]]),
        group_ids=torch.tensor([0, 0, 1, 1]),
        sampling_logprobs=-torch.arange(b * 3, dtype=torch.float32).view(b, 3),
        truncated=torch.tensor([False, False, True, False]),
        prompts=["p0", "p1", "p2", "p3"],
        completions=["c0", "c1", "c2", "c3"],
        examples=[{"answer": str(i)} for i in range(b)],
        rewards=torch.tensor([0.0, 1.0, 2.0, 3.0]),
        reward_parts={"task": torch.tensor([10.0, 11.0, 12.0, 13.0]), "format": torch.tensor([0.0, 1.0, 0.0, 1.0])},
        advantages=torch.tensor([[0.0, 0.1, 0.2], [1.0, 1.1, 1.2], [2.0, 2.1, 2.2], [3.0, 3.1, 3.2]]),
        old_logprobs=None,
        ref_logprobs=None,
    )


def _check_rows(sub, full, rows):
    index = torch.tensor(rows)
    for name in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "group_ids",
                 "sampling_logprobs", "truncated", "rewards", "advantages"):
        assert torch.equal(getattr(sub, name), getattr(full, name)[index]), name
    assert sub.prompts == [full.prompts[i] for i in rows]
    assert sub.completions == [full.completions[i] for i in rows]
    assert sub.examples == [full.examples[i] for i in rows]
    assert set(sub.reward_parts) == {"task", "format"}
    for key, value in full.reward_parts.items():
        assert torch.equal(sub.reward_parts[key], value[index])
    assert sub.batch_size == len(rows)


def test_select_index_tensor_reorders_every_field():
    full = _rollouts()
    sub = full.select(torch.tensor([3, 1]))
    _check_rows(sub, full, [3, 1])
    assert sub.prompts == ["p3", "p1"]
    assert torch.equal(sub.reward_parts["task"], torch.tensor([13.0, 11.0]))
    assert torch.equal(sub.completion_lengths, torch.tensor([2, 1]))
    assert sub.old_logprobs is None and sub.ref_logprobs is None and sub.task_scores is None


def test_select_slice():
    full = _rollouts()
    _check_rows(full.select(slice(1, 3)), full, [1, 2])
    _check_rows(full.select(slice(None, None, 2)), full, [0, 2])


def test_select_with_repeats_and_empty():
    full = _rollouts()
    _check_rows(full.select(torch.tensor([2, 2, 0])), full, [2, 2, 0])
    empty = full.select(torch.tensor([], dtype=torch.long))
    assert empty.batch_size == 0
    assert empty.prompts == [] and empty.reward_parts["task"].shape == (0,)
    assert empty.completion_ids.shape == (0, 3)


def test_select_leaves_the_original_untouched():
    full = _rollouts()
    sub = full.select(torch.tensor([0, 1]))
    sub.rewards[0] = 99.0
    sub.prompts.append("extra")
    sub.reward_parts["task"][0] = -1.0
    assert full.rewards[0].item() == 0.0
    assert full.prompts == ["p0", "p1", "p2", "p3"]
    assert full.reward_parts["task"][0].item() == 10.0
    assert full.batch_size == 4


def test_completion_lengths():
    assert torch.equal(_rollouts().completion_lengths, torch.tensor([2, 1, 3, 2]))


def test_select_with_a_boolean_mask_keeps_the_true_rows():
    full = _rollouts()
    mask = torch.zeros(full.batch_size, dtype=torch.bool)
    mask[[1, 3]] = True
    _check_rows(full.select(mask), full, [1, 3])
