"""The model side of the sampling loop: a prefill, then one token per row at a time, with a KV cache
that can drop rows.

Two implementations of one small interface (``prefill``, ``step``, ``keep``):

* :class:`LlamaFamilyDecoder` runs the decoder layers of a Llama, Qwen2 or Mistral model itself,
  reading the model's own weights: a KV cache allocated once for the whole completion and written
  in place, and a handful of tensor ops a layer. A decoding step of SmolLM2-135M for 16 rows spends
  about as long in Hugging Face's per-layer module machinery and cache bookkeeping as in its
  matmuls on a CPU; this path removes most of that. It computes what the model's forward computes
  (tested against it, with and without padding and LoRA).
* :class:`HFDecoder` calls the model's forward with its own cache: any other architecture.

:func:`decoder_for` picks the first that fits the model.
"""

from __future__ import annotations

import types
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

from grpozoo.modeling import cache_keyword, head_is_plain

# inputs of at most this many rows (decoding steps) take the W @ x.T layout on a CPU
FEW_ROWS = 64
PACKING_ROWS = 16  # the number of rows oneDNN's weight reordering is told to expect (a decoding step's)
LLAMA_FAMILY = ("llama", "qwen2", "mistral")


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ W.T + b`` for ``x [..., in]``. On a CPU, inputs of at most ``FEW_ROWS`` rows compute
    ``(W @ x.T).T``: the same product, with a layout that streams the weight about 1.4x faster."""
    rows = x.numel() // x.shape[-1]
    if rows > FEW_ROWS or x.device.type != "cpu":
        return F.linear(x, weight, bias)
    out = (weight @ x.reshape(rows, x.shape[-1]).T).T
    if bias is not None:
        out = out + bias
    return out.contiguous().view(*x.shape[:-1], out.shape[-1])


@contextmanager
def decoding_linears(model):
    """Within the block, the CPU model's ``nn.Linear`` layers compute through :func:`linear`, so the
    model's own forward also takes the faster layout on a decoding step's few rows."""
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear and m.weight.device.type == "cpu"]
    for layer in linears:
        fast = types.MethodType(lambda self, x: linear(x, self.weight, self.bias), layer)
        layer.forward = fast  # type: ignore[method-assign]
    try:
        yield
    finally:
        for layer in linears:
            del layer.forward


def packable_on_this_machine() -> bool:
    """Whether float32 CPU weights can be reordered for oneDNN's linear kernel here."""
    return torch.backends.mkldnn.is_available()


def _packable(weight: torch.Tensor) -> bool:
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and packable_on_this_machine()


def _pack(parts: list[tuple[torch.Tensor, torch.Tensor | None]]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The parts' weights concatenated and reordered into oneDNN's blocked layout, and their biases
    concatenated (None without any)."""
    weights = [w.detach() for w, _ in parts]
    packed = torch.ops.mkldnn._reorder_linear_weight(torch.cat(weights) if len(weights) > 1 else weights[0],
                                                     PACKING_ROWS)
    if all(b is None for _, b in parts):
        return packed, None
    return packed, torch.cat([w.new_zeros(w.shape[0]) if b is None else b.detach() for w, b in parts])


# packed weights, kept while their layers are unchanged: keyed by the first weight, checked by every
# part's identity and version (an optimiser step or a LoRA fold changes them in place); the values
# hold no reference to the keys, so an entry goes when its weight does
_PACKED = WeakIdKeyDictionary()


class Projection:
    """Linear layers that read the same input, as one map whose output is theirs side by side
    (``q, k, v``; ``gate, up``): ``x [..., in] -> [..., sum(out)]`` from ``parts`` of ``(weight, bias)``.

    On a CPU in float32 the weights are concatenated and reordered into oneDNN's blocked layout
    (once while they are unchanged), whose kernel streams them faster than ``F.linear`` does, at a
    decoding step's few rows and at a prefill's hundreds alike (SmolLM2's output layer about 1.7x at
    16 rows). Equal to the parts' ``x @ W.T + b`` up to the order of float32 additions. Elsewhere
    each part runs on its own."""

    def __init__(self, parts: list[tuple[torch.Tensor, torch.Tensor | None]]):
        self.parts = parts
        self.packed = None
        first = parts[0][0]
        if _packable(first):
            signature = tuple((id(t), t._version) for part in parts for t in part if t is not None)
            cached = _PACKED.get(first)
            if cached is None or cached[0] != signature:
                cached = (signature, *_pack(parts))
                _PACKED[first] = cached
            _, self.packed, self.bias = cached

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is None:
            outs = [linear(x, w, b) for w, b in self.parts]
            return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        out = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), self.packed, self.bias, "none", [], "")
        return out.view(*x.shape[:-1], out.shape[-1])


class HFDecoder:
    """Decoding through the model's own forward and cache (any causal LM)."""

    def __init__(self, model):
        self.model = model
        self.cache_kw = cache_keyword(model)

    def prefill(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Run the left-padded prompts ``[P, L]``; returns the logits ``[P, V]`` of their next token."""
        positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
        out = self.model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True,
                         logits_to_keep=1)
        self.cache = out.past_key_values
        # without padding every row attends to its whole cache: no mask to build at each step
        self.attention = None if bool(prompt_mask.all()) else prompt_mask
        self.next_position = prompt_mask.sum(dim=1)
        return out.logits[:, -1, :]

    def keep(self, rows: torch.Tensor) -> None:
        """Continue with the cache rows ``rows`` only (in that order; a row may repeat)."""
        self.cache.batch_select_indices(rows)
        self.next_position = self.next_position[rows]
        if self.attention is not None:
            self.attention = self.attention[rows]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token ``[b]`` per row; returns the logits ``[b, V]`` of the next."""
        if self.attention is not None:
            self.attention = torch.cat([self.attention, torch.ones_like(self.attention[:, :1])], dim=1)
        out = self.model(input_ids=tokens.unsqueeze(1), attention_mask=self.attention,
                         position_ids=self.next_position.unsqueeze(1), use_cache=True, **{self.cache_kw: self.cache})
        self.next_position = self.next_position + 1
        return out.logits[:, -1, :]


def _plain_weights(module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``(weight, bias)`` of a linear layer whose forward is exactly ``F.linear`` with them: a plain
    ``nn.Linear``, or a LoRA layer whose adapters are all merged (folded) or disabled. Else None."""
    if type(module) is torch.nn.Linear:
        return module.weight, module.bias
    base = getattr(module, "base_layer", None)
    if type(base) is not torch.nn.Linear or getattr(module, "lora_variant", None):
        return None
    if module.disable_adapters or all(a in module.merged_adapters for a in module.active_adapters):
        return base.weight, base.bias
    return None


def _rms_norm(x: torch.Tensor, norm) -> torch.Tensor:
    """Llama's RMSNorm, in the same order of operations (float32 statistics, weight applied last)."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * x.to(dtype)


class LlamaFamilyDecoder:
    """Decoding a Llama, Qwen2 or Mistral model by running its layers directly (see the module)."""

    def __init__(self, layers: list[dict], base):
        self.layers = layers
        self.embed = base.model.embed_tokens
        self.rotary = base.model.rotary_emb
        self.final_norm = base.model.norm
        self.head = base.get_output_embeddings().weight
        self.head_projection = Projection([(self.head, None)])
        config = base.config
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = getattr(config, "num_key_value_heads", None) or self.num_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.num_heads
        self.scaling = base.model.layers[0].self_attn.scaling

    @classmethod
    def supports(cls, model) -> LlamaFamilyDecoder | None:
        """The decoder for ``model``, or None when it is not a plain Llama-family model whose every
        linear layer runs as ``F.linear`` of its weights (LoRA adapters folded or off)."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = base.config
        if getattr(config, "model_type", None) not in LLAMA_FAMILY or not head_is_plain(base):
            return None
        if getattr(config, "hidden_act", None) != "silu" or getattr(config, "use_sliding_window", False):
            return None
        if getattr(config, "sliding_window", None) is not None and config.model_type == "mistral":
            return None  # a window would cut attention short; the model's forward handles it
        inner = getattr(base, "model", None)
        if inner is None or not all(hasattr(inner, n) for n in ("embed_tokens", "rotary_emb", "norm", "layers")):
            return None
        layers = []
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            modules = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
            weights = [w for w in map(_plain_weights, modules) if w is not None]
            if len(weights) < len(modules) or hasattr(attn, "q_norm"):
                return None
            q, k, v, o, gate, up, down = weights
            layers.append({"qkv": Projection([q, k, v]), "o": Projection([o]), "gate_up": Projection([gate, up]),
                           "down": Projection([down]), "intermediate": gate[0].shape[0],
                           "norm_in": layer.input_layernorm, "norm_post": layer.post_attention_layernorm})
        return cls(layers, base)

    def prefill(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        rows, length = prompt_ids.shape
        device, dtype = prompt_ids.device, self.head.dtype
        shape = (rows, self.num_kv_heads, length + max_new_tokens, self.head_dim)
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in self.layers]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in self.layers]
        self.length = 0
        padded = not bool(prompt_mask.all())
        # -inf on the prompt's padding (for every later query), 0 elsewhere; None without padding
        self.bias = None
        if padded:
            self.bias = torch.zeros(rows, 1, 1, shape[2], device=device, dtype=dtype)
            self.bias[:, 0, 0, :length].masked_fill_(prompt_mask == 0, float("-inf"))
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        # each query sees earlier non-padding keys; a padding query sees itself (its output is unused)
        allowed = causal & prompt_mask.bool()[:, None, None, :] | torch.eye(length, dtype=torch.bool, device=device)
        positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
        self.next_position = prompt_mask.sum(dim=1)
        return self._forward(prompt_ids, positions, allowed)

    def keep(self, rows: torch.Tensor) -> None:
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]
        self.next_position = self.next_position[rows]
        if self.bias is not None:
            self.bias = self.bias[rows]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = None if self.bias is None else self.bias[..., : self.length + 1]
        logits = self._forward(tokens.unsqueeze(1), self.next_position.unsqueeze(1), mask)
        self.next_position = self.next_position + 1
        return logits

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Run ``ids [b, s]`` at ``positions [b, s]`` after the ``self.length`` cached ones, appending
        their keys and values; ``mask`` (boolean, or additive) is the attention mask over the cache.
        Returns the logits ``[b, V]`` after the last position."""
        b, s = ids.shape
        heads, kv_heads, dim = self.num_heads, self.num_kv_heads, self.head_dim
        h = self.embed(ids)
        cos, sin = self.rotary(h, positions)
        # rotary embedding as x*cos + roll(x, d/2)*sin', sin' = sin with its first half negated: the
        # same products as x*cos + rotate_half(x)*sin, for queries and keys in one go
        sin = torch.cat((-sin[..., : dim // 2], sin[..., dim // 2 :]), dim=-1)
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)  # [b, s, 1, d]: the same for every head
        start, end = self.length, self.length + s
        for layer, keys, values in zip(self.layers, self.keys, self.values, strict=True):
            qkv = layer["qkv"](_rms_norm(h, layer["norm_in"])).view(b, s, heads + 2 * kv_heads, dim)
            qk = qkv[:, :, : heads + kv_heads]
            qk = qk * cos + qk.roll(dim // 2, dims=-1) * sin
            keys[:, :, start:end] = qk[:, :, heads:].transpose(1, 2)
            values[:, :, start:end] = qkv[:, :, heads + kv_heads :].transpose(1, 2)
            out = self._attend(qk[:, :, :heads], keys[:, :, :end], values[:, :, :end], mask)
            h = h + layer["o"](out)
            gate_up = layer["gate_up"](_rms_norm(h, layer["norm_post"]))
            width = layer["intermediate"]
            h = h + layer["down"](F.silu(gate_up[..., :width]) * gate_up[..., width:])
        self.length = end
        return self.head_projection(_rms_norm(h[:, -1], self.final_norm))

    def _attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None):
        """Attention of the queries ``q [b, s, heads, d]`` over the cache ``keys, values [b, kv_heads, t, d]``;
        returns ``[b, s, heads * d]``."""
        b, s = q.shape[:2]
        if s > 1:
            group = self.num_heads // self.num_kv_heads
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), keys.repeat_interleave(group, dim=1), values.repeat_interleave(group, dim=1),
                attn_mask=mask, scale=self.scaling,
            )
            return out.transpose(1, 2).reshape(b, s, -1)
        # a decoding step: the query heads that share a key/value head stand in for query positions,
        # and three small matmuls beat SDPA's kernel on a CPU at these sizes
        q = q.reshape(b, self.num_kv_heads, -1, self.head_dim)
        scores = torch.matmul(q, keys.transpose(-1, -2)).mul_(self.scaling)
        if mask is not None:
            scores = scores + mask
        return torch.matmul(torch.softmax(scores, dim=-1), values).reshape(b, 1, -1)


def decoder_for(model) -> LlamaFamilyDecoder | HFDecoder:
    """The fastest decoder that computes ``model``'s own forward."""
    return LlamaFamilyDecoder.supports(model) or HFDecoder(model)
