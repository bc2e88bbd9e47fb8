"""Median GRPO step time of grpozoo, and of TRL's ``GRPOTrainer`` on the same work when ``trl`` imports.

    python benchmarks/step_time.py [--steps 3] [--lora] [--threads N] [--rounds R]
    python benchmarks/step_time.py --scaling [--lora]        # step time as G, prompt, completion double
    python benchmarks/step_time.py --shared-prefix [--lora]  # shared-prefix forward vs plain, long prompts

Both systems run the same fixed configuration, each in its own child process (a fair peak-RSS
figure, no shared caches), in lockstep: the two processes take turns step by step (the order
alternating each step), the waiting one idle, so both meet the same state of the machine (a shared
VM's speed drifts by tens of percent within minutes); ``--rounds R`` repeats that with fresh
processes. Fairness:

* the embedded SmolLM2-135M-Instruct (``--model smollm2-135m``), float32 weights and compute
  (TRL's ``bf16`` default is switched off), gradient checkpointing off (TRL defaults it on);
* full fine-tuning, or with ``--lora`` LoRA r=16, alpha=32, dropout 0, all linear layers, in both;
* one optimiser step = 4 prompts x 4 completions of exactly 32 new tokens (EOS suppressed before
  32 tokens in both: ``min_new_tokens``), temperature 1.0, top-p 1, no top-k, learning rate 1e-6,
  AdamW (torch's fused kernel in both, transformers' default), grad-norm clip 1.0, no KL term
  (beta=0), one policy update per batch (so neither recomputes old log-probs), one micro-batch;
* the same reasoning-gym ``chain_sum`` prompts in the same order (TRL's dataset holds exactly the
  rows grpozoo's seeded selector picks, unshuffled) and the same verifier (the task's ``score``);
* 1 warm-up step, then ``--steps`` measured steps; medians over all measured steps of all rounds.

Step time: grpozoo's own ``time/step_s``; for TRL, on_step_begin -> on_step_end of a callback
(generation, reward, loss, backward, clip and optimiser step). Generation time for TRL times its
private ``_generate`` (tokenise, generate, decode) and is left out if that method is missing.
"gen tok/s" = completion tokens / generation seconds (grpozoo's ``tokens_per_s``); "step tok/s" =
completion tokens / step seconds. Completion lengths count the EOS token in both systems.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

PROMPTS, GROUP, MAX_NEW, LR, TEMPERATURE = 4, 4, 32, 1e-6, 1.0
MARKER = "STEP_TIME_RESULT "
STEP_DONE = "STEP_TIME_DONE"  # a child's line after each step; its next step waits for a line on stdin
TRL_INSTALL = "pip install trl 'torch==2.13.0'"


def grpozoo_config(steps: int, lora: bool, threads: int | None, out: str, extra: tuple[str, ...] = ()):
    from grpozoo.config import resolve_config

    sets = [
        "model.name=smollm2-135m", "model.dtype=float32", f"model.lora.enabled={str(lora).lower()}",
        "model.lora.r=16", "model.lora.alpha=32", "model.lora.dropout=0.0", "model.lora.target_modules=all-linear",
        "task.name=chain_sum", f"rollout.prompts_per_step={PROMPTS}", f"rollout.group_size={GROUP}",
        f"rollout.max_new_tokens={MAX_NEW}", f"rollout.min_new_tokens={MAX_NEW}",
        f"rollout.temperature={TEMPERATURE}", "rollout.top_p=1.0",
        f"train.learning_rate={LR}", f"train.steps={steps + 1}", "algorithm.kl.coef=0.0",
        "algorithm.num_iterations=1", "eval.at_start=false", "eval.at_end=false", f"output_dir={out}",
    ]
    if threads:
        sets.append(f"train.threads={threads}")
    return resolve_config(overrides=sets + list(extra))


class Turns:
    """A child's side of the lockstep: wait for the parent's go before a step, report its end."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def wait(self) -> None:
        if self.enabled:
            sys.stdin.readline()

    def done(self) -> None:
        if self.enabled:
            print(STEP_DONE, flush=True)


ALONE = Turns(False)  # a child run on its own: no turns to wait for


def run_grpozoo(steps: int, lora: bool, threads: int | None, extra: tuple[str, ...] = (),
                turns: Turns = ALONE) -> dict:
    from grpozoo.training import Trainer

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(grpozoo_config(steps, lora, threads, out, extra))
        r = trainer.cfg.rollout
        batch = trainer.rollouts.generate(trainer.rollouts.selector.next(r.prompts_per_step), trainer.step)
        prompt_tokens = float(batch.prompt_mask.sum(dim=1).float().mean())
        records = []
        for i in range(steps + 1):  # step 0 is the warm-up
            turns.wait()
            m = trainer.train_step()
            turns.done()
            if i == 0:
                continue
            records.append({"step_s": m["time/step_s"], "gen_s": m["time/generation_s"],
                            "learn_s": m["time/learning_s"],
                            "tokens": m["completion_length"] * r.prompts_per_step * r.group_size})
    return {"records": records, "prompt_tokens": prompt_tokens}


def run_trl(steps: int, lora: bool, threads: int | None, turns: Turns = ALONE) -> dict:
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from grpozoo.selectors import UniformSelector
    from grpozoo.tasks import make_task
    from grpozoo.training.model import resolve_model

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        cfg = grpozoo_config(steps, lora, threads, out)
        task = make_task(cfg.task)
        rows = UniformSelector(len(task.train_rows), seed=cfg.train.seed).next(PROMPTS * (steps + 1))
        dataset = Dataset.from_list([{"prompt": task.messages(task.train_rows[i]), "row": i} for i in rows])

        def correctness(completions, row, **_):
            return [task.score(c[0]["content"], task.train_rows[i]) for c, i in zip(completions, row, strict=True)]

        args = GRPOConfig(
            output_dir=out, use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
            per_device_train_batch_size=PROMPTS * GROUP, gradient_accumulation_steps=1,
            num_generations=GROUP, generation_batch_size=PROMPTS * GROUP, max_completion_length=MAX_NEW,
            temperature=TEMPERATURE, top_p=1.0, top_k=0, generation_kwargs={"min_new_tokens": MAX_NEW},
            learning_rate=LR, lr_scheduler_type="constant",
            optim="adamw_torch_fused", weight_decay=0.0, max_grad_norm=1.0, beta=0.0, num_iterations=1,
            epsilon=0.2, scale_rewards="group", loss_type="dapo", use_vllm=False, shuffle_dataset=False,
            max_steps=steps + 1, logging_steps=1, report_to=[], save_strategy="no", seed=cfg.train.seed,
        )
        peft_config = None
        if lora:
            from peft import LoraConfig

            peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                     task_type="CAUSAL_LM")
        model = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m"), dtype=torch.float32)
        trainer = GRPOTrainer(model=model, reward_funcs=correctness, args=args, train_dataset=dataset,
                              peft_config=peft_config)
        steps_s, gen_s, lengths = [], [], []
        if hasattr(trainer, "_generate"):  # private: the only hook around generation alone
            generate = trainer._generate

            def timed_generate(prompts):
                start = time.perf_counter()
                result = generate(prompts)
                gen_s.append(time.perf_counter() - start)
                return result

            trainer._generate = timed_generate

        class StepTimer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                turns.wait()
                self.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                steps_s.append(time.perf_counter() - self.start)
                turns.done()

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "completions/mean_length" in logs:
                    lengths.append(float(logs["completions/mean_length"]))

        trainer.add_callback(StepTimer())
        trainer.train()
    records = []
    for i in range(1, steps + 1):  # index 0 is the warm-up
        gen = gen_s[i] if len(gen_s) == steps + 1 else None
        records.append({"step_s": steps_s[i], "gen_s": gen, "learn_s": None if gen is None else steps_s[i] - gen,
                        "tokens": lengths[i] * PROMPTS * GROUP})
    return {"records": records, "version": trl.__version__}


def child(system: str, steps: int, lora: bool, threads: int | None, extra: tuple[str, ...] = (),
          lockstep: bool = False) -> None:
    import torch

    turns = Turns(lockstep)
    if system == "grpozoo":
        result = run_grpozoo(steps, lora, threads, extra, turns)
    else:
        result = run_trl(steps, lora, threads, turns)
    result["threads"] = torch.get_num_threads()
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(MARKER + json.dumps(result), flush=True)


def child_command(system: str, a: argparse.Namespace, extra: tuple[str, ...] = (), lockstep: bool = False) -> list:
    cmd = [sys.executable, __file__, "--system", system, "--steps", str(a.steps)]
    cmd += ["--lora"] * a.lora + (["--threads", str(a.threads)] if a.threads else []) + ["--lockstep"] * lockstep
    cmd += [arg for override in extra for arg in ("--set", override)]
    print(f"[running {system}: {' '.join(cmd[1:])}]", file=sys.stderr, flush=True)
    return cmd


def spawn(system: str, a: argparse.Namespace, extra: tuple[str, ...] = ()) -> tuple[dict | None, str]:
    proc = subprocess.run(child_command(system, a, extra), capture_output=True, text=True)
    return read_result(proc.stdout.splitlines(), proc.stderr, proc.returncode)


def read_result(lines: list[str], stderr: str, returncode: int | None) -> tuple[dict | None, str]:
    for line in lines:
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):]), ""
    tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
    return None, f"exit status {returncode}: {tail}"


def run_lockstep(systems: list[str], a: argparse.Namespace) -> dict[str, tuple[dict | None, str]]:
    """Run the systems' children side by side, one step at a time each, the order alternating each
    step; a child that fails drops out and the others go on. Returns each system's (result, error)."""
    errs = {s: tempfile.TemporaryFile("w+") for s in systems}  # a file: a chatty child never blocks on it
    procs = {
        s: subprocess.Popen(child_command(s, a, lockstep=True), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=errs[s], text=True)
        for s in systems
    }
    outputs: dict[str, list[str]] = {s: [] for s in systems}
    alive = list(systems)
    for step in range(a.steps + 1):
        for s in list(alive) if step % 2 == 0 else alive[::-1]:  # copies: a failed child leaves `alive`
            proc = procs[s]
            try:
                proc.stdin.write("go\n")
                proc.stdin.flush()
            except BrokenPipeError:
                alive.remove(s)
                continue
            for line in proc.stdout:  # until the step's end, or the child's exit
                outputs[s].append(line.rstrip("\n"))
                if line.startswith(STEP_DONE):
                    break
            else:
                alive.remove(s)
    results = {}
    for s, proc in procs.items():
        rest, _ = proc.communicate()
        errs[s].seek(0)
        results[s] = read_result(outputs[s] + rest.splitlines(), errs[s].read(), proc.returncode)
        errs[s].close()
    return results


# a sentence of about 13 tokens; repeated in the system prompt, it lengthens every prompt alike
FILLER = "Read the whole chain of additions and subtractions before you answer. "
SCALING = {
    "title": "scaling: each row doubles one dimension of the first (grpozoo; medians of measured steps)",
    "configs": [
        ("base", ()),
        ("group size x2", ("rollout.group_size=8",)),
        ("prompt x2", (f"task.system_prompt=Answer with just the final number. {FILLER * 3}",)),
        ("completion x2", ("rollout.max_new_tokens=64", "rollout.min_new_tokens=64")),
    ],
}
LONG_PROMPT = ("rollout.prompts_per_step=2", "rollout.group_size=8", f"task.system_prompt={FILLER * 24}")
SHARED_PREFIX = {
    "title": "shared-prefix learning forward (Prefix Grouper) against the plain one: long prompts, "
             "2 prompts x G=8, 32 new tokens (grpozoo)",
    "configs": [("plain forward", ("train.shared_prefix=false", *LONG_PROMPT)), ("shared prefix", LONG_PROMPT)],
}


def compare_configs(a: argparse.Namespace, table: dict) -> None:
    """One grpozoo child process per configuration; a row each, and the ratio to the first row."""
    rows = []
    for name, extra in table["configs"]:
        result, error = spawn("grpozoo", a, extra)
        if result is None:
            sys.exit(f"grpozoo run {name!r} failed: {error}")
        recs = result["records"]
        rows.append((name, result["prompt_tokens"], median([x["tokens"] for x in recs]),
                     median([x["step_s"] for x in recs]), median([x["gen_s"] for x in recs]),
                     median([x["learn_s"] for x in recs]), result["peak_rss_mib"]))
    mode = "LoRA r=16" if a.lora else "full fine-tuning"
    print(processor_line())
    print(f"{table['title']}; smollm2-135m float32, {mode}, {a.steps} measured steps after 1 warm-up")
    header = f"{'config':<22}{'prompt tok':>11}{'new tok/step':>13}{'step s':>9}{'gen s':>9}{'learn s':>9}" \
             f"{'step / first':>14}{'learn / first':>15}{'peak RSS MiB':>14}"
    print(header)
    print("-" * len(header))
    first = rows[0]
    for name, prompt, tokens, step, gen, learn, rss in rows:
        print(f"{name:<22}{prompt:>11.0f}{tokens:>13.0f}{step:>9.3f}{gen:>9.3f}{learn:>9.3f}"
              f"{step / first[3]:>14.2f}{learn / first[5]:>15.2f}{rss:>14.0f}")


ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def processor_line() -> str:
    """The processor, the vector extensions its kernels can use, and the kernels torch and grpozoo's
    decoder pick on it, so figures from different machines are never mixed up."""
    import torch

    from grpozoo.generation.decoders import packable_on_this_machine

    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    isa = ", ".join(f for f in ISA_FLAGS if f in flags) or "none of " + "/".join(ISA_FLAGS)
    decoding = "oneDNN-packed projections" if packable_on_this_machine() else "F.linear projections"
    return (f"processor: {name} ({torch.get_num_threads()} threads); ISA: {isa}; torch kernels: "
            f"{torch.backends.cpu.get_cpu_capability()}, oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}; "
            f"grpozoo decoding: {decoding}")


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3, help="measured steps after 1 warm-up step (default 3)")
    p.add_argument("--lora", action="store_true", help="LoRA r=16 alpha=32 all-linear instead of full FT")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--rounds", type=int, default=1, help="repeat both systems, alternating their order")
    p.add_argument("--system", choices=["all", "grpozoo", "trl"], default="all",
                   help="'all' runs each system in a child process; the others print one JSON result line")
    p.add_argument("--scaling", action="store_true",
                   help="grpozoo only: step time as group size, prompt length and completion length double")
    p.add_argument("--shared-prefix", action="store_true",
                   help="grpozoo only: the shared-prefix learning forward against the plain one, long prompts, G=8")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    p.add_argument("--lockstep", action="store_true", help=argparse.SUPPRESS)  # a child's: wait for turns
    a = p.parse_args()
    if a.system != "all":
        return child(a.system, a.steps, a.lora, a.threads, tuple(a.set), a.lockstep)
    if a.scaling or a.shared_prefix:
        return compare_configs(a, SCALING if a.scaling else SHARED_PREFIX)

    systems = ["grpozoo"]
    skipped = None
    if importlib.util.find_spec("trl") is None:
        skipped = f"TRL skipped: trl is not importable (install it with: {TRL_INSTALL})"
    else:
        systems.append("trl")
    results: dict[str, list[dict]] = {s: [] for s in systems}
    for r in range(a.rounds):
        for system, (result, error) in run_lockstep(systems if r % 2 == 0 else systems[::-1], a).items():
            if result is None:
                if system == "grpozoo":
                    sys.exit(f"grpozoo run failed: {error}")
                print(f"[trl failed: {error}]", file=sys.stderr)
                skipped = f"TRL skipped: its run failed ({error})"
                continue
            results[system].append(result)

    mode = "LoRA r=16 alpha=32 all-linear" if a.lora else "full fine-tuning"
    print(processor_line())
    print(f"step time: smollm2-135m float32, {mode}, chain_sum, {PROMPTS} prompts x {GROUP} completions, "
          f"max {MAX_NEW} new tokens, T={TEMPERATURE}, lr {LR:g}")
    print(f"{a.steps} measured steps after 1 warm-up step, x {a.rounds} round(s); medians over measured steps")
    header = f"{'system':<14}{'step s':>9}{'gen s':>9}{'learn s':>9}{'gen tok/s':>11}{'step tok/s':>12}" \
             f"{'tokens':>8}{'threads':>9}{'peak RSS MiB':>14}"
    print(header)
    print("-" * len(header))
    step_medians = {}
    for system, runs in results.items():
        if not runs:
            continue
        recs = [rec for run in runs for rec in run["records"]]
        step = step_medians[system] = median([x["step_s"] for x in recs])
        gen = median([x["gen_s"] for x in recs])
        tokens = median([x["tokens"] for x in recs])
        gen_tps = median([x["tokens"] / x["gen_s"] if x["gen_s"] else None for x in recs])
        name = system if system == "grpozoo" else f"trl {runs[0]['version']}"
        print(f"{name:<14}{fmt(step, '.3f'):>9}{fmt(gen, '.3f'):>9}{fmt(median([x['learn_s'] for x in recs]), '.3f'):>9}"
              f"{fmt(gen_tps, '.1f'):>11}{fmt(median([x['tokens'] / x['step_s'] for x in recs]), '.1f'):>12}"
              f"{fmt(tokens, '.0f'):>8}{runs[0]['threads']:>9}{max(r['peak_rss_mib'] for r in runs):>14.0f}")
    if "trl" in step_medians:
        print(f"ratio (grpozoo / TRL median step time): {step_medians['grpozoo'] / step_medians['trl']:.2f}")
        if len(results["trl"]) > 1:  # the machine's drift shows in how much the rounds disagree
            per_round = [median([x["step_s"] for x in g["records"]]) / median([x["step_s"] for x in t["records"]])
                         for g, t in zip(results["grpozoo"], results["trl"], strict=False)]
            print("ratio per round: " + ", ".join(f"{ratio:.2f}" for ratio in per_round))
        # the two systems' i-th steps ran next to each other in time: their ratio sees one machine state
        pairs = [g["step_s"] / t["step_s"] for gr, tr in zip(results["grpozoo"], results["trl"], strict=False)
                 for g, t in zip(gr["records"], tr["records"], strict=True)]
        print(f"ratio of neighbouring steps: median {median(pairs):.2f}, range {min(pairs):.2f}-{max(pairs):.2f}")
    else:
        print(skipped)


if __name__ == "__main__":
    main()
