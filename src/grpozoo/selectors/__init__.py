"""Selectors: which prompts come next, from running statistics kept in the run state."""

from grpozoo.selectors.uniform import UniformSelector

__all__ = ["UniformSelector"]
