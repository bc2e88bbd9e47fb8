"""AEPO's REINFORCE regulariser toward a tempered policy (Wang et al. 2025, arXiv:2510.08141)."""

import math

import pytest
import torch
from factories import make_rollouts

from grpozoo.algos.aggregation import BatchTotals
from grpozoo.algos.losses import batch_statistics
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.algos.losses.entropy_control import aepo_loss, aepo_temperature, tempered_token_weights
from grpozoo.registry import aggregations


def _entropy(logits: torch.Tensor) -> float:
    p = torch.softmax(logits, dim=0)
    return float(-(p * p.log()).sum())


def _toy_run(logits: torch.Tensor, target: float, steps: int = 300, batch: int = 2048) -> list[float]:
    """A categorical policy trained with the AEPO loss alone (every reward 1, so GRPO's advantages are
    0): each step samples single-token completions, hands the loss their sampling log-probs and the
    exact entropy, and takes an SGD step on the logits. Returns the entropy after every step."""
    logits = logits.clone().requires_grad_(True)
    generator = torch.Generator().manual_seed(0)
    history = []
    for _ in range(steps):
        with torch.no_grad():
            p = torch.softmax(logits, dim=0)
            tokens = torch.multinomial(p, batch, replacement=True, generator=generator)
            sampled = p.log()[tokens].unsqueeze(1)
            entropy = -(p * p.log()).sum()
        ctx = make_rollouts([1.0] * batch, num_tokens=1, sampling_logprobs=sampled,
                            entropies=entropy.expand(batch, 1).clone())
        logp = torch.log_softmax(logits, dim=0)[tokens].unsqueeze(1)
        mask = torch.ones(batch, 1)
        advantages = torch.zeros(batch)
        loss, _ = aepo_loss(logp, logp.detach(), advantages, mask, ctx, coef=1.0, target_entropy=target,
                            t_high=1.5, t_low=0.67)
        total = aggregations.get("token_mean")(loss, mask, ctx.group_ids, BatchTotals.of(mask, 1, ctx.group_ids))
        (grad,) = torch.autograd.grad(total, logits)
        with torch.no_grad():
            logits -= 0.5 * grad
        history.append(_entropy(logits.detach()))
    return history


@pytest.mark.parametrize("start", ["above", "below"])
def test_aepo_drives_a_toy_policy_entropy_to_the_target_from_above_and_below(start):
    target = 1.0  # nats; log 6 ≈ 1.79 is the most a 6-way policy can have
    logits = torch.linspace(0.0, 0.6, 6) if start == "above" else torch.tensor([4.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    first = _entropy(logits)
    assert (first > target + 0.4) if start == "above" else (first < target - 0.4)
    history = _toy_run(logits, target)
    late = history[-50:]
    assert abs(sum(late) / len(late) - target) < 0.1
    assert max(abs(h - target) for h in late) < 0.2


def test_aepo_with_zero_coefficient_is_the_grpo_loss():
    torch.manual_seed(0)
    ctx = make_rollouts([1.0, 0.0, 1.0], lengths=[3, 2, 3], sampling_logprobs=-torch.rand(3, 3))
    logp = ctx.sampling_logprobs + 0.3 * torch.randn(3, 3)
    mask = ctx.completion_mask.float()
    advantages = torch.tensor([0.7, -1.2, 0.4])
    base, base_diagnostics = ppo_clip_loss(logp, ctx.sampling_logprobs, advantages, mask, ctx)
    loss, diagnostics = aepo_loss(logp, ctx.sampling_logprobs, advantages, mask, ctx, coef=0.0)
    assert torch.equal(loss, base)
    assert diagnostics.keys() == base_diagnostics.keys()
    regularised, _ = aepo_loss(logp, ctx.sampling_logprobs, advantages, mask, ctx, coef=0.5)
    assert not torch.equal(regularised, base)


def test_aepo_temperature_switches_on_the_whole_batch_entropy():
    assert aepo_temperature(torch.tensor(0.3), 0.5, 1.2, 0.8) == pytest.approx(1.2)
    assert aepo_temperature(torch.tensor(0.7), 0.5, 1.2, 0.8) == pytest.approx(0.8)
    ctx = make_rollouts([1.0, 1.0], num_tokens=2, entropies=torch.tensor([[0.2, 0.2], [0.9, 0.9]]))
    stats = batch_statistics("aepo", {"target_entropy": 0.5}, torch.zeros(2), ctx.completion_mask.float(), ctx)
    assert float(stats["aepo_entropy"]) == pytest.approx(0.55)
    assert float(stats["aepo_temperature"]) == pytest.approx(0.8)


def test_tempered_weights_favour_rare_tokens_above_temperature_one():
    logprobs = torch.tensor([[-0.1, -3.0]])
    entropies = torch.tensor([[1.0, 1.0]])
    hot = tempered_token_weights(logprobs, entropies, 2.0, max_log_weight=5.0)
    cold = tempered_token_weights(logprobs, entropies, 0.5, max_log_weight=5.0)
    assert hot[0, 1] > 1 > hot[0, 0]
    assert cold[0, 0] > 1 > cold[0, 1]
    assert hot[0, 1].item() == pytest.approx(math.exp(-0.5 * (-3.0 + 1.0)))
    assert torch.allclose(tempered_token_weights(logprobs, entropies, 1.0, 5.0), torch.ones(1, 2, dtype=torch.float64))
