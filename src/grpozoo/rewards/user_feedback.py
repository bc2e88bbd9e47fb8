"""A reward model of user feedback, P[Love]: the probability that a user reacts positively to a
response, fitted from a small labelled file (Han et al. 2025, "Reinforcement Learning from User
Feedback", arXiv:2505.14946).

The file is JSON lines ``{"prompt": …, "completion": …, "label": 0 | 1}`` (1: the user loved it).
The model is a logistic head on frozen features of a base model: the final hidden state at the
last token of the (prompt, completion) pair as ``reward_model`` reads it. The fitted head is saved
as a sequence-classification checkpoint (the base weights plus the head, one label), so
``reward_model`` scores it; ``P[Love] = sigmoid(score + bias)``. RLUF optimises P[Love] together
with helpfulness and safety objectives: the ``rluf`` recipe adds it to the task's reward with a
smaller weight, so a response cannot buy reward by courting reactions alone.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from grpozoo.errors import ConfigError
from grpozoo.registry import rewards
from grpozoo.rewards.combine import PolicyHandle
from grpozoo.rewards.model_rewards import batch_slices, first_device, padded_rows, render_pair, reward_model

HEAD_FILE = "feedback_head.json"
_FITTING = threading.Lock()


def fit_logistic_head(
    features: torch.Tensor, labels: torch.Tensor, l2: float = 1.0, max_iter: int = 200
) -> tuple[torch.Tensor, float]:
    """L2-regularised logistic regression on ``features [N, H]`` and 0/1 ``labels [N]``: the weights
    ``w [H]`` and bias ``b`` minimising ``mean BCE(w·x + b, y) + l2/(2N)·|w|²`` (L-BFGS, float64,
    features standardised inside and the result mapped back to the raw features)."""
    x = features.double()
    y = labels.double()
    mean, std = x.mean(dim=0), x.std(dim=0, unbiased=False).clamp(min=1e-6)
    z = (x - mean) / std
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y)
        loss = loss + l2 / (2 * len(y)) * (w * w).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    weights = (w / std).detach()
    return weights, float(b.detach() - (weights * mean).sum())


def read_feedback(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a feedback file, checked: each has ``prompt``, ``completion`` and a 0/1 ``label``
    (``true``/``false`` too), and both labels occur."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        label = row.get("label")
        if not {"prompt", "completion"} <= set(row) or label not in (0, 1, True, False):
            raise ConfigError(
                f"feedback file {str(path)!r} line {number}: each row needs prompt, completion and label 0/1; got {row!r}"
            )
        rows.append({"prompt": str(row["prompt"]), "completion": str(row["completion"]), "label": int(label)})
    if len({r["label"] for r in rows}) < 2:
        raise ConfigError(f"feedback file {str(path)!r} needs rows of both labels (0 and 1) to fit P[Love]")
    return rows


def pair_features(classifier, tokenizer, prompts: Sequence[str], completions: Sequence[str], batch_size: int = 8):
    """``[N, H]``: what a sequence-classification model's head reads for each pair (rendered by
    ``render_pair``, right-padded as ``reward_model`` does): its head swapped for the identity."""
    head = classifier.score
    classifier.score = torch.nn.Identity()
    rows = [render_pair(tokenizer, p, c) for p, c in zip(prompts, completions, strict=True)]
    out = []
    try:
        with torch.no_grad():
            for part in batch_slices(len(rows), batch_size):
                ids, mask = padded_rows(rows[part], tokenizer.pad_token_id, "right", first_device(classifier))
                out.append(classifier(input_ids=ids, attention_mask=mask).logits.double().cpu())
    finally:
        classifier.score = head
    return torch.cat(out)


def train_feedback_model(
    data: str | Path, base: str, out_dir: str | Path, l2: float = 1.0, device: str = "cpu", batch_size: int = 8
) -> Path:
    """Fit P[Love] on ``data`` over frozen features of ``base`` and save it to ``out_dir``: a
    one-label ``AutoModelForSequenceClassification`` checkpoint (``base``'s weights, the fitted
    weights as its head) with the tokenizer, and the bias in ``feedback_head.json``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from grpozoo.training.model import resolve_model

    rows = read_feedback(data)
    path = resolve_model(base)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    classifier = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).to(device).eval()
    classifier.config.pad_token_id = tokenizer.pad_token_id
    if not isinstance(getattr(classifier, "score", None), torch.nn.Linear) or classifier.score.bias is not None:
        raise ConfigError(f"reward 'user_feedback': {base!r} has no bias-free linear 'score' head to fit")
    features = pair_features(classifier, tokenizer, [r["prompt"] for r in rows], [r["completion"] for r in rows], batch_size)
    weights, bias = fit_logistic_head(features, torch.tensor([r["label"] for r in rows]), l2)
    with torch.no_grad():
        classifier.score.weight.copy_(weights.to(classifier.score.weight.dtype).unsqueeze(0))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / HEAD_FILE).write_text(json.dumps({"bias": bias, "rows": len(rows), "l2": l2}))
    return out


def feedback_checkpoint(data: str, base: str, l2: float) -> Path:
    """Where the P[Love] model of (``data``, ``base``, ``l2``) is kept: next to the data file, named
    by a hash of the file's content, the base and ``l2`` (a changed file is fitted again)."""
    digest = hashlib.sha256(Path(data).read_bytes() + f"\0{base}\0{l2}".encode()).hexdigest()[:12]
    return Path(f"{data}.p_love-{digest}")


def _check_user_feedback(data: str | None = None, base: str | None = None, l2: float = 1.0, **_: Any) -> None:
    if data is None:
        raise ConfigError(
            "reward 'user_feedback' needs its feedback file: rewards: [{name: user_feedback, params: "
            "{data: feedback.jsonl}}] (JSON lines {prompt, completion, label 0/1})"
        )
    if not Path(data).is_file():
        raise ConfigError(f"reward 'user_feedback': feedback file {data!r} does not exist")
    read_feedback(data)
    if l2 < 0:
        raise ConfigError(f"reward 'user_feedback': l2={l2} must be >= 0")


@rewards.register("user_feedback", needs_policy=True, check=_check_user_feedback)
def user_feedback_reward(
    completions: list[str],
    prompts: list[str],
    data: str | None = None,
    base: str | None = None,
    checkpoint: str | None = None,
    l2: float = 1.0,
    batch_size: int = 8,
    device: str | None = None,
    policy: PolicyHandle | None = None,
    **columns: Any,
) -> list[float]:
    """RLUF's P[Love] reward (Han et al. 2025, "Reinforcement Learning from User Feedback",
    arXiv:2505.14946).

    ``[B]`` in (0, 1): ``sigmoid(score + bias)``, the probability that the user reacts with love,
    ``score`` being ``reward_model``'s one-label score of (prompt, completion) under the fitted
    checkpoint. On first use the model is fitted (``train_feedback_model``) on ``data``, a JSON-lines
    file of ``{prompt, completion, label}``, over frozen features of ``base`` (default: the
    checkpoint the policy started from) and kept at ``checkpoint`` (default: next to the data file,
    ``feedback_checkpoint``); a later run with the same file, base and ``l2`` reuses it.

    GUESS: the model (the paper fine-tunes a full LLM reward model on millions of reactions; here a
    logistic head on frozen last-token features fits a small file), ``l2`` 1.0. Bounded in (0, 1),
    so stuffing a response with what users love saturates; mix it with a helpfulness reward (the
    ``rluf`` recipe) so that it cannot outweigh being right.
    """
    if data is None:
        _check_user_feedback(data)
    origin = base or (policy.base if policy is not None else None)
    if origin is None:
        raise ConfigError("reward 'user_feedback' has no base model: outside the trainer give params: {base: PATH}")
    where = Path(checkpoint) if checkpoint is not None else feedback_checkpoint(str(data), origin, l2)
    run_on = device or (policy.device if policy is not None else "cpu")
    with _FITTING:
        if not (where / HEAD_FILE).exists():
            train_feedback_model(str(data), origin, where, l2, run_on, batch_size)
    bias = float(json.loads((where / HEAD_FILE).read_text())["bias"])
    scores = reward_model(completions, prompts, model=str(where), label=0, batch_size=batch_size, device=run_on,
                          prompt_messages=columns.get("prompt_messages"))
    return torch.sigmoid(torch.tensor(scores, dtype=torch.float64) + bias).tolist()
