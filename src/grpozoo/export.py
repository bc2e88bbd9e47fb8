"""``grpozoo export``: a run's checkpoint as a plain transformers checkpoint to ship.

A LoRA run exports either its adapter merged into the base weights (peft's ``merge_and_unload``:
an ordinary safetensors checkpoint that needs neither grpozoo nor peft) or the adapter alone
(``adapter_config.json`` and its weights, loaded with peft on the base model the model card names).
A full fine-tuning run exports its weights. The tokenizer is saved beside the weights with its chat
template in ``tokenizer_config.json``, and a short model card (``README.md``) says what was trained,
how well it did on the held-out split, and how to load it.

The output folder is written as ``DIR.partial`` and renamed to ``DIR`` once complete, so an
interrupted export never leaves a half checkpoint under the name asked for.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grpozoo.errors import UserInputError
from grpozoo.training import checkpoint as ckpt

if TYPE_CHECKING:
    from grpozoo.config import RunConfig

PARTIAL = ".partial"  # the suffix of an export being written
_STEP_NAME = re.compile(r"step-(\d+)$")


@dataclass
class Export:
    """What :func:`export_run` wrote: the folder, the checkpoint it came from, its step, what kind of
    weights (``merged``, ``adapter`` or ``full``) and the notes also written into the model card."""

    output: Path
    checkpoint: Path
    step: int
    kind: str
    notes: list[str] = field(default_factory=list)


def find_checkpoint(run_dir: Path, choice: str | None = None) -> Path:
    """The checkpoint of ``run_dir`` to export: the latest when ``choice`` is ``None``; else one named
    by its folder name (``step-000004``), by its step (``4``), or by a path to a checkpoint folder
    (one holding ``model/``). Anything else raises :class:`UserInputError` listing the checkpoints
    the run has."""
    available = ckpt.list_checkpoints(run_dir)
    if choice is None:
        if not available:
            raise UserInputError(f"run {str(run_dir)!r} has no checkpoint yet: nothing to export")
        return available[-1]
    by_name = {p.name: p for p in available}
    if choice in by_name:
        return by_name[choice]
    if choice.isdigit() and ckpt.checkpoint_dir(run_dir, int(choice)) in available:
        return ckpt.checkpoint_dir(run_dir, int(choice))
    given = Path(choice).expanduser()
    if (given / "model").is_dir():
        return given
    names = ", ".join(by_name) if by_name else "none yet"
    raise UserInputError(
        f"--checkpoint {choice!r} is not a checkpoint of run {str(run_dir)!r} (nor a folder holding model/); "
        f"its checkpoints: {names}"
    )


def checkpoint_step(checkpoint: Path) -> int:
    """The training step a checkpoint holds: from its folder name ``step-N``, else from its
    ``trainer_state.pt``."""
    match = _STEP_NAME.search(checkpoint.name)
    if match:
        return int(match.group(1))
    return int(ckpt.load_trainer_state(checkpoint)["step"])


def read_evals(run_dir: Path) -> list[dict[str, Any]]:
    """The held-out evaluations the run recorded in ``eval.jsonl`` (none when absent)."""
    from grpozoo.reporting.metrics import read_jsonl

    return read_jsonl(run_dir / "eval.jsonl")


def base_model_description(name: str, path: str) -> str:
    """One line on the base model a run named ``name`` (resolved to ``path``) was trained from: for
    an embedded model, which file it was converted from."""
    from grpozoo.training.model import EMBEDDED_MODELS

    if name in EMBEDDED_MODELS:
        package, filename = EMBEDDED_MODELS[name]
        return (f"`{name}`: grpozoo's embedded model, dequantised once from `{filename}` (Python package "
                f"`{package}`) into the float32 checkpoint `{path}`. These weights are what was trained on; "
                f"they differ from the hub's original (unquantised) weights")
    if path == name:
        return f"`{name}`"
    return f"`{name}` (`{path}`)"


def _accuracy(record: dict[str, Any]) -> str:
    text = f"{record['accuracy']:.3f}"
    if record.get("accuracy_stderr") is not None:
        text += f" ± {record['accuracy_stderr']:.3f}"
    if "prompts" in record and "samples_per_prompt" in record:
        text += f" ({record['prompts']} prompts × {record['samples_per_prompt']} samples)"
    return text


def eval_lines(evals: list[dict[str, Any]], step: int) -> list[str]:
    """Markdown lines on the held-out accuracy before training (the record of step 0) and of the
    exported checkpoint (the record of ``step``), as recorded with their standard errors. When the
    exported step has no record, the run's last evaluation is given for reference and labelled so."""
    if not evals:
        return ["No held-out evaluation was recorded for this run."]
    lines = ["On the task's held-out split (which never overlaps the training prompts), as recorded in the "
             "run's eval.jsonl:", ""]
    before = next((r for r in evals if r.get("step") == 0), None)
    if before is not None:
        lines.append(f"- before training: {_accuracy(before)}")
    if step != 0:
        after = next((r for r in reversed(evals) if r.get("step") == step), None)
        if after is not None:
            lines.append(f"- after {step} steps (this checkpoint): {_accuracy(after)}")
        else:
            last = max((r for r in evals if r.get("step", 0) > 0), key=lambda r: r["step"], default=None)
            lines.append(f"- this checkpoint (step {step}) was not evaluated"
                         + (f"; the run's last evaluation, after {last['step']} steps: {_accuracy(last)}"
                            if last is not None else ""))
    return lines


def vllm_lora_rank(r: int) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that serves an adapter of rank ``r``."""
    return next((k for k in (8, 16, 32, 64, 128, 256, 320, 512) if k >= r), r)


def model_card(cfg: RunConfig, run_dir: Path, checkpoint: Path, step: int, kind: str, base: str,
               evals: list[dict[str, Any]], notes: list[str]) -> str:
    """The exported folder's ``README.md``: the recipe (and its paper), task, base model, steps
    trained, the checkpoint exported, held-out accuracy before and after, and how to load it with
    transformers (and peft for an adapter) and with vLLM."""
    from grpozoo.recipes import all_recipes

    citation = next((r.citation for r in all_recipes() if r.name == cfg.recipe), None)
    weights = {"merged": "LoRA adapter merged into the base weights (a plain transformers checkpoint)",
               "adapter": "LoRA adapter only (load it with peft on the base model below)",
               "full": "full fine-tuned weights (a plain transformers checkpoint)"}[kind]
    library = "peft" if kind == "adapter" else "transformers"
    tags = ["grpozoo", "reinforcement-learning", cfg.recipe]
    lines = ["---", f"library_name: {library}", "tags:", *(f"- {t}" for t in tags), "---", "",
             f"# {cfg.recipe} on {cfg.task.name}", "",
             f"Trained with grpozoo (reinforcement learning with verifiable rewards), run `{run_dir}`.", "",
             f"- recipe: `{cfg.recipe}`" + (f", from {citation}" if citation else ""),
             f"- task: `{cfg.task.name}`",
             f"- base model: {base_model_description(cfg.model.name, base)}",
             f"- steps trained: {step} (of the run's {cfg.train.steps})",
             f"- checkpoint exported: `{checkpoint}`",
             f"- weights: {weights}"]
    if cfg.model.lora.enabled:
        lines.append(f"- LoRA: r={cfg.model.lora.r}, alpha={cfg.model.lora.alpha}, "
                     f"target modules {cfg.model.lora.target_modules}")
    lines.append(f"- dtype: {cfg.model.dtype}")
    lines += ["", "## Held-out accuracy", "", *eval_lines(evals, step)]
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    lines += ["", "## Loading it", "", "With transformers:", "", "```python"]
    if kind == "adapter":
        lines += ["from peft import PeftModel",
                  "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f'base = AutoModelForCausalLM.from_pretrained("{base}")',
                  'model = PeftModel.from_pretrained(base, "THIS_FOLDER")  # or .merge_and_unload()',
                  'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")']
    else:
        lines += ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")',
                  'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")']
    lines += ["",
              'messages = [{"role": "user", "content": "..."}]',
              "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\",",
              "                                       return_dict=True)",
              "output = model.generate(**inputs, max_new_tokens=256)",
              'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
              "```", "", "With vLLM:", "", "```bash"]
    if kind == "adapter":
        lines.append(f"vllm serve {base} --enable-lora --lora-modules {cfg.recipe}=THIS_FOLDER "
                     f"--max-lora-rank {vllm_lora_rank(cfg.model.lora.r)}")
    else:
        lines.append("vllm serve THIS_FOLDER")
    lines += ["```", "", "`THIS_FOLDER` is the folder holding this file."]
    return "\n".join(lines) + "\n"


def check_output_outside(output: Path, *sources: Path) -> None:
    """Refuse an ``output`` that is, or holds, one of ``sources`` (the run or the checkpoint): with
    ``--force`` the export would replace what it reads from."""
    target = output.resolve()
    for source in sources:
        if source.resolve().is_relative_to(target):
            raise UserInputError(f"--output {str(output)!r} holds {str(source)!r}, which is exported from: "
                                 f"choose a folder outside the run")


def prepare_output(output: Path, force: bool) -> Path:
    """Check that ``output`` may be written and return the empty ``output.partial`` folder to write
    into (an earlier interrupted export's is cleared). A non-empty ``output`` is refused unless
    ``force``; a file there is always refused."""
    if output.exists() and not output.is_dir():
        raise UserInputError(f"--output {str(output)!r} is a file, not a folder")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise UserInputError(f"--output {str(output)!r} is not empty: choose another folder, or give --force "
                             f"to replace what it holds")
    partial = output.with_name(output.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def publish(partial: Path, output: Path) -> None:
    """Put the complete ``partial`` folder in place of ``output``: the folder it replaces (empty,
    or allowed by ``--force``) is moved aside into a fresh temporary folder first and removed once
    the new one is in place."""
    if not output.exists():
        partial.rename(output)
        return
    aside = Path(tempfile.mkdtemp(prefix=output.name + ".replaced-", dir=output.parent))
    output.rename(aside / output.name)
    partial.rename(output)
    shutil.rmtree(aside, ignore_errors=True)


def save_tokenizer(tokenizer, folder: Path) -> None:
    """Save ``tokenizer`` with its chat template inside ``tokenizer_config.json`` (the form every
    transformers release and vLLM read) rather than in a separate ``chat_template.jinja``."""
    tokenizer.save_pretrained(folder, save_jinja_files=False)


def export_run(run_dir: str | Path, output: str | Path, checkpoint: str | None = None, merge: bool = False,
               force: bool = False) -> Export:
    """Export a checkpoint of the run in ``run_dir`` (the latest unless ``checkpoint`` names one,
    see :func:`find_checkpoint`) into ``output``: LoRA runs as the merged model with ``merge``, else
    the adapter alone; full fine-tuning runs as their weights (``merge`` changes nothing, and a note
    says so). The model is loaded on the CPU as the trainer loads it; see the module docstring."""
    from grpozoo.config import load_run_config
    from grpozoo.training.model import load_policy, load_tokenizer, resolve_model

    run_dir, output = Path(run_dir), Path(output)
    cfg = load_run_config(run_dir)
    source = find_checkpoint(run_dir, checkpoint)
    step = checkpoint_step(source)
    lora = cfg.model.lora.enabled
    kind = ("merged" if merge else "adapter") if lora else "full"
    notes = []
    if merge and not lora:
        notes.append("--merge was given, but this run fine-tuned all weights (no LoRA adapter to merge): "
                     "the weights are exported as trained")
    if kind == "merged" and cfg.model.dtype != "float32":
        notes.append(f"the float32 adapter was merged into the {cfg.model.dtype} base weights, so the merged "
                     f"weights are rounded to {cfg.model.dtype}")
    base = resolve_model(cfg.model.name)
    check_output_outside(output, run_dir, source)
    partial = prepare_output(output, force)
    try:
        model_cfg = cfg.model.model_copy(update={"gradient_checkpointing": False})
        model, _ = load_policy(model_cfg, "cpu", init_from=source / "model")
        if kind == "merged":
            model = model.merge_and_unload()
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer_dir = source / "model" if (source / "model" / "tokenizer_config.json").exists() else Path(base)
        save_tokenizer(load_tokenizer(str(tokenizer_dir)), partial)
        card = model_card(cfg, run_dir, source, step, kind, base, read_evals(run_dir), notes)
        (partial / "README.md").write_text(card)  # after save_pretrained: peft writes its own card
        publish(partial, output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Export(output=output, checkpoint=source, step=step, kind=kind, notes=notes)
