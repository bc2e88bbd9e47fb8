"""``grpozoo export``: a run's checkpoint as a plain transformers checkpoint that loads, in a process
that never imports grpozoo, into the model the run trained (same log-probs), with its tokenizer,
chat template and model card; the output folder written atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import grpozoo.cli as cli
import grpozoo.export as export_module
from grpozoo.cli import main
from grpozoo.config import resolve_config
from grpozoo.errors import UserInputError
from grpozoo.export import export_run, find_checkpoint
from grpozoo.training import Trainer, fit
from grpozoo.training.model import load_model, load_tokenizer

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 3 + 4?"}]
TEXT = "What is 12 + 34? 46"

# Run in a fresh interpreter: loads an exported folder with transformers alone (peft for an
# adapter) and prints the log-probs of the given token ids, the chat template's rendering and
# the tokenizer's ids of TEXT.
LOADER = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
spec = json.loads(sys.argv[1])
if spec["adapter"]:
    from peft import AutoPeftModelForCausalLM
    model = AutoPeftModelForCausalLM.from_pretrained(spec["dir"])
else:
    model = AutoModelForCausalLM.from_pretrained(spec["dir"])
tokenizer = AutoTokenizer.from_pretrained(spec["dir"])
model.eval()
ids = torch.tensor([spec["ids"]])
with torch.no_grad():
    logits = model(input_ids=ids).logits.float()
logp = torch.log_softmax(logits[0, :-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
chat = tokenizer.apply_chat_template(spec["messages"], tokenize=False, add_generation_prompt=True)
assert "grpozoo" not in sys.modules, "the exported model must load without grpozoo"
print(json.dumps({"logp": logp.tolist(), "chat": chat, "dtype": str(next(model.parameters()).dtype),
                  "ids": tokenizer(spec["text"], add_special_tokens=False)["input_ids"]}))
"""


def sequence_logprobs(model, ids: list[int]) -> torch.Tensor:
    """Log-prob of each token of ``ids`` after the ones before it (a plain forward, no grad)."""
    model.eval()
    tensor = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=tensor).logits.float()
    return torch.log_softmax(logits[0, :-1], -1).gather(-1, tensor[0, 1:, None])[:, 0]


def load_fresh(folder: Path, ids: list[int], adapter: bool = False) -> dict:
    """Load ``folder`` in a fresh Python that imports only torch and transformers (and peft for an
    adapter), from a working directory outside the repository."""
    spec = json.dumps({"dir": str(folder), "ids": ids, "adapter": adapter, "messages": MESSAGES, "text": TEXT})
    done = subprocess.run([sys.executable, "-c", LOADER, spec], capture_output=True, text=True,
                          cwd=folder.parent, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


class TrainedRun:
    """A tiny run trained by ``fit`` and what the test needs of its trained model."""

    def __init__(self, run_dir: Path, trainer: Trainer, base_dir: Path):
        self.run_dir = run_dir
        self.ids = trainer.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
        self.logp = sequence_logprobs(trainer.model, self.ids)  # LoRA active where the run used it
        self.base_logp = sequence_logprobs(load_model(str(base_dir)), self.ids)
        self.chat = trainer.tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
        self.step = trainer.step


def train_tiny_run(tiny_model_dir: Path, run_dir: Path, *extra: str) -> TrainedRun:
    from tiny import tiny_run_overrides

    # a large learning rate, so the trained model is far (in log-probs) from the base model
    overrides = [*tiny_run_overrides(tiny_model_dir, run_dir), "train.learning_rate=1e-2", *extra]
    trainer = Trainer(resolve_config(overrides=overrides))
    fit(trainer, show_progress=False)
    return TrainedRun(run_dir, trainer, tiny_model_dir)


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory) -> TrainedRun:
    """Two LoRA steps with a checkpoint after each, and held-out evaluations before and after."""
    return train_tiny_run(tiny_model_dir, tmp_path_factory.mktemp("lora") / "run",
                          "train.steps=2", "train.checkpoint_every=1")


@pytest.fixture(scope="module")
def full_run(tiny_model_dir, tmp_path_factory) -> TrainedRun:
    """One full fine-tuning step."""
    return train_tiny_run(tiny_model_dir, tmp_path_factory.mktemp("full") / "run",
                          "train.steps=1", "model.lora.enabled=false")


def cli_output(capsys, monkeypatch, *argv: str) -> tuple[int, list[str]]:
    """Run ``grpozoo argv`` in this process; its exit code and non-empty output lines (printed wide,
    so that a line is one line of the message, not of the terminal's wrapping)."""
    from rich.console import Console

    monkeypatch.setattr(cli, "console", Console(width=10_000))
    code = main(list(argv))
    out = capsys.readouterr()
    return code, [line for line in (out.out + out.err).splitlines() if line.strip()]


def assert_trained_logprobs(run: TrainedRun, loaded: dict) -> None:
    logp = torch.tensor(loaded["logp"])
    assert (run.logp - run.base_logp).abs().max() > 1e-3, "training should have moved the model"
    torch.testing.assert_close(logp, run.logp, rtol=0, atol=1e-5)


def test_merged_lora_export_loads_with_transformers_alone_as_the_trained_model(lora_run, tmp_path):
    out = tmp_path / "merged"
    env = {**os.environ, "COLUMNS": "10000"}
    done = subprocess.run([sys.executable, "-m", "grpozoo.cli", "export", str(lora_run.run_dir), "--merge",
                           "--output", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step-000002" in done.stdout and str(out) in done.stdout
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "README.md"} <= files
    assert not any(name.startswith("adapter_") for name in files), files
    assert not (tmp_path / "merged.partial").exists()
    merged = load_file(out / "model.safetensors")
    assert not any("lora" in name for name in merged), "the adapter must be merged away"
    loaded = load_fresh(out, lora_run.ids)
    assert_trained_logprobs(lora_run, loaded)
    assert loaded["dtype"] == "torch.float32"


def test_the_chat_template_and_tokenizer_survive_the_export(lora_run, tmp_path):
    out = tmp_path / "merged"
    export_run(lora_run.run_dir, out, merge=True)
    config = json.loads((out / "tokenizer_config.json").read_text())
    original = load_tokenizer(str(lora_run.run_dir / "checkpoints" / "step-000002" / "model"))
    assert config["chat_template"] == original.chat_template
    loaded = load_fresh(out, lora_run.ids)
    assert loaded["chat"] == lora_run.chat
    assert "<u>What is 3 + 4?</s><a>" in loaded["chat"]
    assert loaded["ids"] == lora_run.ids


def test_adapter_only_export_loads_with_peft_on_the_base_model(lora_run, tiny_model_dir, tmp_path):
    out = tmp_path / "adapter"
    done = export_run(lora_run.run_dir, out)
    assert done.kind == "adapter" and done.notes == []
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "README.md"} <= files
    assert "model.safetensors" not in files
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert Path(adapter_config["base_model_name_or_path"]) == tiny_model_dir
    card = (out / "README.md").read_text()
    assert str(tiny_model_dir) in card and "PeftModel.from_pretrained" in card
    assert "--enable-lora" in card and "--max-lora-rank 8" in card  # r=4: vLLM's smallest rank above it
    loaded = load_fresh(out, lora_run.ids, adapter=True)
    assert_trained_logprobs(lora_run, loaded)


def test_full_finetuning_export_with_merge_notes_that_there_is_nothing_to_merge(full_run, capsys, monkeypatch,
                                                                               tmp_path):
    out = tmp_path / "full"
    code, lines = cli_output(capsys, monkeypatch, "export", str(full_run.run_dir), "--merge", "--output", str(out))
    assert code == 0, lines
    assert any(line.startswith("note:") and "--merge" in line and "no LoRA adapter" in line for line in lines), lines
    card = (out / "README.md").read_text()
    assert "## Notes" in card and "no LoRA adapter to merge" in card
    assert "full fine-tuned weights" in card
    assert not (out / "adapter_config.json").exists()
    assert_trained_logprobs(full_run, load_fresh(out, full_run.ids))


def test_the_model_card_names_the_recipe_steps_checkpoint_and_held_out_accuracy(lora_run, tmp_path):
    out = tmp_path / "merged"
    export_run(lora_run.run_dir, out, merge=True)
    card = (out / "README.md").read_text()
    evals = [json.loads(line) for line in (lora_run.run_dir / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 2]
    assert "# grpo on chain_sum" in card
    assert "- recipe: `grpo`, from Shao et al. 2024" in card and "DeepSeekMath" in card  # with its paper
    assert "- task: `chain_sum`" in card
    assert "- steps trained: 2 (of the run's 2)" in card
    assert "step-000002" in card
    before, after = evals
    assert f"- before training: {before['accuracy']:.3f} ± {before['accuracy_stderr']:.3f}" in card
    assert f"- after 2 steps (this checkpoint): {after['accuracy']:.3f} ± {after['accuracy_stderr']:.3f}" in card
    assert "AutoModelForCausalLM.from_pretrained" in card and "vllm serve THIS_FOLDER" in card
    assert "library_name: transformers" in card


def test_an_earlier_checkpoint_is_exported_by_name(lora_run, tmp_path):
    out = tmp_path / "adapter"
    done = export_run(lora_run.run_dir, out, checkpoint="step-000001")
    assert done.step == 1 and done.checkpoint.name == "step-000001"
    saved = load_file(lora_run.run_dir / "checkpoints" / "step-000001" / "model" / "adapter_model.safetensors")
    latest = load_file(lora_run.run_dir / "checkpoints" / "step-000002" / "model" / "adapter_model.safetensors")
    exported = load_file(out / "adapter_model.safetensors")
    assert exported.keys() == saved.keys()
    assert all(torch.equal(exported[k], saved[k]) for k in saved)
    assert any(not torch.equal(saved[k], latest[k]) for k in saved), "the two checkpoints should differ"
    card = (out / "README.md").read_text()
    assert "- steps trained: 1 (of the run's 2)" in card
    assert "this checkpoint (step 1) was not evaluated" in card
    # the step alone, and a path, name the same checkpoint
    run = lora_run.run_dir
    assert find_checkpoint(run, "1") == find_checkpoint(run, str(run / "checkpoints" / "step-000001"))
    assert find_checkpoint(run) == run / "checkpoints" / "step-000002"


def test_a_wrong_checkpoint_is_one_line_naming_the_available_ones(lora_run, capsys, monkeypatch, tmp_path):
    out = tmp_path / "out"
    code, lines = cli_output(capsys, monkeypatch, "export", str(lora_run.run_dir), "--checkpoint", "step-000009",
                             "--output", str(out))
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("error:") and "'step-000009'" in lines[0]
    assert "step-000001, step-000002" in lines[0]
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_a_folder_that_is_not_a_run_is_one_line(capsys, monkeypatch, tmp_path):
    code, lines = cli_output(capsys, monkeypatch, "export", str(tmp_path), "--output", str(tmp_path / "out"))
    assert code == 2 and len(lines) == 1 and "config.yaml" in lines[0], lines


def test_a_non_empty_output_is_refused_without_force(lora_run, capsys, monkeypatch, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, lines = cli_output(capsys, monkeypatch, "export", str(lora_run.run_dir), "--output", str(out))
    assert code == 2 and len(lines) == 1 and "not empty" in lines[0] and "--force" in lines[0], lines
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    code, lines = cli_output(capsys, monkeypatch, "export", str(lora_run.run_dir), "--output", str(out), "--force")
    assert code == 0, lines
    assert not (out / "keep.txt").exists() and (out / "adapter_config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no .partial or .old left


def test_the_run_itself_is_refused_as_the_output(lora_run):
    for output in (lora_run.run_dir, lora_run.run_dir.parent):
        with pytest.raises(UserInputError, match="outside the run"):
            export_run(lora_run.run_dir, output, force=True)
    assert (lora_run.run_dir / "config.yaml").exists()


def test_an_empty_output_folder_is_filled(lora_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    export_run(lora_run.run_dir, out)
    assert (out / "adapter_config.json").exists()


def test_an_interrupted_export_leaves_no_output(lora_run, tmp_path, monkeypatch):
    def fail(tokenizer, folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "save_tokenizer", fail)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        export_run(lora_run.run_dir, out, merge=True)
    assert list(tmp_path.iterdir()) == []


def test_a_run_without_checkpoints_has_nothing_to_export(tmp_path):
    with pytest.raises(UserInputError, match="no checkpoint yet"):
        find_checkpoint(tmp_path)
