"""The CUDA random state: saved in checkpoints and restored on resume, and left as it was by a
held-out evaluation (which seeds its own sampling). Skipped, with the reason, without a CUDA GPU."""

from __future__ import annotations

import pytest
import torch

from grpozoo.training import checkpoint as ckpt

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: checks the CUDA random state of checkpoints and evaluation"
)


def test_a_checkpoints_random_state_gives_back_the_cuda_draws():
    torch.cuda.manual_seed_all(3)
    state = ckpt.rng_state()
    first = torch.rand(4, device="cuda")
    torch.rand(100, device="cuda")  # the run goes on
    ckpt.set_rng_state(state)
    torch.testing.assert_close(torch.rand(4, device="cuda"), first)


def test_evaluation_leaves_the_cuda_random_state_as_it_was(tiny_model_dir):
    from tiny import build_tokenizer
    from transformers import AutoModelForCausalLM

    from grpozoo.evaluation.evaluate import evaluate

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).cuda()
    tokenizer = build_tokenizer()
    tokenizer.padding_side = "left"

    class Rows:  # the little of a task that evaluation reads
        eval_rows = [{"prompt": "1+1=", "answer": "2"}] * 2

        def messages(self, row):
            return [{"role": "user", "content": row["prompt"]}]

        def score(self, completion, row):
            return float(row["answer"] in completion)

        def extract(self, completion):
            return None

    torch.cuda.manual_seed_all(5)
    before = torch.cuda.get_rng_state_all()
    evaluate(model, tokenizer, Rows(), samples=2, temperature=1.0, max_new_tokens=4, seed=11)
    after = torch.cuda.get_rng_state_all()
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
