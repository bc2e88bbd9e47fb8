"""Generators: ``generate(prompts, examples, n, params) -> Rollouts``."""

from grpozoo.generation.hf import HFGenerator, SamplingParams

__all__ = ["HFGenerator", "SamplingParams"]
