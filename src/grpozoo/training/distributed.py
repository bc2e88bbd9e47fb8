"""The learner on several processes: PyTorch's DistributedDataParallel (DDP) over a process group
that a launcher set up (``accelerate launch`` or ``torchrun``; gloo on CPUs, NCCL on GPUs).

Exactness is the contract: every process holds the whole learning batch and backpropagates only
its own rows, with the aggregation normalised by the whole batch's totals and two-phase losses
given the whole batch's statistics. The per-process gradients then add up to the one-process
gradient; DDP averages them over the N processes, so each process's loss is scaled by N. The
loss diagnostics (sums over tokens) are summed over the processes, their maxima maximised.

DDP synchronises gradients only in backward passes of its own module's forward, and the learner's
forward reaches into the model (the decoder, the output layer's weight, fused LoRA functions):
:class:`MicroBatchLoss` makes one micro-batch's whole loss the forward of a module holding the
model, and that module is what DDP wraps.

With ``train.distributed=fsdp`` the model is sharded instead (FSDP2, :func:`shard`): each process
keeps a share of every parameter, its gradient and its optimiser state, and gathers a layer's
weights only for that layer's forward and backward. The same exactness holds (FSDP averages the
gradients as DDP does). Gathering is collective, so every process runs as many forwards as the
others (:meth:`MicroBatchLoss.forward` pads with zero-loss ones), the learner's forward goes
through the model's own (the fused output layer and LoRA kernels, which read weights directly,
step aside), and what needs whole weights outside a forward — sampling with the ``hf`` engine,
held-out evaluation, the checkpoint's model folder — reads a whole copy (:class:`WholeCopy`)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist

from grpozoo.generation.engine import EngineWrapper


def world_size() -> int:
    """The number of learner processes: 1 without a process group."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def own_rows(batch_size: int, group_ids: torch.Tensor, processes: int, index: int) -> torch.Tensor:
    """The rows process ``index`` of ``processes`` learns: whole groups (a group never spans two
    processes), dealt round-robin in order of first appearance."""
    groups = list(dict.fromkeys(group_ids.tolist()))
    mine = set(groups[index::processes])
    return torch.tensor([i for i in range(batch_size) if int(group_ids[i]) in mine], dtype=torch.long)


class MicroBatchLoss(torch.nn.Module):
    """``loss(micro_batch, *args) -> (loss, diagnostics)`` as the forward of a module that holds
    ``model``, so that DDP can wrap it; a ``None`` micro-batch (a process with no rows this step)
    gives a zero loss that still reaches every trainable parameter, so the process joins the
    gradient exchange."""

    def __init__(self, model, loss: Callable[..., tuple[torch.Tensor, dict[str, Any]]]):
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, micro_batch, *args) -> tuple[torch.Tensor, dict[str, Any]]:
        if micro_batch is None and is_sharded(self.model):  # the weights are gathered in the model's forward
            device = next(self.model.parameters()).device
            return self.model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=device)).logits.sum() * 0.0, {}
        if micro_batch is None:
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            return sum(p.sum() * 0.0 for p in trainable), {}  # on the parameters' device
        return self.loss(micro_batch, *args)


def wrap(module: MicroBatchLoss) -> torch.nn.Module:
    """``module`` under DDP where a process group of several processes is set up and the model is
    not sharded (FSDP exchanges gradients itself), else as it is."""
    if world_size() == 1 or is_sharded(module.model):
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.model.parameters()).device
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def shard(model) -> None:
    """Shard ``model`` over the processes with FSDP2 (``fully_shard``), in place: each decoder layer
    (the classes a Hugging Face model lists in ``_no_split_modules``) one unit, whose weights are
    gathered for its forward and backward and freed after; the rest (embeddings, final norm, output
    layer) the root unit. Build the optimiser after this: it must hold the sharded parameters."""
    from torch.distributed.fsdp import fully_shard

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layer_classes = set(getattr(base, "_no_split_modules", None) or ())
    for module in [m for m in model.modules() if type(m).__name__ in layer_classes]:
        fully_shard(module)
    fully_shard(model)


def is_sharded(model) -> bool:
    """Whether ``model`` is sharded by :func:`shard` (outside its forward it holds only this process's share)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def whole(tensor: torch.Tensor) -> torch.Tensor:
    """A sharded tensor (DTensor) gathered whole (collective: every process calls it); any other as it is."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def max_over_processes(value: int) -> int:
    if world_size() == 1:
        return value
    largest = torch.tensor([value], dtype=torch.long)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    return int(largest)


class WholeCopy:
    """A whole copy of a model about to be sharded, for what needs every weight at once outside the
    learner's forward: sampling with the ``hf`` engine, held-out evaluation, the checkpoint's model
    folder. :meth:`refresh` gathers the trained weights into it (collective). It costs one model's
    memory on each process, beside the learner's share."""

    def __init__(self, model):
        self.model = copy.deepcopy(model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.version = 0

    @torch.no_grad()
    def refresh(self, sharded, version: int) -> None:
        """Copy ``sharded``'s trained parameters in, unless this copy holds ``version`` already."""
        if version == self.version:
            return
        mine = dict(self.model.named_parameters())
        for name, p in sharded.named_parameters():
            if p.requires_grad:
                mine[name].copy_(whole(p.detach()))
        self.version = version


def sharded_optimizer_state(model, optimizer) -> dict[str, Any]:
    """This process's share of a sharded model's optimiser state, for torch.distributed.checkpoint."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return {"optimizer": get_optimizer_state_dict(model, optimizer)}


def load_sharded_optimizer_state(model, optimizer, path) -> None:
    """Load the optimiser state :func:`sharded_optimizer_state` saved at ``path``, each process its share."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    state = sharded_optimizer_state(model, optimizer)
    dcp.load(state, checkpoint_id=path)
    set_optimizer_state_dict(model, optimizer, state["optimizer"])


def reduce_sums(sums: dict[str, float], maxima: tuple[str, ...]) -> dict[str, float]:
    """``sums`` added over the processes, except the names in ``maxima``, maximised."""
    if world_size() == 1:
        return sums
    names = sorted(sums)
    added = torch.tensor([0.0 if n in maxima else sums[n] for n in names], dtype=torch.float64)
    largest = torch.tensor([sums[n] if n in maxima else float("-inf") for n in names], dtype=torch.float64)
    dist.all_reduce(added, op=dist.ReduceOp.SUM)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    return {n: float(largest[i]) if n in maxima else float(added[i]) for i, n in enumerate(names)}


def init_from_environment(device: str) -> None:
    """Join the process group a launcher described in the environment (``WORLD_SIZE``, ``RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``, as ``torchrun`` and ``accelerate launch`` set them): gloo on
    a CPU, NCCL on GPUs (each process on the GPU of its ``LOCAL_RANK``). Nothing to do for one
    process, or when the group exists already."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")


def from_first(value: Any) -> Any:
    """The first process's ``value``, in every process (for what each would otherwise choose alone,
    such as a run directory named after the clock)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


class GatheringEngine(EngineWrapper):
    """An engine's ``generate`` shared out over the learner processes: each samples every N-th prompt,
    then all of them receive every rollout, in the order one process sampling every prompt would
    give (a group per prompt, prompt by prompt), so that rewards, advantages and selector updates
    are the same everywhere. Each process samples with its own random stream, seeded from one draw
    of the shared stream (which so advances alike in every process, and is what a checkpoint keeps)."""

    def generate(self, prompts: Sequence, examples: list[dict[str, Any]], n, params):
        from grpozoo.generation.hf import per_prompt_counts
        from grpozoo.rollouts import Rollouts

        counts = per_prompt_counts(n, len(prompts))
        processes, index = world_size(), rank()
        mine = list(range(index, len(prompts), processes))
        seed = int(torch.randint(2**31 - 1, (1,)))  # the same draw in every process
        local = None
        if mine:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 7919 * index)
                local = self.engine.generate(
                    [prompts[i] for i in mine], [examples[i] for i in mine], [counts[i] for i in mine], params
                )
            local.group_ids = torch.tensor(mine)[local.group_ids]  # the prompt's index in the whole call
        everyone: list[Any] = [None] * processes
        dist.all_gather_object(everyone, local)
        batch = Rollouts.concat([b for b in everyone if b is not None], renumber_groups=False)
        return batch.select(torch.argsort(batch.group_ids, stable=True))
