"""Generation engines: ``generate(prompts, examples, n, params) -> Rollouts``, ``sync(model, version)``."""

from grpozoo.generation.engine import Engine, make_engine
from grpozoo.generation.hf import HFGenerator, SamplingParams

__all__ = ["Engine", "HFGenerator", "SamplingParams", "make_engine"]
