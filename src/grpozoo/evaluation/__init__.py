"""Held-out evaluation: accuracy, pass@k, lengths and truncation of a model or checkpoint."""

from grpozoo.evaluation.evaluate import evaluate, evaluate_held_out
from grpozoo.evaluation.metrics import pass_at_k

__all__ = ["evaluate", "evaluate_held_out", "pass_at_k"]
