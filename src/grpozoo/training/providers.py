"""On-demand batch fields: what a run's components declare in their registration's ``needs=…``
beyond the sampled batch (old and reference log-probs, ReMax's greedy baseline, Monte-Carlo segment
values). :class:`Providers` computes only those the run needs, from explicit callables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from grpozoo import registry
from grpozoo.algos import guidance
from grpozoo.algos.groups import group_mean
from grpozoo.config import AlgorithmConfig, ComponentConfig
from grpozoo.generation import SamplingParams
from grpozoo.registry import AdvantageSpec
from grpozoo.rollouts import Rollouts, required

# generate(prompts, examples, samples per prompt, sampling) -> the sampled rollouts
Generate = Callable[[list[str], list[dict], int, SamplingParams], Rollouts]
# reward_of(batch, completions or None) -> total reward [B], its named parts, task scores [B]
RewardOf = Callable[[Rollouts, list[str] | None], tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]]
# log-probs [B, T] of a batch under a fixed policy, without a graph
LogProbs = Callable[[Rollouts], torch.Tensor]


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
    """Fills the fields in ``needs`` on a batch about to learn. ``advantage`` is the run's advantage
    estimator config and ``advantage_spec`` its registration (where segment values are wanted);
    ``generate`` and ``reward_of`` sample and score further completions with ``sampling``, decoded
    with ``tokenizer``; ``policy_logprobs`` and ``reference_logprobs`` are the learner's forwards."""

    def __init__(
        self,
        needs: set[str],
        advantage: ComponentConfig,
        advantage_spec: AdvantageSpec,
        tokenizer: Any,
        sampling: SamplingParams,
        generate: Generate,
        reward_of: RewardOf,
        policy_logprobs: LogProbs,
        reference_logprobs: LogProbs,
    ):
        self.needs = needs
        self.advantage, self.advantage_spec = advantage, advantage_spec
        self.tokenizer, self.sampling = tokenizer, sampling
        self.generate, self.reward_of = generate, reward_of
        self.policy_logprobs, self.reference_logprobs = policy_logprobs, reference_logprobs

    def provide(self, batch: Rollouts) -> None:
        """Fill the batch fields the run's components declared in their registration's ``needs``."""
        if "old_logprobs" in self.needs:
            old = self.policy_logprobs(batch)
            batch.old_logprobs = guidance.behaviour_logprobs(old, batch.sampling_logprobs, batch.off_policy)
        if "ref_logprobs" in self.needs:
            batch.ref_logprobs = self.reference_logprobs(batch)
        if "baseline_rewards" in self.needs:
            batch.baseline_rewards = self.greedy_baseline_rewards(batch)
        if "segment_values" in self.needs:
            batch.segment_values = self.segment_values(batch)

    def greedy_baseline_rewards(self, batch: Rollouts) -> torch.Tensor:
        """ReMax's baseline: the reward of one greedy completion per prompt, broadcast to its group."""
        groups = batch.group_ids.unique().tolist()
        first = [int((batch.group_ids == g).nonzero()[0]) for g in groups]
        prompts = [batch.prompts[i] for i in first]
        examples = [batch.examples[i] for i in first]
        greedy = SamplingParams(self.sampling.max_new_tokens, temperature=0.0)
        out = self.generate(prompts, examples, 1, greedy)
        rewards, _, _ = self.reward_of(out, None)
        per_group = dict(zip(groups, rewards.tolist(), strict=True))
        return torch.tensor([per_group[int(g)] for g in batch.group_ids])

    def segment_values(self, batch: Rollouts) -> torch.Tensor:
        """Monte-Carlo state values ``[B, T+1]`` at the boundaries the advantage estimator asks for
        (NaN elsewhere): V(prompt) is the group's mean reward, V(end) the sample's own reward, and an
        interior boundary t is worth the mean reward of ``num_continuations`` sampled continuations
        of the prompt plus the first t completion tokens."""
        params = self.advantage.params
        find_boundaries = self.advantage_spec.segment_boundaries
        if find_boundaries is None:
            raise ValueError(
                f"advantage estimator {self.advantage.name!r} needs segment_values but is not "
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
        prefixes = [self.tokenizer.decode(batch.completion_ids[i, :t]) for i, t in interior]
        prompts = [batch.prompts[i] + prefix for (i, _), prefix in zip(interior, prefixes, strict=True)]
        examples = [batch.examples[i] for i, _ in interior]
        remaining = self.sampling.max_new_tokens - min(t for _, t in interior)
        out = self.generate(prompts, examples, n, replace(self.sampling, max_new_tokens=remaining))
        completions = [prefixes[k // n] + text for k, text in enumerate(out.completions)]
        rewards, _, _ = self.reward_of(out, completions)
        for k, (i, t) in enumerate(interior):
            values[i, t] = rewards[k * n : (k + 1) * n].mean()
        return values
