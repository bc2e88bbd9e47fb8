"""On-demand batch fields: what a run's components declare in their registration's ``needs=…``
beyond the sampled batch. Each field has one registered provider (``registry.providers``), on the
side of the step that can compute it:

* the **rollout side** samples and scores further completions: ReMax's greedy baseline
  (``baseline_rewards``), Monte-Carlo segment values (``segment_values``);
* the **learner side** runs its model: old and reference log-probs, and the per-token entropies
  for engines that do not report them.

A provider is ``fn(batch, tools) -> tensor``, with ``tools`` the :class:`RolloutTools` or
:class:`LearnerTools` of its side; :class:`Providers` runs those of one side that a run needs, in
registration order, on the batch about to learn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from grpozoo import registry
from grpozoo.algos import guidance
from grpozoo.algos.groups import group_mean
from grpozoo.config import AlgorithmConfig, ComponentConfig
from grpozoo.generation import SamplingParams
from grpozoo.registry import LEARNER_SIDE, ROLLOUT_SIDE, AdvantageSpec
from grpozoo.rollouts import Rollouts, required

# generate(prompts, examples, samples per prompt, sampling) -> the sampled rollouts
Generate = Callable[[list[str], list[dict], int, SamplingParams], Rollouts]
# reward_of(batch, completions or None) -> total reward [B], its named parts, task scores [B]
RewardOf = Callable[[Rollouts, list[str] | None], tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]]
# a [B, T] tensor of a batch under a fixed policy (log-probs, entropies), without a graph
PerToken = Callable[[Rollouts], torch.Tensor]


@dataclass(frozen=True)
class RolloutTools:
    """What rollout-side providers sample and score with: the engine's ``generate``, the rewards'
    ``reward_of``, the ``tokenizer`` that decodes prefixes, the run's ``sampling`` parameters, and
    the advantage estimator's config and registration (where it wants segment values)."""

    generate: Generate
    reward_of: RewardOf
    tokenizer: Any
    sampling: SamplingParams
    advantage: ComponentConfig
    advantage_spec: AdvantageSpec


@dataclass(frozen=True)
class LearnerTools:
    """The learner's no-grad forwards: the current policy's log-probs and entropies, and the
    reference policy's log-probs."""

    policy_logprobs: PerToken
    policy_entropies: PerToken
    reference_logprobs: PerToken


def needs_of(algo: AlgorithmConfig) -> set[str]:
    """The batch fields a run's components declared in their registrations' ``needs``, plus the old
    log-probs of several optimiser iterations and the reference log-probs of a KL penalty."""
    specs = [registry.advantages.spec(algo.advantage.name), registry.losses.spec(algo.loss.name)]
    specs += [registry.token_weights.spec(c.name) for c in algo.token_weights]
    needs: set[str] = set().union(*(spec.needs for spec in specs))
    if algo.num_iterations > 1:
        needs.add("old_logprobs")  # the ratio's denominator must stay fixed across iterations
    if algo.kl.coef > 0:
        needs.add("ref_logprobs")
    return needs


class Providers:
    """Fills the fields of ``needs`` whose provider is on ``side`` (``"rollout"`` or ``"learner"``),
    computed with ``tools``."""

    def __init__(self, needs: set[str], side: str, tools: RolloutTools | LearnerTools):
        registry.load_components()
        self.fields = [name for name in registry.providers.names_in_order() if name in needs
                       and registry.providers.spec(name).side == side]
        self.tools = tools

    def provide(self, batch: Rollouts) -> None:
        for name in self.fields:
            value = registry.providers.get(name)(batch, self.tools)
            if value is not None:
                setattr(batch, name, value)


# ----------------------------------------------------------------------------- the learner side
@registry.providers.register("old_logprobs", side=LEARNER_SIDE)
def old_logprobs(batch: Rollouts, tools: LearnerTools) -> torch.Tensor:
    """The policy's log-probs before this step's updates (the sampler's on off-policy hinted rows)."""
    return guidance.behaviour_logprobs(tools.policy_logprobs(batch), batch.sampling_logprobs, batch.off_policy)


@registry.providers.register("ref_logprobs", side=LEARNER_SIDE)
def ref_logprobs(batch: Rollouts, tools: LearnerTools) -> torch.Tensor:
    return tools.reference_logprobs(batch)


@registry.providers.register("entropies", side=LEARNER_SIDE)
def entropies(batch: Rollouts, tools: LearnerTools) -> torch.Tensor | None:
    """The sampling distribution's entropy per token, from the learner's forward where the engine
    did not report it (an inference engine returns only the sampled tokens' log-probs)."""
    return None if batch.entropies is not None else tools.policy_entropies(batch)


# ----------------------------------------------------------------------------- the rollout side
@registry.providers.register("baseline_rewards", side=ROLLOUT_SIDE)
def greedy_baseline_rewards(batch: Rollouts, tools: RolloutTools) -> torch.Tensor:
    """ReMax's baseline: the reward of one greedy completion per prompt, broadcast to its group."""
    groups = batch.group_ids.unique().tolist()
    first = [int((batch.group_ids == g).nonzero()[0]) for g in groups]
    prompts = [batch.prompts[i] for i in first]
    examples = [batch.examples[i] for i in first]
    greedy = SamplingParams(tools.sampling.max_new_tokens, temperature=0.0)
    out = tools.generate(prompts, examples, 1, greedy)
    rewards, _, _ = tools.reward_of(out, None)
    per_group = dict(zip(groups, rewards.tolist(), strict=True))
    return torch.tensor([per_group[int(g)] for g in batch.group_ids])


@registry.providers.register("segment_values", side=ROLLOUT_SIDE)
def segment_values(batch: Rollouts, tools: RolloutTools) -> torch.Tensor:
    """Monte-Carlo state values ``[B, T+1]`` at the boundaries the advantage estimator asks for
    (NaN elsewhere): V(prompt) is the group's mean reward, V(end) the sample's own reward, and an
    interior boundary t is worth the mean reward of ``num_continuations`` sampled continuations
    of the prompt plus the first t completion tokens."""
    params = tools.advantage.params
    find_boundaries = tools.advantage_spec.segment_boundaries
    if find_boundaries is None:
        raise ValueError(
            f"advantage estimator {tools.advantage.name!r} needs segment_values but is not "
            f"registered with the segment_boundaries that say where"
        )
    rewards = required(batch.rewards, "batch.rewards", "segment_values")
    boundaries = find_boundaries(batch, **params)
    values = torch.full(boundaries.shape, float("nan"))
    lengths = batch.completion_lengths
    values[:, 0] = group_mean(rewards, batch.group_ids)
    values[torch.arange(batch.batch_size), lengths] = rewards
    interior = [(i, t) for i, t in boundaries.nonzero().tolist() if 0 < t < int(lengths[i])]
    if not interior:
        return values
    n = int(params.get("num_continuations", 2))
    prefixes = [tools.tokenizer.decode(batch.completion_ids[i, :t]) for i, t in interior]
    prompts = [batch.prompts[i] + prefix for (i, _), prefix in zip(interior, prefixes, strict=True)]
    examples = [batch.examples[i] for i, _ in interior]
    remaining = tools.sampling.max_new_tokens - min(t for _, t in interior)
    out = tools.generate(prompts, examples, n, replace(tools.sampling, max_new_tokens=remaining))
    completions = [prefixes[k // n] + text for k, text in enumerate(out.completions)]
    rewards, _, _ = tools.reward_of(out, completions)
    for k, (i, t) in enumerate(interior):
        values[i, t] = rewards[k * n : (k + 1) * n].mean()
    return values
