"""``train.compute_dtype=bfloat16``: the learner's forwards run under bfloat16 autocast while the
weights, gradients and AdamW state stay float32. One learning step gives nearly the float32 run's
gradient, from log-probs that really were computed in bfloat16; the fused output layer runs in
float32 and the fused LoRA function steps aside to PEFT's forward under autocast."""

from __future__ import annotations

import copy

import pytest
import torch
from pydantic import ValidationError
from training.test_lora_linear import _lora_model, _loss_and_grads
from training.test_trainer import make_trainer

from grpozoo.config import ConfigError, ModelConfig, TrainConfig, resolve_config
from grpozoo.training.fused_head import head_logprobs
from grpozoo.training.lora_linear import _single_adapter, fused_lora
from grpozoo.training.model import check_trainable_dtype


def _trainer(overrides: list[str], lora: bool, compute_dtype: str, run_dir):
    return make_trainer(
        overrides, f"model.lora.enabled={lora}", f"train.compute_dtype={compute_dtype}",
        "rollout.prompts_per_step=4", "rollout.group_size=3", "rollout.max_new_tokens=10",
        "train.micro_batch_tokens=40", f"output_dir={run_dir}",
    )


def _one_step(trainer, batch) -> dict:
    """The batch's log-probs under the initial policy, then one learning step on it: the gradient
    the update is made from, the trained parameters and the optimiser state after it, the metrics."""
    trained = [(n, p) for n, p in trainer.model.named_parameters() if p.requires_grad]
    initial = {n: p.detach().clone() for n, p in trained}
    learning = trainer.learner.prepare(copy.deepcopy(batch))
    logprobs = trainer.learner.policy_logprobs(learning)
    grads: dict[str, torch.Tensor] = {}
    trainer.learner.optimizer.register_step_pre_hook(
        lambda *_: grads.update({n: p.grad.clone() for n, p in trained})
    )
    metrics = trainer.learner.learn(learning)
    return {"initial": initial, "logprobs": logprobs, "mask": learning.completion_mask.bool(), "grads": grads,
            "params": dict(trained), "state": trainer.learner.optimizer.state, "metrics": metrics}


@pytest.fixture(scope="module", params=[True, False], ids=["lora", "full"])
def runs(request, tiny_model_dir, tmp_path_factory):
    """The float32 run and the bfloat16-compute run of one step on the same sampled batch, from the
    same initial weights."""
    from tiny import tiny_run_overrides

    lora = request.param
    out = tmp_path_factory.mktemp(f"compute-dtype-{lora}")
    overrides = tiny_run_overrides(tiny_model_dir, out / "unused")
    sampler = _trainer(overrides, lora, "float32", out / "sample")
    torch.manual_seed(0)
    batch = sampler.rollouts.collect(1).learning
    del sampler
    results = {}
    for dtype in ("float32", "bfloat16"):
        trainer = _trainer(overrides, lora, dtype, out / dtype)
        assert trainer.cfg.train.compute_dtype == dtype
        results[dtype] = _one_step(trainer, batch)
    return results


def test_weights_and_optimiser_state_stay_float32(runs):
    run = runs["bfloat16"]
    assert run["params"]
    for name, p in run["params"].items():
        assert p.dtype == torch.float32, name
        assert p.grad is None or p.grad.dtype == torch.float32, name
        assert run["grads"][name].dtype == torch.float32, name
        if run["grads"][name].any():  # the step moved it
            assert not torch.equal(p.detach(), run["initial"][name]), name
    for p in run["params"].values():
        state = run["state"][p]
        assert {"exp_avg", "exp_avg_sq"} <= state.keys()
        for key, value in state.items():
            assert torch.is_tensor(value) and value.dtype == torch.float32, key


def test_gradient_is_close_to_the_float32_run(runs):
    fp32, bf16 = runs["float32"], runs["bfloat16"]
    for name, p in fp32["initial"].items():  # the same starting point: the gap comes from the precision
        assert torch.equal(p, bf16["initial"][name]), name
    assert fp32["grads"].keys() == bf16["grads"].keys()
    checked = 0
    for name, g in fp32["grads"].items():
        if not g.any():  # e.g. LoRA's A at initialisation, where B = 0
            continue
        cosine = torch.nn.functional.cosine_similarity(g.flatten(), bf16["grads"][name].flatten(), dim=0)
        assert cosine > 0.99, (name, float(cosine))
        checked += 1
    assert checked >= len(fp32["grads"]) // 2
    norm32 = torch.cat([g.flatten() for g in fp32["grads"].values()]).norm()
    norm16 = torch.cat([g.flatten() for g in bf16["grads"].values()]).norm()
    assert norm32 > 0
    assert abs(norm16 - norm32) <= 0.05 * norm32, (float(norm16), float(norm32))


def test_the_forwards_really_ran_in_bfloat16(runs):
    """Autocast silently off would give the float32 run's numbers exactly."""
    fp32, bf16 = runs["float32"], runs["bfloat16"]
    assert bf16["logprobs"].dtype == torch.float32
    mask = fp32["mask"]
    assert torch.equal(mask, bf16["mask"])
    gap = (bf16["logprobs"] - fp32["logprobs"])[mask].abs()
    assert 0 < gap.max() < 0.05, float(gap.max())
    # the training forward too: its gradient is not the float32 one, and the sampler (float32
    # weights, float32 compute) is further from the learner than in the float32 run
    assert any(not torch.equal(g, bf16["grads"][name]) for name, g in fp32["grads"].items())
    diff32 = fp32["metrics"]["sampler/logprob_diff_mean"]
    diff16 = bf16["metrics"]["sampler/logprob_diff_mean"]
    assert diff16 > 10 * diff32 and diff16 < 0.05, (diff16, diff32)


def test_config_refuses_other_compute_dtypes(tiny_overrides):
    assert TrainConfig().compute_dtype == "float32"
    with pytest.raises(ValidationError, match="literal_error"):
        TrainConfig(compute_dtype="float16")
    # the command line's error names the key and carries pydantic's message
    with pytest.raises(ConfigError, match=r"train\.compute_dtype' = 'fp8': Input should be 'float32' or 'bfloat16'"):
        resolve_config(overrides=[*tiny_overrides, "train.compute_dtype=fp8"])


def test_bfloat16_full_fine_tuning_points_to_compute_dtype():
    cfg = ModelConfig(dtype="bfloat16", lora={"enabled": False})
    with pytest.raises(ConfigError, match=r"model\.dtype=float32 train\.compute_dtype=bfloat16"):
        check_trainable_dtype(cfg)


@pytest.mark.parametrize("hidden_dtype", [torch.float32, torch.bfloat16])
def test_fused_head_runs_in_float32_under_autocast(hidden_dtype):
    torch.manual_seed(0)
    hidden = torch.randn(7, 16).to(hidden_dtype).requires_grad_()
    weight = torch.randn(29, 16, requires_grad=True)
    targets = torch.randint(0, 29, (7,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp, entropy = head_logprobs(hidden, weight, targets, 0.8, True, True, chunk_tokens=3)
    assert logp.dtype == entropy.dtype == torch.float32
    grad_h, grad_w = torch.autograd.grad(logp.sum() + entropy.sum(), [hidden, weight])
    assert grad_h.dtype == hidden_dtype and grad_w.dtype == torch.float32
    expected_logp, expected_entropy = head_logprobs(hidden.float(), weight, targets, 0.8, True, True, chunk_tokens=3)
    exp_h, exp_w = torch.autograd.grad(expected_logp.sum() + expected_entropy.sum(), [hidden, weight])
    torch.testing.assert_close(logp, expected_logp, rtol=0, atol=0)
    torch.testing.assert_close(entropy, expected_entropy, rtol=0, atol=0)
    torch.testing.assert_close(grad_h, exp_h.to(hidden_dtype), rtol=0, atol=0)
    torch.testing.assert_close(grad_w, exp_w, rtol=0, atol=0)


def test_fused_lora_steps_aside_under_autocast():
    model = _lora_model()
    model.train()
    ids = torch.randint(0, 61, (3, 9))
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert _single_adapter(layer, torch.randn(1, 32)) is not None  # without autocast it would fuse
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, grads = _loss_and_grads(model, ids)
        with fused_lora(model):
            fused_logits, fused_grads = _loss_and_grads(model, ids)
    assert logits.dtype == torch.bfloat16  # autocast reached the model's layers
    assert torch.equal(fused_logits, logits)
    assert grads.keys() == fused_grads.keys() and len(grads) == 28
    for name, grad in grads.items():
        assert grad.dtype == torch.float32
        assert torch.equal(fused_grads[name], grad), name
