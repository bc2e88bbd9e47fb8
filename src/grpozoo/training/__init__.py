"""The trainer loop, optimisation, and checkpoint/resume."""

from grpozoo.training.trainer import Trainer, fit

__all__ = ["Trainer", "fit"]
