"""PS-GRPO's group similarity reward across paraphrases."""

import math

import pytest
import torch

from grpozoo.rewards.group_similarity import (
    cross_paraphrase_similarity,
    group_similarity_reward,
    word_jaccard,
)


def test_identical_completions_all_get_the_largest_similarity():
    completions = ["Paris is the capital."] * 6
    rewards = group_similarity_reward(
        completions, ["q"] * 6, group_id=[0, 0, 1, 1, 2, 2], query_id=["a"] * 6,
    )
    assert rewards == [1.0] * 6


def test_a_completion_is_compared_only_with_the_other_paraphrases_of_its_query():
    sim = torch.tensor([
        [1.0, 0.9, 0.2, 0.4, 0.0],
        [0.9, 1.0, 0.6, 0.8, 0.0],
        [0.2, 0.6, 1.0, 0.5, 0.0],
        [0.4, 0.8, 0.5, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
    ])
    paraphrase = torch.tensor([0, 0, 1, 1, 2])
    query = torch.tensor([0, 0, 0, 0, 1])
    out = cross_paraphrase_similarity(sim, paraphrase, query)
    assert torch.allclose(out[:4], torch.tensor([0.3, 0.7, 0.4, 0.6]))
    assert math.isnan(float(out[4]))  # alone: nothing to compare with, no opinion


def test_the_rewards_are_invariant_to_permuting_the_paraphrases():
    generator = torch.Generator().manual_seed(0)
    sim = torch.rand(6, 6, generator=generator)
    sim = (sim + sim.T) / 2
    paraphrase, query = torch.tensor([0, 0, 1, 1, 2, 2]), torch.zeros(6, dtype=torch.long)
    base = cross_paraphrase_similarity(sim, paraphrase, query)
    relabelled = cross_paraphrase_similarity(sim, torch.tensor([2, 2, 0, 0, 1, 1]), query)
    assert torch.allclose(base, relabelled)
    perm = torch.tensor([4, 5, 0, 1, 2, 3])  # reorder the rows paraphrase by paraphrase
    moved = cross_paraphrase_similarity(sim[perm][:, perm], paraphrase[perm], query)
    assert torch.allclose(moved, base[perm])


def test_the_subsampled_approximation_compares_with_at_most_that_many_and_is_seeded():
    sim = torch.arange(36, dtype=torch.float32).reshape(6, 6)
    paraphrase, query = torch.tensor([0, 1, 1, 2, 2, 2]), torch.zeros(6, dtype=torch.long)
    a = cross_paraphrase_similarity(sim, paraphrase, query, 1, torch.Generator().manual_seed(3))
    b = cross_paraphrase_similarity(sim, paraphrase, query, 1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    for i in range(6):  # one comparison: the reward is one of the other paraphrases' similarities
        others = [float(sim[i, j]) for j in range(6) if paraphrase[j] != paraphrase[i]]
        assert float(a[i]) in others


def test_without_a_query_column_each_group_compares_within_itself_and_copying_one_string_pays_only_if_shared():
    rewards = group_similarity_reward(["the answer is 4", "the answer is 4", "banana"], ["q"] * 3, group_id=[0, 0, 0])
    assert rewards[0] == pytest.approx((1.0 + word_jaccard("the answer is 4", "banana")) / 2)
    assert rewards[2] == pytest.approx(0.0)


def test_the_answer_metric_needs_the_extracted_answers_and_compares_them():
    rewards = group_similarity_reward(
        ["x", "y", "z"], ["q"] * 3, metric="answer", group_id=[0, 1, 1], query_id=["a"] * 3,
        extracted_answer=["1/2", "0.5", None],
    )
    assert rewards == [pytest.approx(0.5), 1.0, 0.0]
    with pytest.raises(ValueError, match="extracted_answer"):
        group_similarity_reward(["x"], ["q"], metric="answer", group_id=[0])


def test_the_trainers_columns_reach_it_and_each_step_draws_its_own_comparisons(tiny_overrides):
    from training.test_trainer import make_trainer

    trainer = make_trainer(tiny_overrides, "recipe=ps_grpo", "rewards=[{name: group_similarity, params: {max_comparisons: 1}}]")
    metrics = trainer.train_step()
    assert 0.0 <= metrics["reward/group_similarity"] <= 1.0
    completions = ["a b", "a c", "b c", "a b c"]
    draws = {
        tuple(group_similarity_reward(completions, ["q"] * 4, max_comparisons=1, group_id=[0, 0, 1, 1],
                                      query_id=["x"] * 4, step=[s] * 4))
        for s in range(1, 9)
    }
    assert len(draws) > 1  # the subsample is drawn anew at each step
