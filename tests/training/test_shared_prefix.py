"""The shared-prefix learning forward (Prefix Grouper, Liu et al. 2025) gives the plain
forward's log-probs, entropies and gradients."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from training.test_trainer import make_trainer

from grpozoo.training import prefix_attention
from grpozoo.training.forward import completion_logprobs, shared_prefix_logprobs
from grpozoo.training.prefix_attention import pack_groups


def _grads(model, forward, batch):
    model.zero_grad(set_to_none=True)
    logp, entropy = forward(model, batch, 0.7, with_entropy=True, entropy_grad=True)
    # a loss that touches every log-prob and entropy with a different weight
    weights = torch.linspace(0.5, 1.5, logp.numel()).view_as(logp)
    ((logp * weights).sum() + 0.1 * entropy.sum()).backward()
    return (
        logp.detach(),
        entropy.detach(),
        {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None},
    )


@pytest.mark.parametrize("lora", [True, False])
def test_shared_prefix_forward_equals_the_plain_forward(tiny_overrides, lora, monkeypatch):
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
    assert batch.prompt_mask.sum(1).unique().numel() > 1, "prompts should differ in length"
    batch = batch.select(torch.randperm(batch.batch_size, generator=torch.Generator().manual_seed(1)))
    # completions of different lengths (the tiny model never stops early): rows end 0-3 tokens sooner
    lengths = 8 - torch.arange(batch.batch_size) % 4
    batch.completion_mask = (torch.arange(8)[None] < lengths[:, None]).long()
    batch.completion_ids = batch.completion_ids.masked_fill(batch.completion_mask == 0, trainer.tokenizer.pad_token_id)
    split_calls = []
    original = prefix_attention.shared_prefix_attention
    monkeypatch.setattr(prefix_attention, "shared_prefix_attention",
                        lambda *a, **k: split_calls.append(1) or original(*a, **k))
    plain_logp, plain_entropy, plain = _grads(trainer.model, completion_logprobs, batch)
    shared_logp, shared_entropy, shared = _grads(trainer.model, shared_prefix_logprobs, batch)
    assert len(split_calls) == 2  # the split attention ran in both layers: not the plain fallback
    torch.testing.assert_close(shared_logp, plain_logp, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(shared_entropy, plain_entropy, rtol=1e-4, atol=1e-5)
    assert plain.keys() == shared.keys() and plain
    for name in plain:
        torch.testing.assert_close(shared[name], plain[name], rtol=1e-3, atol=1e-6, msg=name)


def test_single_token_completions_and_singleton_prompts(tiny_overrides):
    trainer = make_trainer(
        tiny_overrides, "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=1"
    )
    torch.manual_seed(0)
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), trainer.step)
    with torch.no_grad():
        torch.testing.assert_close(
            shared_prefix_logprobs(trainer.model, batch)[0], completion_logprobs(trainer.model, batch)[0]
        )
        one = batch.select([0])
        torch.testing.assert_close(
            shared_prefix_logprobs(trainer.model, one)[0], completion_logprobs(trainer.model, one)[0]
        )


def test_packed_layout():
    """Two groups (prompts of 1 and 2 tokens, left-padded) with completions of 3, 1 and 2 tokens:
    a group's prompt comes before its first row's inputs, rows in batch order."""
    batch = SimpleNamespace(  # the fields the packing reads
        prompt_ids=torch.tensor([[0, 5], [7, 8], [0, 5]]),
        prompt_mask=torch.tensor([[0, 1], [1, 1], [0, 1]]),
        completion_ids=torch.tensor([[11, 12, 13], [21, 0, 0], [31, 32, 0]]),
        completion_mask=torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]]),
    )
    layout = pack_groups(batch)
    # prompt [5], row 0's inputs 11 12, prompt [7 8] (row 1 has no input), row 2's input 31
    assert layout.ids.tolist() == [5, 11, 12, 7, 8, 31]
    assert layout.positions.tolist() == [0, 1, 2, 0, 1, 1]
    assert layout.group_of_row.tolist() == [0, 1, 0]
    assert layout.row_keys[2].tolist() == [0, 0, 5, 0]  # row 2: its prompt [5] (and a pad slot), then 31
    assert layout.prompt_tokens[layout.prompt_valid].tolist() == [0, 3, 4]
    assert layout.row_tokens[layout.row_valid].tolist() == [1, 2, 5]
    assert layout.predictors.tolist() == [[0, 1, 2], [4, 0, 0], [0, 5, 0]]
