"""The trainer loop, optimisation, and checkpoint/resume."""

from grpozoo.training.fit import fit
from grpozoo.training.trainer import Trainer

__all__ = ["Trainer", "fit"]
