"""Optimisers by name (``train.optimizer: {name: lion, params: {...}}``), registered in
:data:`grpozoo.registry.optimizers`.

Every optimiser is built as ``cls(trainable_parameters, lr, weight_decay, **params)``: the learning
rate is ``train.learning_rate`` (moved by ``train.lr_scheduler``) and the weight decay
``train.weight_decay``; ``params`` are the optimiser's own (``betas``, …). Each keeps all of its
state (momentum, step counters) in ``state_dict()``, so a checkpoint resumes it exactly. The
updates are plain per-parameter loops of elementwise torch operations; they work on the local
shard of a sharded (FSDP) parameter as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from grpozoo import registry
from grpozoo.errors import ConfigError

# what the trainer passes itself: the parameters, train.learning_rate, train.weight_decay
POSITIONAL = 3
SET_ELSEWHERE = {"lr": "train.learning_rate", "weight_decay": "train.weight_decay"}


def build_optimizer(name: str, params: dict[str, Any], trainable: Iterable[torch.nn.Parameter], lr: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``trainable``; an unknown name or parameter, or a value the
    optimiser refuses, fails with a :class:`~grpozoo.errors.ConfigError` naming it."""
    cls = registry.optimizers.get(name)
    for key, where in SET_ELSEWHERE.items():
        if key in params:
            raise ConfigError(f"train.optimizer.params.{key}: the optimiser's {key} is {where}; set that instead")
    registry.check_params("optimizer", name, cls, params, POSITIONAL)
    try:
        return cls(trainable, lr, weight_decay, **params)
    except ValueError as error:
        raise ConfigError(f"train.optimizer {name!r}: {error}") from None


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a sharded (DTensor) tensor, the tensor itself otherwise; in-place
    changes to the part change the tensor."""
    to_local: Callable[[], torch.Tensor] | None = getattr(tensor, "to_local", None)
    return to_local() if to_local is not None else tensor


def _check_common(lr: float, weight_decay: float, betas: tuple[float, float] | None = None) -> None:
    if not lr > 0.0:
        raise ValueError(f"learning rate lr must be > 0, got {lr}")
    if not weight_decay >= 0.0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if betas is not None:
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {list(betas)}")


@registry.optimizers.register("adamw")
class AdamW(torch.optim.AdamW):
    """AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", arXiv:1711.05101),
    torch's fused kernel: the default.

    With gradient ``g`` and step ``t``: ``m ← β1·m + (1−β1)·g``; ``v ← β2·v + (1−β2)·g²``;
    ``θ ← θ − lr·λ·θ − lr·m̂/(√v̂ + eps)`` with ``m̂ = m/(1−β1^t)``, ``v̂ = v/(1−β2^t)``. ``lr`` and
    ``λ`` (weight decay) are scalars; the update is elementwise, so a parameter of any shape works
    and ``m``, ``v`` (state ``exp_avg``, ``exp_avg_sq``) have its shape. The fused kernel updates
    every parameter in one pass: several times faster than a per-parameter loop on a CPU."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        _check_common(lr, weight_decay, betas)
        super().__init__(params, lr=lr, betas=(betas[0], betas[1]), eps=eps, weight_decay=weight_decay, fused=True)


@registry.optimizers.register("lion")
class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", arXiv:2302.06675):
    every coordinate moves by the same step, in the direction of the sign of an interpolated momentum.

    With gradient ``g``, momentum ``m`` (state ``exp_avg``, zero at first) and decoupled weight decay
    ``λ``: ``c = β1·m + (1−β1)·g``; ``θ ← θ − lr·(sign(c) + λ·θ)``; ``m ← β2·m + (1−β2)·g``.
    Defaults β1 = 0.9, β2 = 0.99 (the paper's). ``lr`` and ``λ`` are scalars; the update is
    elementwise, so a parameter of any shape works and ``m`` has its shape. The paper advises a
    learning rate 3–10× smaller than AdamW's and a weight decay as much larger (the product
    ``lr·λ`` sets the decay's strength)."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.99),
    ):
        _check_common(lr, weight_decay, betas)
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "betas": tuple(betas)})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay = group["lr"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                theta, grad, momentum = _local(p), _local(p.grad), _local(state["exp_avg"])
                direction = torch.sign(momentum * beta1 + grad * (1 - beta1))
                if decay:
                    direction.add_(theta, alpha=decay)
                theta.add_(direction, alpha=-lr)
                momentum.mul_(beta2).add_(grad, alpha=1 - beta2)
        return loss


@registry.optimizers.register("lion_constrained")
class LionConstrained(Lion):
    """Lion read as constrained optimisation (Chen, Liu, Liang & Liu 2024, "Lion Secretly Solves
    Constrained Optimization: As Lyapunov Predicts", arXiv:2310.05898): with decoupled weight decay
    ``λ > 0`` Lion minimises the loss subject to ``‖θ‖∞ ≤ 1/λ``, its iterates driven into that box.

    The update is Lion's (``c = β1·m + (1−β1)·g``; ``θ ← θ − lr·(sign(c) + λ·θ)``;
    ``m ← β2·m + (1−β2)·g``) with the weight decay required: ``λ`` (``train.weight_decay``) must be
    > 0, and ``lr·λ ≤ 1``. Then, whatever the gradients, a coordinate outside the box shrinks,
    ``|θ| − 1/λ`` falling by the factor ``1 − lr·λ`` or faster each step, and the boxes
    ``|θ| ≤ 1/λ`` and ``|θ| ≤ 1/λ + lr`` are never left once entered. ``lr`` and ``λ`` are scalars;
    the update is elementwise, so a parameter of any shape works and ``m`` (state ``exp_avg``) has
    its shape."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.99),
    ):
        if not weight_decay > 0.0:
            raise ValueError(
                f"lion_constrained needs weight_decay λ > 0 (train.weight_decay in a run's configuration; the "
                f"iterates are driven into the box ‖θ‖∞ ≤ 1/λ), got weight_decay={weight_decay}"
            )
        if lr * weight_decay > 1.0:
            raise ValueError(
                f"lion_constrained needs lr·weight_decay ≤ 1 for its box ‖θ‖∞ ≤ 1/λ to hold, got "
                f"lr={lr} × weight_decay={weight_decay} = {lr * weight_decay}"
            )
        super().__init__(params, lr, weight_decay, betas)


@registry.optimizers.register("stosignsgd")
class StochasticSignSGD(torch.optim.Optimizer):
    """Stochastic sign SGD: each coordinate moves by exactly ``lr``, in the direction of a stochastic
    sign of its gradient that is unbiased up to scale — the stochastic-sign compressor of Safaryan &
    Richtárik 2021, "Stochastic Sign Descent Methods: New Algorithms and Better Theory" (arXiv:1905.12938).

    With gradient ``g`` of a parameter tensor and bound ``B ≥ max|g|``: each coordinate's sign ``s``
    is +1 with probability ``(1 + g/B)/2`` and −1 otherwise, so ``E[s] = g/B``; then
    ``θ ← θ − lr·(s + λ·θ)`` (decoupled weight decay ``λ``, 0 by default). ``B`` is the tensor's own
    max-abs gradient, or ``max(bound, max|g|)`` with ``bound`` given (a fixed scale: the clipped
    gradient never exceeds ``train.max_grad_norm`` in any coordinate, so ``bound=max_grad_norm``
    keeps it fixed). A tensor whose gradient is all zero does not move (but for the decay). The
    signs are drawn from a generator seeded by ``seed``, the parameter's index and its step count
    (state ``step``), so a resumed run draws the same signs and every data-parallel process the same
    (a sharded parameter's shards draw apart). ``lr``, ``λ`` and ``B`` are scalars; the update is
    elementwise over a parameter of any shape."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        bound: float | None = None,
        seed: int = 0,
    ):
        _check_common(lr, weight_decay)
        if bound is not None and not bound > 0.0:
            raise ValueError(f"bound must be > 0 (or None: each tensor's max-abs gradient), got {bound}")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "bound": bound, "seed": seed})

    @staticmethod
    def generator(seed: int, index: int, step: int, rank: int, device: torch.device) -> torch.Generator:
        """The generator of one parameter's signs at one step."""
        mixed = ((seed * 1_000_003 + index) * 1_000_033 + step) * 1_000_037 + rank
        return torch.Generator(device=device).manual_seed(mixed % (2**63 - 1))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        index = -1
        for group in self.param_groups:
            lr, decay, bound, seed = group["lr"], group["weight_decay"], group["bound"], group["seed"]
            for p in group["params"]:
                index += 1
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                state["step"] += 1
                sharded = hasattr(p, "to_local")
                rank = torch.distributed.get_rank() if sharded and torch.distributed.is_initialized() else 0
                theta, grad = _local(p), _local(p.grad)
                largest = float(grad.abs().max()) if grad.numel() else 0.0
                scale = max(bound, largest) if bound is not None else largest
                if scale > 0.0:
                    generator = self.generator(seed, index, int(state["step"]), rank, grad.device)
                    draws = torch.rand(grad.shape, generator=generator, device=grad.device, dtype=torch.float64)
                    up = draws < (1 + grad.to(torch.float64) / scale) / 2  # +1 with probability (1 + g/B)/2
                    direction = torch.where(up, 1.0, -1.0).to(theta.dtype)
                else:
                    direction = torch.zeros_like(theta)
                if decay:
                    direction.add_(theta, alpha=decay)
                theta.add_(direction, alpha=-lr)
        return loss
