"""M-GRPO's hierarchical advantage and trajectory alignment (Hong et al. 2025, arXiv:2511.13288)."""

import pytest
import torch
from factories import make_rollouts

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.advantages.hierarchical import align_trajectories, completion_parts, m_grpo_advantage


def test_alignment_gives_every_rollout_exactly_d_and_keeps_each_when_at_most_d():
    counts = torch.tensor([1, 2, 3, 4, 7, 3])
    for seed in range(20):
        chosen = align_trajectories(counts, 3, torch.Generator().manual_seed(seed))
        for n, picked in zip(counts.tolist(), chosen, strict=True):
            assert len(picked) == 3
            assert ((picked >= 0) & (picked < n)).all()
            if n <= 3:
                assert set(picked.tolist()) == set(range(n))  # every original at least once
            else:
                assert len(set(picked.tolist())) == 3  # dropped ones, never a duplicate
    assert align_trajectories(torch.tensor([0]), 3, torch.Generator())[0].numel() == 0


# row 0: a a t t a a t a  -> sub 1, sub 2, main;  row 1: a t a a -> sub 1, main;  row 2: a a a -> main
MASK = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]])
TOOL = torch.tensor([[0, 0, 1, 1, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]])


def test_completion_parts_number_tool_calling_turns_and_the_final_main_turn():
    parts = completion_parts(MASK, TOOL)
    assert parts.tolist() == [
        [1, 1, -1, -1, 2, 2, -1, 0],
        [1, -1, 0, 0, -1, -1, -1, -1],
        [0, 0, 0, -1, -1, -1, -1, -1],
    ]


def test_m_grpo_normalises_main_and_sub_agents_in_their_own_groups():
    batch = make_rollouts([1.0, 0.0, 1.0], lengths=[8, 4, 3], tool_mask=TOOL)
    adv = m_grpo_advantage(batch.rewards, batch.group_ids, batch, d=2)
    main = grpo_advantage(batch.rewards, batch.group_ids)
    assert adv[0, 7].item() == pytest.approx(main[0].item())
    assert adv[1, 2:4].tolist() == pytest.approx([main[1].item()] * 2)
    assert adv[2, :3].tolist() == pytest.approx([main[2].item()] * 3)
    # aligned sub-trajectories: row 0's two once each (reward 1), row 1's one twice (reward 0):
    # values [1, 1, 0, 0], mean 0.5, std sqrt(1/3)
    sub = 0.5 / (1 / 3) ** 0.5
    assert adv[0, [0, 1, 4, 5]].tolist() == pytest.approx([sub / (1 + 1e-4 / (1 / 3) ** 0.5)] * 4, rel=1e-3)
    assert adv[1, 0].item() == pytest.approx(-2 * sub, rel=1e-3)  # duplicated: counted twice
    assert (adv[TOOL.bool()] == 0).all() and (adv[~MASK.bool()] == 0).all()


def test_m_grpo_without_tools_is_grpo_on_every_token():
    batch = make_rollouts([1.0, 0.0, 0.5, 0.0], [0, 0, 1, 1], lengths=[3, 2, 4, 1])
    adv = m_grpo_advantage(batch.rewards, batch.group_ids, batch)
    expected = grpo_advantage(batch.rewards, batch.group_ids).unsqueeze(1) * batch.completion_mask
    assert torch.allclose(adv, expected)
