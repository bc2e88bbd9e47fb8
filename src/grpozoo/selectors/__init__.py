"""Selectors: which prompts come next and how many rollouts each, from per-prompt running
statistics kept in the selector's state (saved in every checkpoint)."""

from grpozoo.selectors.budget import KnapsackSelector, XrpoSelector
from grpozoo.selectors.bundles import RiskpoBundleSelector
from grpozoo.selectors.curriculum import FgExpoSelector
from grpozoo.selectors.priority import Mmr1VasSelector, SpoPrioritySelector, VadeSelector
from grpozoo.selectors.replay import SelectiveReplaySelector
from grpozoo.selectors.staged import StagedCurriculumSelector
from grpozoo.selectors.uniform import UniformSelector

__all__ = [
    "FgExpoSelector",
    "KnapsackSelector",
    "Mmr1VasSelector",
    "RiskpoBundleSelector",
    "SelectiveReplaySelector",
    "SpoPrioritySelector",
    "StagedCurriculumSelector",
    "UniformSelector",
    "VadeSelector",
    "XrpoSelector",
]
