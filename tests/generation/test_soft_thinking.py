"""SofT-GRPO's soft-thinking steps (Zheng and Lee 2025, arXiv:2511.06411): τ → 0 recovers Gumbel-max
sampling, the soft embedding lies in the convex hull of the top-k embeddings, and the reparameterised
log-ratio is the Gumbel log-density of the shifted noise."""

from __future__ import annotations

import torch

from grpozoo.generation.soft_thinking import (
    gumbel_max_token,
    gumbel_noise,
    soft_embedding,
    soft_step_log_ratio,
    soft_token_weights,
    top_k_support,
)


def test_tau_to_zero_recovers_gumbel_max_sampling():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 50, generator=gen, dtype=torch.float64)
    noise = gumbel_noise(logits.shape, gen)
    tokens = gumbel_max_token(logits, noise, top_k=5)
    weights = soft_token_weights(logits, noise, tau=1e-4, top_k=5)
    torch.testing.assert_close(weights, torch.nn.functional.one_hot(tokens, 50).double(), atol=1e-6, rtol=0)
    # and Gumbel-max draws follow the top-k renormalised softmax
    many = gumbel_max_token(logits[:1].expand(40_000, 50), gumbel_noise((40_000, 50), gen), top_k=5)
    counts = torch.bincount(many, minlength=50).double() / 40_000
    support = top_k_support(logits[:1], 5)[0]
    expected = torch.softmax(logits[0].masked_fill(~support, float("-inf")), dim=-1)
    torch.testing.assert_close(counts, expected, atol=0.01, rtol=0)


def test_the_soft_embedding_lies_in_the_convex_hull_of_the_top_k_embeddings():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(32, 40, generator=gen, dtype=torch.float64)
    embeddings = torch.randn(40, 8, generator=gen, dtype=torch.float64)
    noise = gumbel_noise(logits.shape, gen)
    for tau in (0.05, 1.0, 10.0):
        weights = soft_token_weights(logits, noise, tau=tau, top_k=4)
        support = top_k_support(logits, 4)
        assert (weights >= 0).all() and (weights[~support] == 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(32, dtype=torch.float64))
        soft = soft_embedding(weights, embeddings)
        # a point is in the hull iff along every direction it is no further than the farthest vertex
        directions = torch.randn(200, 8, generator=gen, dtype=torch.float64)
        along = soft @ directions.T  # [32, 200]
        vertices = (embeddings @ directions.T).unsqueeze(0).expand(32, 40, 200)
        farthest = vertices.masked_fill(~support.unsqueeze(-1), float("-inf")).max(dim=1).values
        nearest = vertices.masked_fill(~support.unsqueeze(-1), float("inf")).min(dim=1).values
        assert (along <= farthest + 1e-9).all() and (along >= nearest - 1e-9).all()


def test_the_log_ratio_is_the_gumbel_density_of_the_shifted_noise():
    gen = torch.Generator().manual_seed(2)
    old = torch.randn(6, 10, generator=gen, dtype=torch.float64)
    new = (old + 0.3 * torch.randn(6, 10, generator=gen, dtype=torch.float64)).requires_grad_(True)
    noise = gumbel_noise(old.shape, gen)
    torch.testing.assert_close(soft_step_log_ratio(old, old, noise, top_k=3), torch.zeros(6, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    ratio = soft_step_log_ratio(new, old, noise, top_k=3)
    gumbel = torch.distributions.Gumbel(0.0, 1.0)
    support = top_k_support(old, 3)
    expected = ((gumbel.log_prob(noise + old - new) - gumbel.log_prob(noise)) * support).sum(-1)
    torch.testing.assert_close(ratio, expected)
    # the same mixture: the shifted noise under the new logits rebuilds the old soft weights
    shifted = noise + old - new.detach()
    torch.testing.assert_close(soft_token_weights(new.detach(), shifted, tau=0.5, top_k=10),
                               soft_token_weights(old, noise, tau=0.5, top_k=10))
    ratio.sum().backward()
    assert new.grad is not None and (new.grad[~support] == 0).all() and new.grad[support].abs().sum() > 0
