"""Forced rethinking (Wang et al. 2025, "VL-Rethinker", arXiv:2504.08837): a rethought rollout holds
the trigger exactly once, where the first pass ended, continues from the exact token ids, never
learns the trigger, and keeps its own token budget; the share of rows picked is the fraction."""

from __future__ import annotations

import torch
from generation.test_episodes import ScriptedEngine

from grpozoo.config import RolloutConfig
from grpozoo.generation.hf import SamplingParams
from grpozoo.generation.rethinking import RethinkingEngine, rethink_rows, with_rethinking

TRIGGER = " Wait, again."


def tokenizer():
    from tiny import build_tokenizer

    return build_tokenizer()


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def rethought(turns, fraction=1.0, max_new_tokens=40, prompts=("<u>q</s><a>",)):
    tok = tokenizer()
    engine = ScriptedEngine(tok, turns)
    wrapped = RethinkingEngine(engine, tok, fraction, TRIGGER)
    batch = wrapped.generate(list(prompts), [{"answer": "408"}] * len(prompts), 1, SamplingParams(max_new_tokens))
    return batch, engine, tok


def test_a_forced_rethink_holds_the_trigger_exactly_once_at_the_first_pass_boundary():
    batch, engine, tok = rethought(["41</s>", "408</s>"])
    trigger = ids(tok, TRIGGER)
    row = batch.completion_ids[0, : int(batch.completion_mask[0].sum())].tolist()
    assert row == ids(tok, "41") + trigger + ids(tok, "408</s>")  # the first pass's end-of-turn token made way
    windows = [row[k : k + len(trigger)] for k in range(len(row) - len(trigger) + 1)]
    assert windows.count(trigger) == 1 and windows.index(trigger) == 2
    # the continuation went on from the exact token ids: prompt, first pass, trigger
    assert engine.calls[1] == [ids(tok, "<u>q</s><a>") + ids(tok, "41") + trigger]
    assert batch.completions == ["41" + TRIGGER + "408"]
    assert batch.environment_parts["rethought"].tolist() == [1.0]
    assert not bool(batch.truncated[0])


def test_the_trigger_is_read_but_never_learned():
    batch, _, tok = rethought(["41</s>", "408</s>"])
    n = len(ids(tok, TRIGGER))
    assert batch.tool_mask is not None
    assert batch.tool_mask[0, 2 : 2 + n].tolist() == [1] * n
    assert batch.tool_mask[0].sum() == n
    assert (batch.action_mask[0, 2 : 2 + n] == 0).all() and batch.action_mask[0].sum() == 2 + 4
    assert (batch.sampling_logprobs[0, 2 : 2 + n] == 0).all()
    assert (batch.sampling_logprobs[0, :2] == -0.5).all() and (batch.sampling_logprobs[0, 2 + n : 2 + n + 4] == -0.5).all()


def test_truncated_rows_and_rows_without_room_are_not_rethought():
    batch, engine, tok = rethought(["4141", "41</s>"], prompts=("<u>q</s><a>", "<u>r</s><a>"), max_new_tokens=4)
    # the first row ran out of budget; the second would have no token left after the trigger
    assert batch.environment_parts["rethought"].tolist() == [0.0, 0.0]
    assert len(engine.calls) == 1 and batch.tool_mask is None
    assert batch.completions == ["4141", "41"]


def test_a_continuation_is_cut_at_the_row_s_own_budget():
    budget = 2 + len(TRIGGER) + 2  # room for two tokens after the trigger
    batch, _, tok = rethought(["41</s>", "408</s>"], max_new_tokens=budget)
    assert int(batch.completion_mask[0].sum()) == budget
    assert batch.completions == ["41" + TRIGGER + "40"] and bool(batch.truncated[0])


def test_the_share_of_rethought_rows_is_the_fraction():
    finished = torch.ones(20_000, dtype=torch.bool)
    finished[::4] = False
    picked = rethink_rows(finished, torch.ones(20_000), 0.3, torch.Generator().manual_seed(0))
    assert not picked[~finished].any()
    assert abs(float(picked[finished].float().mean()) - 0.3) < 0.015
    again = rethink_rows(finished, torch.ones(20_000), 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(picked, again)


def test_rethinking_is_off_unless_the_rollout_section_asks():
    tok = tokenizer()
    engine = ScriptedEngine(tok, [])
    assert with_rethinking(engine, tok, RolloutConfig()) is engine
    wrapped = with_rethinking(engine, tok, RolloutConfig(rethink={"fraction": 0.5}))
    assert isinstance(wrapped, RethinkingEngine) and wrapped.engine is engine
