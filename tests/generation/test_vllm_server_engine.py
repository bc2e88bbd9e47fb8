"""The ``vllm_server`` engine against a stand-in server (:mod:`fake_vllm_server`) that answers as vLLM
does and really loads the weights it is sent: rollouts, weight versions, weight sync for LoRA and
full fine-tuning, and a server that refuses, stalls or answers nonsense."""

from __future__ import annotations

import math
import socket

import pytest
import torch
from fake_vllm_server import FakeVLLMServer
from training.test_trainer import make_trainer

from grpozoo.errors import ConfigError, EngineError
from grpozoo.generation.vllm_server import ServerClient
from grpozoo.training import checkpoint as ckpt
from grpozoo.training.fit import checkpoint_on_failure


def server_overrides(url: str, *extra: str) -> list[str]:
    return ["generation.engine=vllm_server", f"generation.url={url}", "generation.retries=1",
            "generation.timeout_s=5", *extra]


@pytest.fixture
def server(tiny_model_dir):
    with FakeVLLMServer(tiny_model_dir) as fake:
        yield fake


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("lora", [True, False])
def test_two_steps_through_the_server_give_versioned_rollouts_and_push_weights(tiny_overrides, server, lora):
    trainer = make_trainer(tiny_overrides, *server_overrides(server.url, f"model.lora.enabled={lora}"),
                           "train.steps=2")
    for step in (1, 2):
        metrics = trainer.train_step()
        assert metrics["weight_version"] == step - 1  # sampled with the weights of the last update
        assert math.isfinite(metrics["loss"])
        # the stand-in samples with grpozoo's own sampler on the weights it was sent: the learner
        # recomputes the same log-probs up to float rounding
        assert metrics["sampler/logprob_diff_max"] < 1e-4
    trainer.engine.sync(trainer.model, 2)
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), 3)
    r = trainer.cfg.rollout
    assert batch.batch_size == 2 * r.group_size
    assert batch.completion_ids.shape == batch.completion_mask.shape == batch.sampling_logprobs.shape
    assert batch.completion_ids.shape[1] <= r.max_new_tokens
    assert batch.weight_version.tolist() == [2] * batch.batch_size
    assert torch.isfinite(batch.sampling_logprobs).all()
    assert bool((batch.sampling_logprobs[batch.completion_mask == 1] <= 0).all())
    lengths = batch.completion_mask.sum(dim=1)
    eos = trainer.tokenizer.eos_token_id
    for i in range(batch.batch_size):  # the mask covers the tokens up to and including the first EOS
        n = int(lengths[i])
        assert batch.completion_mask[i, :n].all() and not batch.completion_mask[i, n:].any()
        ends_with_eos = int(batch.completion_ids[i, n - 1]) == eos
        assert bool(batch.truncated[i]) == (not ends_with_eos)
    pushed = [path for path, _ in server.requests if path != "/v1/completions"]
    if lora:  # each version loaded under its own name, the one before unloaded
        assert pushed.count("/v1/load_lora_adapter") == 3 and pushed.count("/v1/unload_lora_adapter") == 2
    else:
        assert pushed.count("/collective_rpc") == 3 and pushed.count("/reset_prefix_cache") == 3


@pytest.mark.parametrize("lora", [True, False])
def test_after_a_sync_the_server_samples_with_the_learners_weights_and_not_before(tiny_overrides, server, lora):
    trainer = make_trainer(tiny_overrides, *server_overrides(server.url, f"model.lora.enabled={lora}"))
    trainer.engine.sync(trainer.model, 0)
    with torch.no_grad():  # an update the engine has not seen yet
        for p in trainer.model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.3)

    def gap() -> float:
        torch.manual_seed(0)
        batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), 1)
        learner = trainer.learner.policy_logprobs(batch)
        return float(((learner - batch.sampling_logprobs) * batch.completion_mask).abs().max())

    assert gap() > 1e-2
    trainer.engine.sync(trainer.model, 1)
    # float32 on both sides, the same kernels: only summation order differs
    assert gap() < 1e-4


def test_a_refused_connection_names_the_url_after_the_retries(tiny_overrides):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EngineError, match=r"127\.0\.0\.1.*after 2 attempts.*generation\.url"):
        make_trainer(tiny_overrides, *server_overrides(url))


@pytest.mark.parametrize("behaviour", ["malformed", "slow", "error"])
def test_a_broken_server_stops_the_step_and_the_last_checkpoint_stands(tiny_overrides, tiny_model_dir, behaviour):
    with FakeVLLMServer(tiny_model_dir, delay_s=3) as fake:
        trainer = make_trainer(tiny_overrides, *server_overrides(fake.url, "generation.timeout_s=1"),
                               "train.checkpoint_every=1")
        trainer.train_step()
        trainer.save()
        fake.behaviour = behaviour
        expected = {"malformed": "not JSON", "slow": "timed out", "error": "HTTP 500"}[behaviour]
        with pytest.raises(EngineError, match=expected), checkpoint_on_failure(trainer):
            trainer.train_step()
        assert ckpt.latest_checkpoint(trainer.run_dir) == ckpt.checkpoint_dir(trainer.run_dir, 1)
        fake.behaviour = "ok"
        resumed = make_trainer(tiny_overrides, *server_overrides(fake.url), resume=True,
                               run_dir=trainer.run_dir)
        assert resumed.step == 1
        metrics = resumed.train_step()
        assert metrics["weight_version"] == 1 and metrics["sampler/logprob_diff_max"] < 1e-4


def test_a_client_error_is_not_retried(server):
    client = ServerClient(server.url, timeout_s=5, retries=3)
    with pytest.raises(EngineError, match="HTTP 404"):
        client.post("/no/such/route", {})
    assert len(server.requests) == 1


@pytest.mark.parametrize("setting", ["rollout.top_p=0.9", "rollout.top_k=5"])
def test_top_k_and_top_p_are_refused_at_start_up(tiny_overrides, server, setting):
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")):
        make_trainer(tiny_overrides, *server_overrides(server.url), setting)
    assert server.requests == []


def test_entropies_come_from_the_learner_only_where_a_component_needs_them(tiny_overrides, server):
    needing = make_trainer(tiny_overrides, *server_overrides(server.url), "recipe=earl")  # EARL reads entropies
    needing.engine.sync(needing.model, 0)
    collected = needing.rollouts.collect(1)
    assert collected.learning.entropies is None  # an inference engine reports only the sampled log-probs
    learning = needing.learner.prepare(collected.learning)
    mask = learning.completion_mask.bool()
    assert learning.entropies is not None and bool((learning.entropies[mask] > 0).all())
    torch.testing.assert_close(learning.entropies, needing.learner.policy_entropies(learning))

    plain = make_trainer(tiny_overrides, *server_overrides(server.url), "output_dir=" + str(needing.run_dir) + "-2")
    plain.engine.sync(plain.model, 0)
    assert plain.learner.prepare(plain.rollouts.collect(1).learning).entropies is None


def test_an_engine_sampling_with_stale_weights_is_warned_about(tiny_overrides, tiny_model_dir):
    with FakeVLLMServer(tiny_model_dir, behaviour="stale") as fake:
        trainer = make_trainer(tiny_overrides, *server_overrides(fake.url), "model.lora.enabled=false",
                               "train.learning_rate=0.05", "train.steps=4")
        with pytest.warns(UserWarning, match="engine's log-probs differ from the learner's"):
            for _ in range(4):
                trainer.train_step()
        assert trainer.history[-1]["sampler/logprob_diff_mean"] > 0.05
        assert trainer.history[0]["sampler/logprob_diff_mean"] < 1e-4  # step 1: both still at the start
