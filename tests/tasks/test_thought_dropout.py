"""TON's thought dropout (Wang et al. 2025, arXiv:2505.16854): the answer is unchanged, the think
block is emptied at rate ≈ p, and the tag format is preserved."""

from __future__ import annotations

import pytest

from grpozoo.tasks.thought_dropout import drop_thought, thought_dropout

SOLUTION = "<think>\n3 + 4 = 7, then 7 * 2 = 14.\n</think>\nThe answer is 14."


def test_thought_dropout_keeps_the_answer_empties_at_rate_p_and_keeps_the_tags():
    texts = [SOLUTION.replace("14", str(i)) for i in range(4000)]
    out = thought_dropout(texts, p=0.3, seed=0)
    dropped = [o != t for o, t in zip(out, texts, strict=True)]
    assert abs(sum(dropped) / len(texts) - 0.3) < 0.03
    for original, new in zip(texts, out, strict=True):
        assert new.count("<think>") == 1 and new.count("</think>") == 1
        assert new.split("</think>")[1] == original.split("</think>")[1]  # the answer is unchanged
        assert new.startswith("<think>")
    emptied = [o for o, d in zip(out, dropped, strict=True) if d]
    assert all(o.split("</think>")[0] == "<think>\n\n" for o in emptied)
    assert thought_dropout(texts, p=0.3, seed=0) == out  # seeded


def test_only_the_first_think_block_changes_and_text_without_one_is_kept():
    assert drop_thought("<think>a</think>x<think>b</think>y") == "<think>\n\n</think>x<think>b</think>y"
    assert drop_thought("no block, 14") == "no block, 14"
    assert thought_dropout([SOLUTION], p=0.0) == [SOLUTION]
    assert thought_dropout([SOLUTION], p=1.0) == ["<think>\n\n</think>\nThe answer is 14."]
    with pytest.raises(ValueError, match="p must lie"):
        thought_dropout([SOLUTION], p=1.5)
