"""CAPO's curvature-aware token mask (Melo, Abate & Gal 2025, arXiv:2510.00819)."""

import torch
from factories import make_rollouts

from grpozoo.algos.aggregation import BatchTotals
from grpozoo.algos.curvature import capo_curvature_mask, logit_fisher_score
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.registry import aggregations


def _batch():
    torch.manual_seed(0)
    logprobs = -torch.rand(4, 5) * 3
    batch = make_rollouts([1.0, 0.0, 1.0, 0.0], lengths=[5, 5, 5, 5], sampling_logprobs=logprobs)
    batch.advantages = torch.tensor([1.0, -1.0, 0.5, -2.0])
    return batch


def test_capo_curvature_removes_exactly_the_requested_top_fraction_by_score():
    batch = _batch()
    score = logit_fisher_score(batch.advantages.unsqueeze(1).expand(4, 5), batch.sampling_logprobs,
                               batch.completion_mask)
    weights = capo_curvature_mask(batch, reject_fraction=0.2)  # 20 tokens -> 4 rejected
    rejected = weights == 0
    assert int(rejected.sum()) == 4
    assert score[rejected].min() > score[~rejected].max()


def test_capo_curvature_with_infinite_threshold_is_the_grpo_loss():
    batch = _batch()
    weights = capo_curvature_mask(batch, threshold=float("inf"))
    assert torch.equal(weights, batch.completion_mask.float())
    logp = batch.sampling_logprobs + 0.1 * torch.randn(4, 5)
    mask = batch.completion_mask.float()
    loss, _ = ppo_clip_loss(logp, batch.sampling_logprobs, batch.advantages, mask, batch)
    totals = BatchTotals.of(mask, 5, batch.group_ids)
    aggregate = aggregations.get("token_mean")
    assert torch.equal(aggregate(loss * weights, mask, batch.group_ids, totals),
                       aggregate(loss, mask, batch.group_ids, totals))
    assert torch.equal(capo_curvature_mask(batch, reject_fraction=0.0), weights)


def test_capo_curvature_sequence_level_mask_is_constant_within_a_sequence():
    batch = _batch()
    weights = capo_curvature_mask(batch, reject_fraction=0.25, level="sequence")
    assert ((weights == weights[:, :1]) | (batch.completion_mask == 0)).all()
    assert int((weights.sum(dim=1) == 0).sum()) == 1  # one of four sequences rejected
    score = logit_fisher_score(batch.advantages.unsqueeze(1).expand(4, 5), batch.sampling_logprobs,
                               batch.completion_mask).sum(dim=1)
    assert int(score.argmax()) == int((weights.sum(dim=1) == 0).nonzero())


def test_capo_curvature_score_is_a_lower_bound_of_the_exact_logit_fisher():
    torch.manual_seed(1)
    for spread in (0.05, 1.0, 20.0):
        pi = torch.distributions.Dirichlet(torch.full((50,), spread, dtype=torch.float64)).sample((64,))
        y = torch.multinomial(pi.float(), 1).squeeze(1)
        p = pi.gather(1, y.unsqueeze(1))
        g = -pi.clone()
        g[torch.arange(64), y] += 1.0  # gradient of log π(y) in the logits, A = 1
        exact = 0.5 * ((pi * g * g).sum(dim=1) - (pi * g).sum(dim=1) ** 2)
        score = logit_fisher_score(torch.ones(64, 1), p.log(), torch.ones(64, 1)).squeeze(1)
        assert (score <= exact * (1 + 1e-9)).all()
    # the bound is tight when the remaining mass is spread thinly
    pi = torch.cat([torch.tensor([0.4], dtype=torch.float64), torch.full((60000,), 0.6 / 60000, dtype=torch.float64)])
    g = -pi.clone()
    g[0] += 1.0
    exact = 0.5 * ((pi * g * g).sum() - (pi * g).sum() ** 2)
    score = logit_fisher_score(torch.ones(1, 1), pi[:1].log().view(1, 1), torch.ones(1, 1))
    assert torch.isclose(score.squeeze(), exact, rtol=1e-3)
