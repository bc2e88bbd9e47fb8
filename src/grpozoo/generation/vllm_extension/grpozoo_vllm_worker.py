"""A vLLM worker extension that loads new weights into the running model in place: the full
fine-tuning half of grpozoo's weight sync. It runs inside vLLM's worker processes, in vLLM's own
environment, so it imports nothing of grpozoo (``grpozoo serve`` puts this directory on the
server's ``PYTHONPATH`` and names ``grpozoo_vllm_worker.WeightSync`` as ``--worker-extension-cls``).

On a CPU, vLLM prepacks each linear layer's weight for oneDNN when the model loads, and its reload
repacks the layers it reloads, but a language-model head tied to the input embedding keeps the
packed copy of the old embedding. After reloading, :func:`repack_vocabulary_layers` packs the
embedding-shaped layers again, so the head computes with the new weights."""

from __future__ import annotations


def repack_vocabulary_layers(model) -> int:
    """Rebuild the CPU-packed weight of every vocabulary layer (embedding and tied head) of
    ``model``; returns how many. Nothing to do off the CPU."""
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return 0
    layers = [m for m in model.modules() if isinstance(m, VocabParallelEmbedding)]
    for layer in layers:
        dispatch_cpu_unquantized_gemm(layer, remove_weight=False)
    return len(layers)


class WeightSync:
    """Methods added to each vLLM worker, called through the server's ``/collective_rpc``."""

    def grpozoo_reload_weights(self, weights_path: str) -> str:
        """Load the checkpoint at ``weights_path`` (a Hugging Face model directory) into the running
        model, keeping its configuration."""
        self.reload_weights(weights_path=weights_path)  # type: ignore[attr-defined]
        repacked = repack_vocabulary_layers(self.model_runner.get_model())  # type: ignore[attr-defined]
        return f"reloaded {weights_path}; repacked {repacked} vocabulary layers"

    def grpozoo_load_weights(self, weights) -> None:
        """Load ``weights`` (name, tensor) pairs, Hugging Face names, into the running model (the
        in-process engine hands the learner's tensors over directly)."""
        self.reload_weights(weights_iterator=list(weights))  # type: ignore[attr-defined]
        repack_vocabulary_layers(self.model_runner.get_model())  # type: ignore[attr-defined]
