"""The real embedded SmolLM2-135M-Instruct (converted once from its GGUF into GRPOZOO_HOME)."""

from __future__ import annotations

import pytest
import torch

from grpozoo.config import resolve_config
from grpozoo.training import Trainer
from grpozoo.training.forward import completion_logprobs

pytestmark = pytest.mark.integration


def test_embedded_model_is_an_ordinary_trainable_checkpoint(tmp_path):
    cfg = resolve_config(overrides=[
        "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=12",
        "task.train_size=8", "task.eval_size=2", f"output_dir={tmp_path}",
    ])
    trainer = Trainer(cfg)
    base = trainer.model.get_base_model()
    assert getattr(base, "hf_quantizer", None) is None and not getattr(base, "is_quantized", False)
    assert trainer.tokenizer.chat_template and trainer.tokenizer.eos_token == "<|im_end|>"

    torch.manual_seed(0)
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), trainer.step)
    with torch.no_grad():
        logp, _ = completion_logprobs(trainer.model, batch)
    # the learner's forward reproduces the sampler's log-probs on the real model
    torch.testing.assert_close(logp, batch.sampling_logprobs, rtol=1e-3, atol=2e-3)

    metrics = trainer.train_step()
    assert metrics["grad_norm"] >= 0 and 0 <= metrics["accuracy"] <= 1
