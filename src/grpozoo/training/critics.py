"""Learned critics: a small head with its own parameters and AdamW over the policy's detached
hidden states, trained alongside the policy once per step and checkpointed with it.

Two learner-side providers fill the fields a component over a critic declares in ``needs`` (an
advantage estimator, or B-Coder's loss, :mod:`grpozoo.algos.losses.value_based`):

* ``values`` ``[B, T+1]``: a token-level critic ``V(s_t)`` at every state ``s_t`` (the prompt and
  the first ``t`` completion tokens), read off the last hidden state at the position that predicts
  completion token ``t`` (POAD, T-PPO: :mod:`grpozoo.algos.advantages.critics`); 0 past a row's end;
* ``probe_values`` ``[B]``: a probe's predicted P(reward = 1) of each whole rollout, from the mean
  last hidden state over the prompt and over the response and the mean, max and std of the token
  entropies (POISE).

Each runs one no-grad forward of the policy for the hidden states (so the policy's gradient is
unchanged), predicts with the head as it stands, then takes one AdamW step of the head on the
targets the estimator's registration declares (``value_targets``); the predictions handed to the
estimator are those before that step. The head's parameters and optimiser state live in
``ctx.state`` (under ``critic/values`` or ``critic/probe_values``), which every checkpoint saves,
so a resumed run continues exactly. The head's width (``critic_hidden``: 0 for a linear head) and
learning rate (``critic_lr``) are the estimator's parameters.

A critic's update reads the whole batch on one process: several learner processes are refused at
start-up (:func:`check_critic_run`).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from grpozoo import registry
from grpozoo.errors import ConfigError
from grpozoo.registry import LEARNER_SIDE, Provided
from grpozoo.rollouts import Rollouts, required
from grpozoo.training.forward import micro_batches
from grpozoo.training.providers import LearnerTools

CRITIC_NEEDS = frozenset({"values", "probe_values"})
SEED = 0  # the heads' initial weights come from their own seed, never the run's random stream


def check_critic_run(needs: set[str], advantage: str, processes: int) -> None:
    """Refuse at start-up, naming the fix, a run whose components read a learned critic when the
    advantage estimator ``advantage`` does not say what it trains on (its registration's
    ``value_targets``), or when several learner ``processes`` would each update it (its update reads
    the whole batch on one process)."""
    used = sorted(needs & CRITIC_NEEDS)
    if not used:
        return
    if registry.advantages.spec(advantage).value_targets is None:
        able = [n for n in registry.advantages.names() if registry.advantages.spec(n).value_targets is not None]
        raise ConfigError(
            f"the run reads a learned critic ({', '.join(used)}), which trains on the targets its advantage "
            f"estimator declares; {advantage!r} declares none: choose one of {', '.join(able)}"
        )
    if processes > 1:
        raise ConfigError(
            f"the run learns a critic ({', '.join(used)}), which trains on one learner process; this run "
            f"has {processes}: train it with one process (no --processes), or choose components without "
            f"a learned critic"
        )


@dataclass
class CriticInputs:
    """What a critic reads from the policy's forward, detached: the mean last hidden state over each
    prompt ``prompt [B, H]``, and the last hidden states ``states [B, T+1, H]`` at the positions that
    predict completion tokens ``0 … T`` (``states[:, t]`` is the state ``s_t``; 0 past a row's end)."""

    prompt: torch.Tensor
    states: torch.Tensor


@torch.no_grad()
def hidden_states(model, batch: Rollouts, token_budget: int) -> CriticInputs:
    """:class:`CriticInputs` of ``batch`` under ``model`` (no graph), in micro-batches of at most
    ``token_budget`` padded tokens."""
    b, width = batch.completion_ids.shape
    device = next(model.parameters()).device
    prompt = states = None
    for rows, mb in micro_batches(batch, token_budget):
        input_ids = torch.cat([mb.prompt_ids, mb.completion_ids], dim=1).to(device)
        attention = torch.cat([mb.prompt_mask, mb.completion_mask], dim=1).to(device)
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
        out = model.get_decoder()(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                                  use_cache=False)
        hidden = out.last_hidden_state.float()
        p = mb.prompt_ids.shape[1]
        if prompt is None or states is None:
            prompt = torch.zeros(b, hidden.shape[-1], device=device)
            states = torch.zeros(b, width + 1, hidden.shape[-1], device=device)
        prompt_mask = mb.prompt_mask.to(device).unsqueeze(-1).float()
        prompt[rows.to(device)] = (hidden[:, :p] * prompt_mask).sum(1) / prompt_mask.sum(1).clamp(min=1)
        # position p-1+t predicts completion token t: the state after t completion tokens
        lengths = mb.completion_mask.sum(dim=1).to(device)
        own = hidden[:, p - 1:]
        keep = (torch.arange(own.shape[1], device=device).unsqueeze(0) <= lengths.unsqueeze(1)).unsqueeze(-1)
        states[rows.to(device), : own.shape[1]] = own * keep
    assert prompt is not None and states is not None  # a batch has at least one micro-batch
    return CriticInputs(prompt, states)


class ValueHead(nn.Module):
    """A linear head (``hidden=0``) or a 2-layer MLP of width ``hidden`` (GELU), ``[..., F] -> [...]``."""

    def __init__(self, features: int, hidden: int = 0):
        super().__init__()
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, 1))
        else:
            self.net = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def train_head(
    state: dict[str, Any],
    key: str,
    features: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    hidden: int,
    lr: float,
    probability: bool,
) -> tuple[torch.Tensor, float | None]:
    """The head ``state[key]``'s predictions ``[N]`` for ``features [N, F]`` (detached, before this
    call's update) and its loss (None without a step), then one AdamW step on the weighted mean loss against ``targets [N]``
    (``weights [N]``, 0 = not trained on; no step when all are 0): squared error, or with
    ``probability`` a sigmoid output and binary cross-entropy. The head's parameters and AdamW state
    are read from and written back to ``state[key]`` (plain tensors: checkpointed with the run); the
    first call initialises the head from a fixed seed."""
    device = features.device
    saved = state.get(key)
    with torch.random.fork_rng(devices=[]):  # the run's own random stream stays untouched
        torch.manual_seed(SEED)
        head = ValueHead(features.shape[-1], hidden)
    if saved is not None:
        head.load_state_dict(saved["head"])
    head.to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0, foreach=False)
    if saved is not None and saved["optimizer"]["state"]:
        optimizer.load_state_dict(saved["optimizer"])
    features, targets, weights = features.detach().float(), targets.to(device).float(), weights.to(device).float()
    raw = head(features)
    predictions = torch.sigmoid(raw) if probability else raw
    total = weights.sum()
    trained: float | None = None
    if total > 0:
        if probability:
            losses = nn.functional.binary_cross_entropy_with_logits(raw, targets, reduction="none")
        else:
            losses = (raw - targets) ** 2
        loss = (losses * weights).sum() / total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        trained = float(loss.detach())
    state[key] = {
        "head": {name: value.detach().cpu().clone() for name, value in head.state_dict().items()},
        "optimizer": _to_cpu(copy.deepcopy(optimizer.state_dict())),
    }
    return predictions.detach(), trained


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def estimator_params(config) -> dict[str, Any]:
    """The advantage estimator's parameters (``config``: its ComponentConfig), defaults filled in."""
    fn = registry.advantages.get(config.name)
    defaults = {name: p.default for name, p in inspect.signature(fn).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {**defaults, **config.params}


def _targets(batch: Rollouts, tools: LearnerTools) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    config = required(tools.advantage, "tools.advantage", "a learned critic")
    spec = registry.advantages.spec(config.name)
    if spec.value_targets is None:
        raise ValueError(f"advantage estimator {config.name!r} reads a learned critic but is not registered "
                         f"with the value_targets it trains on")
    params = estimator_params(config)
    missing = [name for name in ("critic_hidden", "critic_lr") if name not in params]
    if missing:
        raise ValueError(f"advantage estimator {config.name!r} reads a learned critic but has no parameter(s) "
                         f"{missing}: the critic head's width and learning rate")
    targets, weights = spec.value_targets(batch, **params)
    return params, targets, weights


# ----------------------------------------------------------------------------- the providers
@registry.providers.register("values", side=LEARNER_SIDE)
def critic_values(batch: Rollouts, tools: LearnerTools) -> Provided:
    """A token-level critic's ``V(s_t)`` ``[B, T+1]`` (0 past each row's end state), then its update;
    its loss is logged as ``critic/loss``."""
    params, targets, weights = _targets(batch, tools)
    inputs: CriticInputs = required(tools.hidden_states, "tools.hidden_states", "a learned critic")(batch)
    b, width = inputs.states.shape[:2]
    values, loss = train_head(batch.state, "critic/values", inputs.states.reshape(b * width, -1),
                              targets.reshape(-1), weights.reshape(-1), params["critic_hidden"], params["critic_lr"],
                              probability=False)
    real = torch.arange(width).unsqueeze(0) <= batch.completion_lengths.unsqueeze(1)
    return Provided(values.reshape(b, width).cpu() * real, _loss_metric("critic/loss", loss))


@registry.providers.register("probe_values", side=LEARNER_SIDE)
def probe_values(batch: Rollouts, tools: LearnerTools) -> Provided:
    """A probe's predicted P(reward = 1) ``[B]`` of each rollout from its own internal states, then its
    update (POISE); its loss (binary cross-entropy) is logged as ``critic/probe_loss``."""
    params, targets, weights = _targets(batch, tools)
    inputs: CriticInputs = required(tools.hidden_states, "tools.hidden_states", "a learned critic")(batch)
    entropies = batch.entropies if batch.entropies is not None else tools.policy_entropies(batch)
    features = probe_features(inputs, batch.completion_mask, entropies)
    values, loss = train_head(batch.state, "critic/probe_values", features, targets, weights, params["critic_hidden"],
                              params["critic_lr"], probability=True)
    return Provided(values.cpu(), _loss_metric("critic/probe_loss", loss))


def _loss_metric(name: str, loss: float | None) -> dict[str, float]:
    return {} if loss is None else {name: loss}


def probe_features(inputs: CriticInputs, mask: torch.Tensor, entropies: torch.Tensor) -> torch.Tensor:
    """POISE's probe features ``[B, 2H+3]``: the mean last hidden state over the prompt and over the
    response (the states that predict its tokens), and the mean, max and std of the token entropies
    over the response (``mask [B, T]``, ``entropies [B, T]``)."""
    device = inputs.states.device
    m = mask.to(device).float()
    count = m.sum(1, keepdim=True).clamp(min=1)
    response = (inputs.states[:, :-1] * m.unsqueeze(-1)).sum(1) / count
    h = entropies.to(device).float() * m
    mean = h.sum(1, keepdim=True) / count
    top = torch.where(m > 0, h, torch.finfo(h.dtype).min).max(1, keepdim=True).values.clamp(min=0)
    std = (((h - mean) ** 2 * m).sum(1, keepdim=True) / count).sqrt()
    return torch.cat([inputs.prompt, response, mean, top, std], dim=1)

