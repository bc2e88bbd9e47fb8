"""Staged curriculum: the task's rows fall into buckets from easy to hard; a step draws only from the
buckets unlocked so far, and the next bucket unlocks once the newest one is learnt (MrGuard)."""

from __future__ import annotations

import torch

from grpozoo.registry import selectors
from grpozoo.rollouts import Rollouts
from grpozoo.selectors.trackers import Selector, weighted_sample


def stage_buckets(num_rows: int, stages: int, boundaries: list[int] | None = None) -> torch.Tensor:
    """The bucket of every row ``[num_rows]`` long: ``boundaries`` are the row indices where buckets
    1, 2, … begin (increasing, inside the task); without them, ``stages`` contiguous slices of nearly
    equal size. Rows are taken in the task's order, easiest first."""
    if boundaries is None:
        if not 1 <= stages <= num_rows:
            raise ValueError(f"staged curriculum: stages={stages} must lie in [1, {num_rows}] (the task's rows)")
        return torch.arange(num_rows) * stages // num_rows
    starts = [int(b) for b in boundaries]
    if any(not 0 < b < num_rows for b in starts) or any(a >= b for a, b in zip(starts, starts[1:], strict=False)):
        raise ValueError(
            f"staged curriculum: boundaries={boundaries} must be increasing row indices in (0, {num_rows})"
        )
    return torch.bucketize(torch.arange(num_rows), torch.tensor(starts), right=True)


@selectors.register("staged_curriculum")
class StagedCurriculumSelector(Selector):
    """A staged curriculum sampler, as in MrGuard's curriculum GRPO (Yang et al. 2025, "MrGuard: A
    Multilingual Reasoning Guardrail for Universal LLM Safety", EMNLP 2025).

    The task's rows, in their order (a file sorted from easy to hard), are cut into buckets
    (:func:`stage_buckets`: ``stages`` equal slices, or at ``boundaries``). At stage ``s`` every
    prompt is drawn uniformly among the rows of buckets ``0 … s`` (distinct within a step). After
    each step, the stage moves to the next bucket when the mean ``signal`` of that step's groups from
    the newest bucket ``s`` reaches ``advance_at``, or after ``steps_per_stage`` steps at stage
    ``s`` (None: never by time); it never goes back. State: the stage, the steps spent at it, and the
    generator.

    The paper orders its data by language resource level and perturbation difficulty; here the
    order is the task's (bucket by a difficulty column by sorting the file). GUESS: ``stages = 3``,
    ``advance_at = 0.7``, ``steps_per_stage = None``, uniform draws over the unlocked rows,
    ``signal="task_score"``.
    """

    name = "staged_curriculum"
    state_attributes = ("stage", "steps_in_stage")

    def __init__(
        self,
        num_rows: int,
        seed: int = 0,
        stages: int = 3,
        boundaries: list[int] | None = None,
        advance_at: float = 0.7,
        steps_per_stage: int | None = None,
        signal: str = "task_score",
    ):
        super().__init__(num_rows, seed, signal)
        if steps_per_stage is not None and steps_per_stage < 1:
            raise ValueError(f"staged_curriculum: steps_per_stage must be >= 1 or None, got {steps_per_stage}")
        self.bucket = stage_buckets(num_rows, stages, boundaries)
        self.num_stages = int(self.bucket.max()) + 1
        self.advance_at, self.steps_per_stage = advance_at, steps_per_stage
        self.stage = 0
        self.steps_in_stage = 0
        self._newest: list[float] = []

    def unlocked(self) -> torch.Tensor:
        """``[num_rows]`` bool: the rows of the buckets at or below the current stage."""
        return self.bucket <= self.stage

    def next(self, k: int) -> list[int]:
        open_rows = self.unlocked()
        if k > int(open_rows.sum()):
            raise ValueError(
                f"staged_curriculum: rollout.prompts_per_step={k} exceeds the {int(open_rows.sum())} rows open at "
                f"stage {self.stage}; lower prompts_per_step or use fewer, larger buckets"
            )
        return weighted_sample(open_rows.double(), k, self.generator)

    def update(self, rows: list[int], batch: Rollouts) -> None:
        self._newest = []
        super().update(rows, batch)

    def observe(self, row: int, values: list[float], indices: torch.Tensor, batch: Rollouts) -> None:
        if int(self.bucket[row]) == self.stage:
            self._newest.extend(values)

    def after_update(self, batch: Rollouts) -> None:
        self.steps_in_stage += 1
        if self.stage + 1 >= self.num_stages:
            return
        learnt = bool(self._newest) and sum(self._newest) / len(self._newest) >= self.advance_at
        timed_out = self.steps_per_stage is not None and self.steps_in_stage >= self.steps_per_stage
        if learnt or timed_out:
            self.stage += 1
            self.steps_in_stage = 0
