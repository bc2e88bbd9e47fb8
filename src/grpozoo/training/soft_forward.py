"""The learning forward of soft-thinking rollouts (Zheng and Lee 2025, "SofT-GRPO: Surpassing
Discrete-Token LLM Reinforcement Learning via Gumbel-Reparameterized Soft-Thinking Policy
Optimization", arXiv:2511.06411).

Where a batch carries soft steps (``Rollouts.soft_mask``, from
:class:`grpozoo.generation.soft_engine.SoftThinkingGenerator`), the model reads at each soft position
the mixture the sampler fed, ``Σ_k w_k·e_k`` with the RECORDED weights and token ids, in place of the
token's embedding; and the log-prob reported there is the Gumbel log-density of the recorded step
under the current policy, :func:`~grpozoo.generation.soft_thinking.soft_step_logprob` of its
log-probs on the recorded top-k tokens. Its difference with the sampler's (or the old policy's)
value is SofT-GRPO's reparameterised log-ratio, so any ratio-based loss applies unchanged;
discrete positions get the plain forward's log-probs. Batches without soft steps take
:func:`~grpozoo.training.forward.completion_logprobs` itself.

The log-prob of a soft step is a log-density of a ``k``-dimensional noise (summed over the top-k),
not the log-probability of a token: components that read log-probs as probabilities (e.g. ``exp``
of them) see a density there.
"""

from __future__ import annotations

import torch

from grpozoo.generation.soft_thinking import mixture_embedding, soft_step_logprob
from grpozoo.rollouts import Rollouts, required
from grpozoo.training.forward import completion_logprobs, completion_outputs, fused_head_applies, last_states


def soft_completion_logprobs(
    model, batch: Rollouts, temperature: float = 1.0, with_entropy: bool = False, entropy_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs ``[b, T]`` (and entropies) of the completion as :func:`completion_logprobs` computes
    them, the soft positions read and scored as the module says."""
    if batch.soft_mask is None or not bool(batch.soft_mask.any()):
        return completion_logprobs(model, batch, temperature, with_entropy, entropy_grad)
    device = next(model.parameters()).device
    reader = "the soft-thinking forward"
    ids = required(batch.soft_ids, "soft_ids", reader).to(device)
    weights = required(batch.soft_weights, "soft_weights", reader).to(device)
    noise = required(batch.soft_noise, "soft_noise", reader).to(device)
    old = required(batch.soft_logprobs, "soft_logprobs", reader).to(device)
    soft = batch.soft_mask.to(device).bool() & batch.completion_mask.to(device).bool()
    input_ids = torch.cat([batch.prompt_ids, batch.completion_ids], dim=1).to(device)
    attention = torch.cat([batch.prompt_mask, batch.completion_mask], dim=1).to(device)
    position_ids = (attention.cumsum(dim=1) - 1).clamp(min=0)
    embedding = model.get_input_embeddings()
    embeds = embedding(input_ids)
    prompt = batch.prompt_ids.shape[1]
    mixed = mixture_embedding(weights, ids, embedding.weight).to(embeds.dtype)  # [b, T, D]
    completion = torch.where(soft.unsqueeze(-1), mixed, embeds[:, prompt:])
    embeds = torch.cat([embeds[:, :prompt], completion], dim=1)
    num_completion = batch.completion_ids.shape[1]
    states, _ = last_states(model, num_completion + 1, inputs_embeds=embeds, attention_mask=attention,
                            position_ids=position_ids, use_cache=False)
    states = states[:, :-1]  # position t predicts completion position t
    logp, entropy = completion_outputs(model, states, batch, temperature, with_entropy, entropy_grad)
    at_soft = states[soft]  # [n, ·]: hidden states (fused head) or logits
    logits = at_soft @ model.get_output_embeddings().weight.T if fused_head_applies(model) else at_soft
    new = torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, ids[soft])
    scored = soft_step_logprob(new, old[soft].float(), noise[soft].float())
    return logp.masked_scatter(soft, scored.to(logp.dtype)), entropy
