"""Selectors inside the trainer: per-prompt rollout counts flow through a training step, and a
selector's statistics survive --resume."""

import copy
import math
import shutil

import pytest
import torch
from training.test_trainer import make_trainer

from grpozoo.training import checkpoint as ckpt
from grpozoo.training import fit

QUIET = ["eval.at_start=false", "eval.at_end=false"]


def test_a_batch_with_per_prompt_rollout_counts_trains(tiny_overrides):
    """knapsack_rl gives a prompt of estimated p = 0.2 four rollouts and one of p = 0.95 two, out of
    the step's 2 × 3; the uneven groups run through reward, advantages and learning for 2 steps."""
    trainer = make_trainer(
        tiny_overrides, "recipe=knapsack_rl", "rollout.group_size=3", "train.steps=2", *QUIET
    )
    selector = trainer.rollouts.selector
    rows = copy.deepcopy(selector.order).next(2)  # the rows step 1 will select
    selector.tracker.alpha[rows] = torch.tensor([1.0, 19.0], dtype=torch.float64)
    selector.tracker.beta[rows] = torch.tensor([4.0, 1.0], dtype=torch.float64)
    batches = []
    generate = trainer.rollouts.generate

    def recording(step_rows, step):
        batch = generate(step_rows, step)
        batches.append(batch)
        return batch

    trainer.rollouts.generate = recording
    summary = fit(trainer, show_progress=False)
    first = batches[0]
    assert first.group_ids.tolist() == [0, 0, 0, 0, 1, 1]
    assert first.row_ids.tolist() == [rows[0]] * 4 + [rows[1]] * 2
    assert [e for e in first.examples] == [trainer.task.train_rows[rows[0]]] * 4 + [
        trainer.task.train_rows[rows[1]]
    ] * 2
    assert first.advantages is not None and first.advantages.shape[0] == 6
    assert trainer.step == 2 and math.isfinite(summary["metrics"]["loss"])
    assert all(b.batch_size == 6 for b in batches)
    # step 1's observations reached the selector's statistics (latest visit, prior 0.5/0.5)
    scores = first.task_scores.clamp(0, 1)
    expected = (scores[:4].sum() + 0.5) / (4 + 1)
    assert selector.tracker.mean()[rows[0]].item() == pytest.approx(expected.item())


def test_an_allocation_that_does_not_split_the_budget_is_refused(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "recipe=knapsack_rl", *QUIET)
    trainer.rollouts.selector.allocate = lambda rows, group_size: [1] * len(rows)
    with pytest.raises(ValueError, match="must number one per prompt and sum to 6"):
        trainer.rollouts.generate(trainer.rollouts.selector.next(2), trainer.step)


def test_unknown_selector_parameter_fails_at_start_up(tiny_overrides):
    with pytest.raises(
        ValueError, match="selector 'vade' has no parameter 'pool_factr'. Did you mean 'pool_factor'"
    ):
        make_trainer(tiny_overrides, "algorithm.selector.name=vade", "algorithm.selector.params.pool_factr=2")


def assert_same_state(a, b, path="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_state(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


@pytest.mark.parametrize("selector", ["vade", "knapsack_rl", "vl_rethinker_ssr"])
def test_selector_statistics_survive_resume(tiny_overrides, tmp_path, selector):
    steps = ["train.steps=2", "train.checkpoint_every=1", f"algorithm.selector.name={selector}", *QUIET]
    straight = make_trainer(tiny_overrides, *steps, f"output_dir={tmp_path / 'straight'}")
    fit(straight, show_progress=False)
    saved = straight.rollouts.selector.state_dict()
    assert saved != {} and straight.step == 2
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")

    resumed = make_trainer(tiny_overrides, *steps, f"output_dir={tmp_path / 'resumed'}", resume=True)
    assert resumed.step == 2
    assert_same_state(resumed.rollouts.selector.state_dict(), saved)

    # the next step of the resumed run selects (and allocates) what the uninterrupted run does; both
    # share this process's global RNG, so each starts its step from the checkpoint's RNG state
    rng = ckpt.rng_state()
    picks = {}
    for name, trainer in (("straight", straight), ("resumed", resumed)):
        ckpt.set_rng_state(rng)
        chosen = []
        original_next = trainer.rollouts.selector.next
        trainer.rollouts.selector.next = lambda k, original_next=original_next, chosen=chosen: (
            chosen.append(original_next(k)) or chosen[-1]
        )
        trainer.train_step()
        picks[name] = chosen
    assert picks["straight"] == picks["resumed"] and len(picks["straight"]) == 1
    straight_state, resumed_state = straight.rollouts.selector.state_dict(), resumed.rollouts.selector.state_dict()
    assert_same_state(straight_state, resumed_state)


def test_riskpo_bundles_feed_the_riskpo_advantage_whole_bundles(tiny_overrides):
    """With the riskpo_bundles selector and the riskpo advantage at the same bundle size, each step's
    prompts are whole bundles of consecutive train rows, and two steps train."""
    trainer = make_trainer(
        tiny_overrides, "recipe=riskpo", "algorithm.selector.name=riskpo_bundles",
        "algorithm.selector.params={bundle_size: 2}", "algorithm.advantage.params.bundle_size=2",
        "rollout.prompts_per_step=4", "train.steps=2", *QUIET,
    )
    selected = []
    select = trainer.rollouts.selector.next

    def recording(k):
        rows = select(k)
        selected.append(rows)
        return rows

    trainer.rollouts.selector.next = recording
    summary = fit(trainer, show_progress=False)
    n = trainer.rollouts.selector.num_rows
    for rows in selected:
        assert len(rows) == 4
        for a, b in (rows[0:2], rows[2:4]):  # two bundles of consecutive rows, in order
            assert b == (a + 1) % n and a % 2 == 0
    assert trainer.step == 2 and math.isfinite(summary["metrics"]["grad_norm"])
