"""Completion masks and truncation flags from generated ids."""

import torch

from grpozoo.generation.hf import completion_mask_and_truncation

EOS, PAD = 2, 0


def test_masks_by_hand():
    ids = torch.tensor(
        [
            [5, 6, EOS, PAD, PAD],  # EOS in the middle: mask up to and including it
            [EOS, PAD, PAD, PAD, PAD],  # EOS first: only the EOS token counts
            [5, 6, 7, 8, 9],  # no EOS: the budget ran out
            [5, 6, 7, 8, EOS],  # EOS on the last token: complete, not truncated
            [5, EOS, 7, EOS, PAD],  # only the first EOS ends the completion
        ]
    )
    mask, truncated = completion_mask_and_truncation(ids, [EOS])
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0],
            [1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1],
            [1, 1, 0, 0, 0],
        ]
    )
    assert torch.equal(mask, expected)
    assert mask.dtype == torch.long
    assert torch.equal(truncated, torch.tensor([False, False, True, False, False]))


def test_several_eos_ids():
    # e.g. <|im_end|> and <|endoftext|>: whichever comes first ends the completion
    ids = torch.tensor([[5, 7, 6, 3], [5, 3, 7, 9], [5, 6, 8, 9]])
    mask, truncated = completion_mask_and_truncation(ids, [3, 7])
    assert torch.equal(mask, torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]))
    assert torch.equal(truncated, torch.tensor([False, False, True]))


def test_pad_equal_to_eos():
    # tokenizers whose pad token is the EOS token: padding after the EOS never extends the mask
    ids = torch.tensor([[4, EOS, EOS, EOS], [4, 4, 4, 4]])
    mask, truncated = completion_mask_and_truncation(ids, [EOS])
    assert torch.equal(mask, torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]))
    assert torch.equal(truncated, torch.tensor([False, True]))


def test_single_token_budget():
    mask, truncated = completion_mask_and_truncation(torch.tensor([[EOS], [9]]), [EOS])
    assert torch.equal(mask, torch.tensor([[1], [1]]))
    assert torch.equal(truncated, torch.tensor([False, True]))
