"""LoRA layers as one autograd function in the learner's forward and backward.

PEFT computes a LoRA layer as ``base(x) + B(A(dropout(x))) · scale``: three modules, an elementwise
scale and an add, each with its own autograd node, and in the backward the scale again and an add
of the two input gradients, every one a full pass over an ``[n, out]`` or ``[n, in]`` tensor.
:class:`_LoraLinear` computes the same ``y = x Wᵀ + b + scale · (x Aᵀ) Bᵀ`` with the scaled
low-rank product added by the matmul itself (``addmm``), and a hand-written backward:

``u = x Aᵀ``; ``dx = dy W + (scale · dy B) A``; ``dA = (scale · dy B)ᵀ x``; ``dB = scale · dyᵀ u``.

Only the case it is written for takes it: one active adapter, a frozen plain linear base, no
dropout in effect, no weight variant (DoRA), one dtype throughout. Every other call (adapters
disabled or merged, as for the reference log-probs) runs PEFT's own forward, and so does every
layer of a model sharded with FSDP (it gathers a layer's weights in hooks around the forward it
knows, and a layer of its own computing from them is not a case to trust untested on GPUs).
"""

from __future__ import annotations

import types
from contextlib import contextmanager

import torch


class _LoraLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, a, b, scale):
        flat = x.reshape(-1, x.shape[-1])
        u = flat @ a.T
        y = torch.nn.functional.linear(flat, weight, bias).addmm_(u, b.T, alpha=scale)
        ctx.save_for_backward(flat, weight, a, b, u)
        ctx.scale, ctx.input_shape = scale, x.shape
        return y.view(*x.shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad_y):
        flat, weight, a, b, u = ctx.saved_tensors
        grad_y = grad_y.reshape(-1, grad_y.shape[-1])
        grad_u = (grad_y @ b).mul_(ctx.scale)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad_y @ weight).addmm_(grad_u, a).view(ctx.input_shape)
        grad_a = grad_u.T @ flat if ctx.needs_input_grad[3] else None
        grad_b = torch.mm(grad_y.T, u).mul_(ctx.scale) if ctx.needs_input_grad[4] else None
        return grad_x, None, None, grad_a, grad_b, None


def _single_adapter(layer, x: torch.Tensor):
    """``(base, A, B, scale)`` when this call of the LoRA ``layer`` is the case :class:`_LoraLinear`
    is written for, else None."""
    if layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    adapter = layer.active_adapters[0]
    if adapter not in layer.lora_A or (getattr(layer, "lora_variant", None) or {}).get(adapter) is not None:
        return None
    base, lora_a, lora_b = layer.get_base_layer(), layer.lora_A[adapter], layer.lora_B[adapter]
    dropout = layer.lora_dropout[adapter]
    dropout_off = type(dropout) is torch.nn.Identity or (
        type(dropout) is torch.nn.Dropout and (dropout.p == 0 or not dropout.training)
    )
    if not dropout_off or getattr(layer, "fan_in_fan_out", False):
        return None
    if type(base) is not torch.nn.Linear or type(lora_a) is not torch.nn.Linear or type(lora_b) is not torch.nn.Linear:
        return None
    if lora_a.bias is not None or lora_b.bias is not None or base.weight.requires_grad:
        return None
    if base.bias is not None and base.bias.requires_grad:
        return None
    if len({x.dtype, base.weight.dtype, lora_a.weight.dtype, lora_b.weight.dtype}) != 1:
        return None
    return base, lora_a.weight, lora_b.weight, layer.scaling[adapter]


def _fused_forward(self, x, *args, **kwargs):
    """The LoRA layer's forward within :func:`fused_lora`: :class:`_LoraLinear` where
    :func:`_single_adapter` allows, else PEFT's own forward. Under autocast (the learner's
    ``train.compute_dtype=bfloat16``) PEFT's forward runs too: autocast would run the function's
    forward matmuls in bfloat16, while its hand-written backward, which autocast does not reach,
    would multiply bfloat16 gradients by the float32 weights (mixed dtypes)."""
    if torch.is_autocast_enabled(x.device.type):
        return type(self).forward(self, x, *args, **kwargs)
    parts = None if args or kwargs else _single_adapter(self, x)
    if parts is None:
        return type(self).forward(self, x, *args, **kwargs)
    base, a, b, scale = parts
    return _LoraLinear.apply(x, base.weight, base.bias, a, b, scale)


@contextmanager
def fused_lora(model):
    """Within the block, the LoRA linear layers of ``model`` compute through :class:`_LoraLinear`
    where it applies (the same values and gradients as PEFT's forward). No effect without PEFT or
    on a sharded model."""
    from grpozoo.training.distributed import is_sharded

    if is_sharded(model):
        yield
        return
    try:
        from peft.tuners.lora import Linear as LoraLinear
    except ImportError:
        yield
        return
    layers = [m for m in model.modules() if type(m) is LoraLinear]
    for layer in layers:
        layer.forward = types.MethodType(_fused_forward, layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
