"""Run in vLLM's environment by ``test_vllm_in_process.py``: train the embedded model two steps with
``generation.engine=vllm`` (LoRA or full, ``sys.argv[1]``), then measure the engine's log-prob gap
to the learner before and after a weight sync; print the figures as one JSON line."""

from __future__ import annotations

import json
import sys
import tempfile

import torch

from grpozoo.config import resolve_config
from grpozoo.training import Trainer


def gap(trainer: Trainer) -> float:
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), trainer.step + 1)
    learner = trainer.learner.policy_logprobs(batch)
    return float(((learner - batch.sampling_logprobs) * batch.completion_mask).abs().max())


def main() -> None:
    lora = sys.argv[1] == "lora"
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(resolve_config(overrides=[
            "generation.engine=vllm", f"model.lora.enabled={lora}", "rollout.prompts_per_step=2",
            "rollout.group_size=2", "rollout.max_new_tokens=16", "task.train_size=8", "task.eval_size=2",
            "train.steps=2", f"train.learning_rate={2e-4 if lora else 1e-5}", f"output_dir={out}",
        ]))
        steps = [trainer.train_step() for _ in range(2)]
        trainer.engine.sync(trainer.model, trainer.step)
        batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), trainer.step + 1)
        synced = gap(trainer)
        with torch.no_grad():  # an update the engine has not seen
            for name, p in trainer.model.named_parameters():
                if p.requires_grad and ("lora_B" in name or not lora):
                    p.add_(torch.randn_like(p) * (0.02 if lora else 0.01))
        stale = gap(trainer)
        trainer.engine.sync(trainer.model, trainer.step + 1)
        resynced = gap(trainer)
    print("RESULT " + json.dumps({
        "versions": [m["weight_version"] for m in steps],
        "step_gaps": [m["sampler/logprob_diff_max"] for m in steps],
        "losses": [m["loss"] for m in steps],
        "batch_versions": batch.weight_version.tolist(),
        "shapes": [list(batch.completion_ids.shape), list(batch.sampling_logprobs.shape)],
        "synced": synced, "stale": stale, "resynced": resynced,
    }))


if __name__ == "__main__":
    main()
