"""Held-out evaluation: accuracy, pass@k, maj@k, pass^k, lengths, truncation, entropy and
calibration of a model or checkpoint."""

from grpozoo.evaluation.evaluate import EvalSamples, evaluate, evaluate_held_out, summarize
from grpozoo.evaluation.metrics import (
    calibration_auc,
    calibration_auc_within_groups,
    maj_at_k,
    pass_at_k,
    pass_hat_k,
)

__all__ = [
    "EvalSamples",
    "calibration_auc",
    "calibration_auc_within_groups",
    "evaluate",
    "evaluate_held_out",
    "maj_at_k",
    "pass_at_k",
    "pass_hat_k",
    "summarize",
]
