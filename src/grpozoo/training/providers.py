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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from grpozoo import registry
from grpozoo.algos import guidance
from grpozoo.algos.groups import group_mean
from grpozoo.config import AlgorithmConfig, ComponentConfig
from grpozoo.generation import SamplingParams
from grpozoo.generation.samples import Prompt
from grpozoo.registry import LEARNER_SIDE, ROLLOUT_SIDE, AdvantageSpec, Provided
from grpozoo.rewards.combine import PolicyHandle
from grpozoo.rollouts import Rollouts, required
from grpozoo.training import demonstrations

# generate(prompts (text, or token ids to continue), examples, samples per prompt, sampling) -> the rollouts
Generate = Callable[[Sequence[Prompt], list[dict], int, SamplingParams], Rollouts]
# reward_of(batch, completions or None) -> total reward [B], its named parts, task scores [B]
RewardOf = Callable[[Rollouts, list[str] | None], tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]]
# a [B, T] tensor of a batch under a fixed policy (log-probs, entropies), without a graph
PerToken = Callable[[Rollouts], torch.Tensor]


@dataclass(frozen=True)
class RolloutTools:
    """What rollout-side providers sample and score with: the engine's ``generate``, the rewards'
    ``reward_of``, the ``tokenizer`` that decodes prefixes, the run's ``sampling`` parameters, and
    the advantage estimator's config and registration (where it wants segment values); ``policy``,
    the model being trained as the rewards receive it (a critic or a teacher-forced forward reads it,
    never trains it), once the trainer has handed it over."""

    generate: Generate
    reward_of: RewardOf
    tokenizer: Any
    sampling: SamplingParams
    advantage: ComponentConfig
    advantage_spec: AdvantageSpec
    policy: PolicyHandle | None = None
    messages: Callable[[dict[str, Any]], list[dict[str, str]]] | None = None  # the task's chat messages of a row


@dataclass(frozen=True)
class LearnerTools:
    """The learner's no-grad forwards: the current policy's log-probs and entropies, and the
    reference policy's log-probs; for a learned critic (``grpozoo.training.critics``) the policy's
    detached hidden states and the advantage estimator's config, whose parameters and registration
    say how the critic trains."""

    policy_logprobs: PerToken
    policy_entropies: PerToken
    reference_logprobs: PerToken
    hidden_states: Callable[[Rollouts], Any] | None = None
    advantage: ComponentConfig | None = None


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
    computed with ``tools``; keeps what the providers report (:class:`Provided`) until
    :meth:`take_metrics`."""

    def __init__(self, needs: set[str], side: str, tools: RolloutTools | LearnerTools):
        registry.load_components()
        self.fields = [name for name in registry.providers.names_in_order() if name in needs
                       and registry.providers.spec(name).side == side]
        self.tools = tools
        self.metrics: dict[str, float] = {}

    def provide(self, batch: Rollouts) -> None:
        for name in self.fields:
            value = registry.providers.get(name)(batch, self.tools)
            if isinstance(value, Provided):
                self.metrics.update(value.metrics)
                value = value.value
            if value is not None:
                setattr(batch, name, value)

    def take_metrics(self) -> dict[str, float]:
        """What the providers reported since the last call (the last report of each name)."""
        out, self.metrics = self.metrics, {}
        return out


# ----------------------------------------------------------------------------- the learner side
@registry.providers.register("teacher_logprobs", side=LEARNER_SIDE)
def teacher_logprobs(batch: Rollouts, tools: LearnerTools) -> torch.Tensor:
    """The completion tokens' log-probs under the policy itself given the privileged prompt (the
    row's demonstration in its context): a self-teacher (SRPO's self-distillation). A batch without
    privileged prompts is its own teacher."""
    return tools.policy_logprobs(_privileged(batch))


@registry.providers.register("teacher_entropies", side=LEARNER_SIDE)
def teacher_entropies(batch: Rollouts, tools: LearnerTools) -> torch.Tensor:
    """That self-teacher's entropy at each completion token."""
    return tools.policy_entropies(_privileged(batch))


def _privileged(batch: Rollouts) -> Rollouts:
    if batch.privileged_prompts is None:
        return batch
    return demonstrations.with_privileged_prompts(batch, batch.privileged_prompts)


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
@registry.providers.register(demonstrations.PRIVILEGED_PROMPTS, side=ROLLOUT_SIDE)
def privileged_prompts(batch: Rollouts, tools: RolloutTools) -> list[list[int]]:
    """Each row's prompt with its task row's demonstration in the last user message, as token ids
    (:mod:`grpozoo.training.demonstrations`)."""
    messages = required(tools.messages, "the task's messages", "the privileged_prompts provider")
    return demonstrations.privileged_prompts(batch, messages, tools.tokenizer)


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


@registry.providers.register("budget_rewards", side=ROLLOUT_SIDE)
def budget_rewards(batch: Rollouts, tools: RolloutTools) -> torch.Tensor:
    """Anytime reasoning's budgeted scores ``[B, T+1]`` (Qi et al. 2025, "Optimizing Anytime Reasoning
    via Budget Relative Policy Optimization", arXiv:2505.13438): at position ``b`` of each budget
    the advantage estimator names (``budgets``), the reward of the completion cut after its first
    ``b`` tokens, its thinking ended by ``end_thinking`` and an answer of up to ``summary_tokens``
    tokens sampled at ``summary_temperature`` (0: greedy) continuing from the exact token ids; at
    the completion's own end its reward; NaN elsewhere (and at budgets the completion does not
    reach: it finished thinking within them)."""
    from grpozoo.algos.advantages import anytime

    params = tools.advantage.params
    budgets = anytime.check_budgets(params.get("budgets", anytime.DEFAULT_BUDGETS))
    end_thinking = str(params.get("end_thinking", anytime.DEFAULT_END_THINKING))
    summary_tokens = int(params.get("summary_tokens", anytime.DEFAULT_SUMMARY_TOKENS))
    temperature = float(params.get("summary_temperature", 0.0))
    rewards = required(batch.rewards, "batch.rewards", "budget_rewards")
    lengths = batch.completion_lengths
    values = torch.full((batch.batch_size, batch.completion_ids.shape[1] + 1), float("nan"))
    values[torch.arange(batch.batch_size), lengths] = rewards.float()
    cuts = [(i, b) for i in range(batch.batch_size) for b in budgets if b < int(lengths[i])]
    if not cuts:
        return values
    trigger = tools.tokenizer(end_thinking, add_special_tokens=False)["input_ids"]
    prompts: list[list[int]] = []
    prefixes: list[str] = []
    for i, b in cuts:
        prompt = batch.prompt_ids[i][batch.prompt_mask[i].bool()].tolist()
        thinking = batch.completion_ids[i, :b].tolist()
        prompts.append(prompt + thinking + trigger)
        prefixes.append(tools.tokenizer.decode(thinking, skip_special_tokens=True) + end_thinking)
    examples = [batch.examples[i] for i, _ in cuts]
    out = tools.generate(prompts, examples, 1, SamplingParams(summary_tokens, temperature=temperature))
    completions = [prefix + answer for prefix, answer in zip(prefixes, out.completions, strict=True)]
    scores, _, _ = tools.reward_of(out, completions)
    for k, (i, b) in enumerate(cuts):
        values[i, b] = scores[k]
    return values
