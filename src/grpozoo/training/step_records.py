"""What a step writes down about its batch: the columns every reward function receives, the
step's batch statistics, one ``samples.jsonl`` record per completion."""

from __future__ import annotations

from typing import Any

import torch

from grpozoo.algos.groups import group_std
from grpozoo.rollouts import Rollouts, required

# Warn when a step's batch carries almost no learning signal.
TRUNCATION_WARNING = 0.9
ZERO_VARIANCE_WARNING = 0.9
SAMPLER_GAP_WARNING = 0.05  # nats a token: float32 engines agree to ~1e-5, bfloat16 ones to ~1e-2
SIGNAL_PATIENCE = 3  # steps in a row before warning


def reward_columns(
    batch: Rollouts, task_scores: torch.Tensor, prompt_messages: list[list[dict[str, str]]] | None = None
) -> dict[str, list[Any]]:
    """The keyword arguments every reward function receives besides ``completions`` and ``prompts``:
    the task row's columns (``answer``, …), the task's verifier score, and per-sample facts about
    the rollout (its group, length in tokens, truncation, mean sampling log-prob, extracted answer)
    and the training step, so group-level and length-aware rewards need nothing else; with
    ``prompt_messages``, the chat messages of each prompt before any chat template (``prompts`` are
    the text the policy read, its template applied), for a reward model with a template of its own."""
    columns: dict[str, list[Any]] = {"task_score": task_scores.tolist()}
    if prompt_messages is not None:
        columns["prompt_messages"] = prompt_messages
    for key in batch.examples[0]:
        if key not in ("prompt", "messages") and all(key in e for e in batch.examples):
            columns[key] = [e[key] for e in batch.examples]
    lengths = batch.completion_lengths
    mean_logprob = batch.sampling_logprobs.sum(dim=1) / lengths.clamp(min=1)
    columns.update(
        group_id=batch.group_ids.tolist(),
        completion_length=lengths.tolist(),
        truncated=batch.truncated.tolist(),
        mean_logprob=mean_logprob.tolist(),
        extracted_answer=batch.answers if batch.answers is not None else [None] * batch.batch_size,
        step=[batch.step] * batch.batch_size,
        total_steps=[batch.total_steps] * batch.batch_size,
    )
    return columns


def batch_metrics(batch: Rollouts, parts) -> dict[str, float]:
    """Per-step statistics of the sampled batch (rewards, accuracy, lengths, signal)."""
    rewards = required(batch.rewards, "batch.rewards", "the step's metrics")
    task_scores = required(batch.task_scores, "batch.task_scores", "the step's metrics")
    std_per_group = group_std(rewards, batch.group_ids)
    groups = batch.group_ids.unique()
    zero_variance = sum(float(std_per_group[batch.group_ids == g][0] < 1e-6) for g in groups) / len(groups)
    out = {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "accuracy": float((task_scores >= 1.0).float().mean()),
        "completion_length": float(batch.completion_lengths.float().mean()),
        "truncation_rate": float(batch.truncated.float().mean()),
        "zero_variance_groups": zero_variance,
    }
    for part in parts:
        values = batch.reward_parts[part.name]
        known = values[~values.isnan()]
        out[f"reward/{part.name}"] = float(known.mean()) if len(known) else float("nan")
    for name, values in batch.environment_parts.items():  # multi-turn: tool calls, turns, how episodes ended
        out[f"episode/{name}"] = float(values.float().mean())
    return out


def sample_record(step: int, batch: Rollouts, i: int) -> dict[str, Any]:
    return {
        "step": step,
        "group": int(batch.group_ids[i]),
        "prompt": batch.prompts[i],
        "completion": batch.completions[i],
        "answer": batch.examples[i].get("answer"),
        "reward": float(required(batch.rewards, "batch.rewards", "the step's sample record")[i]),
        # the reward's parts and what the environment reported (tool calls, turns), never mixed into
        # reward_parts, which advantage estimators over several rewards read
        "parts": {k: (None if v[i].isnan() else float(v[i]))
                  for k, v in {**batch.reward_parts, **batch.environment_parts}.items()},
        "advantage": _finite_or_none(batch.advantages[i].mean()) if batch.advantages is not None else None,
        "truncated": bool(batch.truncated[i]),
        **({"hint_level": int(batch.hint_level[i])} if batch.hint_level is not None else {}),
        **({"demonstration": True} if batch.demonstration is not None and bool(batch.demonstration[i]) else {}),
        # a multi-turn episode: the whole exchange, tool output included (the completion is the model's own text)
        **({"trajectory": batch.examples[i]["trajectory"]} if "trajectory" in batch.examples[i] else {}),
    }


def _finite_or_none(value: torch.Tensor) -> float | None:
    """A row's advantage for samples.jsonl; None for a row that did not learn (NaN)."""
    number = float(value)
    return None if number != number else number


def scatter_rows(values: torch.Tensor, rows: torch.Tensor, size: int) -> torch.Tensor:
    """``values`` (``[n]`` or ``[n, T]``) placed at ``rows`` of a NaN tensor with ``size`` rows."""
    out = torch.full((size, *values.shape[1:]), float("nan"), dtype=values.dtype)
    out[rows] = values
    return out


def signal_warnings(history: list[dict[str, Any]], max_new_tokens: int) -> list[str]:
    """Warnings when nearly all completions are truncated, nearly all groups have zero reward
    variance, or the engine's log-probs are far from the learner's, on each of the last
    ``SIGNAL_PATIENCE`` steps of ``history`` (one unlucky batch is normal); ``max_new_tokens`` is
    the run's completion budget, named in the advice."""
    window = history[-SIGNAL_PATIENCE:]
    if len(window) < SIGNAL_PATIENCE:
        return []
    metrics = window[-1]
    out = []
    if all(m["truncation_rate"] >= TRUNCATION_WARNING for m in window):
        out.append(
            f"{metrics['truncation_rate']:.0%} of completions hit rollout.max_new_tokens="
            f"{max_new_tokens} without finishing, {SIGNAL_PATIENCE} steps in a row: "
            f"raise it or ask for shorter answers"
        )
    if all(m["zero_variance_groups"] >= ZERO_VARIANCE_WARNING for m in window):
        out.append(
            f"{metrics['zero_variance_groups']:.0%} of groups have the same reward for every completion, "
            f"{SIGNAL_PATIENCE} steps in a row, so they carry no learning signal: the task is too hard "
            f"or too easy for this model (mean reward {metrics['reward/mean']:.2f}); "
            f"pick another difficulty or raise rollout.group_size"
        )
    gap = metrics.get("sampler/logprob_diff_mean")
    if gap is not None and all(m.get("sampler/logprob_diff_mean", 0.0) > SAMPLER_GAP_WARNING for m in window):
        out.append(
            f"the engine's log-probs differ from the learner's by {gap:.3f} a token on average (at most "
            f"{metrics['sampler/logprob_diff_max']:.2f}), {SIGNAL_PATIENCE} steps in a row: it samples with other "
            f"weights or another distribution. Check that the server serves model.name in the learner's dtype "
            f"with --logprobs-mode processed_logprobs (grpozoo serve starts it so)"
        )
    out.extend(rubric_hacking_warnings(history))
    return out


def rubric_hacking_warnings(history: list[dict[str, Any]], every: int = 10) -> list[str]:
    """Every ``every`` steps, the rubric items (``reward/<name>/item_k`` metrics, see the ``rubric``
    reward) whose satisfied share rose while the verifier's accuracy did not
    (:func:`grpozoo.rewards.rubrics.rubric_hacking_report`)."""
    if not history or len(history) % every:
        return []
    from grpozoo.rewards.rubrics import rubric_hacking_report

    items = sorted({k for m in history for k in m if k.startswith("reward/") and "/item_" in k})
    if not items:
        return []
    rates = {k: [m.get(k, float("nan")) for m in history] for k in items}
    suspects = rubric_hacking_report(rates, [m["accuracy"] for m in history])
    if not suspects:
        return []
    listed = ", ".join(f"{s['item']} {float(s['item_change']):+.2f}" for s in suspects)
    return [
        f"rubric items rose while the verifier's accuracy did not ({float(suspects[0]['verifier_change']):+.2f}): "
        f"{listed}. The judge may be rewarding the look of an answer (rubric reward hacking): read samples.jsonl"
    ]
