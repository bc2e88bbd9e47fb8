"""``grpozoo train | sft | recipes | docs | eval | arena | serve | export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from grpozoo.algos.filters import NoLearnableGroupsError
from grpozoo.console import console, quiet_libraries, say
from grpozoo.errors import EngineError, UserInputError, checking_input
from grpozoo.rewards import RewardError

# Bad configuration or input (a command's set-up raises them through checking_input), a reward that
# fails, a run whose filters leave nothing to learn, a generation engine that is down: one clear
# line, no traceback. Any other exception is a bug and shows its traceback (a failed training step
# first saves a checkpoint).
INPUT_ERRORS = (UserInputError, RewardError, NoLearnableGroupsError, EngineError)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", help="recipe name (see `grpozoo recipes`); default grpo")
    parser.add_argument("--model", help="smollm2-135m (embedded, default), a checkpoint directory, or a hub id")
    parser.add_argument("--task", help="a reasoning-gym task name or a .jsonl/.parquet/.csv file")
    parser.add_argument("--config", help="YAML file with any part of the run configuration")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one configuration value, e.g. --set rollout.group_size=8 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpozoo", description="GRPO and its variants, as named recipes.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model with a recipe")
    _common(train)
    train.add_argument("--steps", type=int, help="training steps (train.steps)")
    train.add_argument("--output", help="run directory (default runs/<recipe>-<task>-<time>)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--processes", type=int, default=1, metavar="N",
                       help="learner processes on this machine (DDP; gloo on CPUs, NCCL on GPUs), started "
                            "with torchrun; every process samples its share of the prompts (default 1)")

    sft = sub.add_parser(
        "sft", help="supervised fine-tuning on the task's worked solutions, a model `train --model` starts from",
        description="Fine-tune on every train row of the task with a worked solution (its prompt, then the "
                    "solution and EOS), with the run configuration's model, LoRA, learning rate, seed and device "
                    "(the sft_grpo recipe's unless --recipe names one), evaluating held-out accuracy before and "
                    "after. OUTPUT/model is a standalone checkpoint (LoRA merged): grpozoo train --recipe sft_grpo "
                    "--model OUTPUT/model continues with GRPO. Ctrl-C saves what was trained so far.",
    )
    _common(sft)
    sft.add_argument("--epochs", type=int, default=3, help="passes over the demonstrations (default 3)")
    sft.add_argument("--batch-size", type=int, default=8, metavar="N",
                     help="demonstrations per optimiser step (default 8)")
    sft.add_argument("--output", help="output directory (default runs/sft-<task>-<time>)")
    sft.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub.add_parser("recipes", help="list every recipe with its paper and what it changes")

    docs = sub.add_parser("docs", help="write the zoo page: every recipe and component with its paper")
    docs.add_argument("--output", default="docs/zoo.md", help="where to write it (default docs/zoo.md)")

    ev = sub.add_parser("eval", help="held-out accuracy, pass@k, maj@k, pass^k, length, entropy and calibration "
                                     "of a model, a checkpoint or a run")
    _common(ev)
    ev.add_argument("--run", help="a run directory: evaluates its latest checkpoint on its task")
    ev.add_argument("--checkpoint", help="a checkpoint directory (RUN/checkpoints/step-N); with or without --run")
    ev.add_argument("--samples", type=int, help="samples per prompt (eval.samples)")
    ev.add_argument("--temperature", type=float, help="sampling temperature; 0 is greedy (eval.temperature)")
    ev.add_argument("--seed", type=int, help="sampling seed (eval.seed)")
    ev.add_argument("--benchmark", metavar="NAME",
                    help="a fixed benchmark instead of the task's held-out split: humaneval (pass@k of its 164 "
                         "problems, run in the code sandbox), rg-arithmetic (five reasoning-gym tasks), or a task "
                         "file's path (every row held out, judged by math-verify: a domain benchmark such as "
                         "WirelessMathBench-XL); one sample is greedy, several are sampled unless --temperature is given")
    ev.add_argument("--limit", type=int, metavar="M", help="with --benchmark: only the first M problems (of each task)")
    ev.add_argument("--max-new-tokens", type=int, metavar="N",
                    help="with --benchmark: tokens per completion (default: the benchmark's, 512 for humaneval)")
    ev.add_argument("--output", help="write the result as JSON here")
    ev.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")

    arena = sub.add_parser(
        "arena", help="train several recipes side by side (same model, data, seeds, budget) and report",
        description="Train every recipe × seed one after the other with the same model, data order, seeds, "
                    "generation budget and evaluation, then write DIR/report.html, summary.md and summary.csv. "
                    "Re-running the same command continues where it stopped.",
    )
    arena.add_argument("--recipes", help="comma-separated recipe names, e.g. grpo,dr_grpo,dapo")
    arena.add_argument("--task", help="a reasoning-gym task name or a .jsonl/.parquet/.csv file")
    arena.add_argument("--model", help="smollm2-135m (embedded, default), a checkpoint directory, or a hub id")
    arena.add_argument("--steps", type=int, help="training steps of every run")
    arena.add_argument("--seeds", help="how many seeds (3 means 0,1,2) or a comma-separated list (0,7,42)")
    arena.add_argument("--config", help="arena YAML file: recipes, seeds, steps, task, model, set, parallel")
    arena.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one value of every run's configuration (repeatable)")
    arena.add_argument("--output", help="arena directory (default arenas/<task>-<steps>steps)")
    arena.add_argument(
        "--parallel",
        type=int,
        help="runs trained at once, each in its own process (default 1); with train.device=cuda each "
        "gets its own GPU (at most one run per GPU), a pinned cuda:N trains one at a time",
    )
    arena.add_argument("--report-only", action="store_true", help="only rewrite the report from the runs so far")
    arena.add_argument("--no-progress", action="store_true", help="no progress bars")
    serve = sub.add_parser(
        "serve", help="start a vLLM server that `train --set generation.engine=vllm_server` samples from",
        description="Start vLLM's OpenAI-compatible server in the foreground with what grpozoo's vllm_server "
                    "engine needs (token ids in, tempered log-probs out, LoRA adapters and full weights "
                    "loaded at run time). vLLM runs from its own Python environment (--python).",
    )
    serve.add_argument("--python", default="python",
                       help="the Python of the environment vLLM is installed in (default: python on PATH)")
    serve.add_argument("--model", default="smollm2-135m",
                       help="smollm2-135m (embedded, default), a checkpoint directory, or a hub id")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--lora-rank", type=int, default=16, help="the largest model.lora.r to serve (default 16)")
    serve.add_argument("--device", choices=["cpu", "gpu"], default=None,
                       help="default: gpu where nvidia-smi is found, else cpu")
    serve.add_argument("--print", action="store_true", help="print the command instead of running it")

    export = sub.add_parser(
        "export", help="write a run's checkpoint as a plain transformers checkpoint, with tokenizer and model card",
        description="Export a checkpoint of a run (the latest by default) into DIR: LoRA runs as the adapter "
                    "alone, or merged into the base weights with --merge; full fine-tuning runs as their "
                    "weights. The tokenizer (with its chat template) and a model card README.md go beside it.",
    )
    export.add_argument("run", metavar="RUN", help="a run directory")
    export.add_argument("--checkpoint", metavar="NAME_OR_PATH",
                        help="step-N (or N) of the run, or a checkpoint directory (default: the latest)")
    export.add_argument("--output", required=True, metavar="DIR", help="the folder to write")
    export.add_argument("--merge", action="store_true",
                        help="LoRA runs: merge the adapter into the base weights (default: the adapter alone)")
    export.add_argument("--force", action="store_true", help="replace what a non-empty DIR holds")
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    import os
    import shlex
    import shutil

    from grpozoo.generation.vllm_server import server_command
    from grpozoo.training.model import resolve_model

    with checking_input():
        model = resolve_model(args.model)
    cpu = args.device == "cpu" or (args.device is None and shutil.which("nvidia-smi") is None)
    argv, env = server_command(args.python, model, args.host, args.port, args.lora_rank, cpu)
    if args.print:
        print(" ".join(f"{k}={v}" for k, v in env.items()), shlex.join(argv))
        return 0
    console.print(f"starting vLLM at http://{args.host}:{args.port} (train with --set generation.engine=vllm_server "
                  f"--set generation.url=http://{args.host}:{args.port})")
    os.execvpe(argv[0], argv, {**os.environ, **env})  # the server replaces this process


def cmd_export(args: argparse.Namespace) -> int:
    from grpozoo.export import export_run

    with checking_input():
        done = export_run(args.run, args.output, checkpoint=args.checkpoint, merge=args.merge, force=args.force)
    for note in done.notes:
        console.print(f"[bold]note:[/] {note}", soft_wrap=True)
    what = {"merged": "merged model", "adapter": "LoRA adapter", "full": "full weights"}[done.kind]
    console.print(f"exported the {what} of {done.checkpoint.name} (step {done.step}) to {done.output}",
                  soft_wrap=True)
    return 0


def without_processes(argv: list[str]) -> list[str]:
    """``argv`` without its ``--processes N`` (or ``--processes=N``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            out.append(arg)
    return out


def launch_processes(processes: int, argv: list[str]) -> int:
    """Run ``grpozoo argv`` as ``processes`` processes of one machine under torchrun, which sets the
    environment each joins the process group from; its exit status (one process failing stops all)."""
    import os
    import subprocess

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "grpozoo.cli", *argv]
    return subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
                          ).returncode


def cmd_train(args: argparse.Namespace) -> int:
    import os

    from grpozoo.config import load_run_config, resolve_config
    from grpozoo.training import Trainer, fit

    if args.processes < 1:
        raise UserInputError(f"--processes {args.processes}: give 1 or more learner processes")
    if args.processes > 1 and "WORLD_SIZE" not in os.environ:
        argv = without_processes(args.argv)
        if args.resume:
            run_dir = Path(args.resume)
        else:  # one run directory, named once here: each process naming its own would differ
            from grpozoo.training.trainer import default_run_dir

            with checking_input():
                cfg = resolve_config(args.config, args.overrides, recipe=args.recipe, model=args.model,
                                     task=args.task, steps=args.steps, output_dir=args.output)
            run_dir = Path(cfg.output_dir) if cfg.output_dir else default_run_dir(cfg)
            argv = [*argv, "--output", str(run_dir)]
        code = launch_processes(args.processes, argv)
        if code != 0:
            from grpozoo.training.checkpoint import latest_checkpoint

            saved = latest_checkpoint(run_dir)
            then = (f"the last checkpoint, {saved.name}, stands. Once fixed, continue with: grpozoo train --resume "
                    f"{run_dir} --processes {args.processes}" if saved else "no checkpoint was saved yet")
            console.print(f"[bold red]error:[/] a learner process stopped (exit status {code}); {then}",
                          soft_wrap=True)
        return code

    with checking_input():
        if args.resume:
            run_dir = Path(args.resume)
            steps = [f"train.steps={args.steps}"] if args.steps else []
            cfg = load_run_config(run_dir, args.overrides + steps)
            trainer = Trainer(cfg, run_dir=run_dir, resume=True, console=console)
            say(trainer.console, f"resuming {run_dir} at step {trainer.step}")
        else:
            cfg = resolve_config(args.config, args.overrides, recipe=args.recipe, model=args.model,
                                 task=args.task, steps=args.steps, output_dir=args.output)
            trainer = Trainer(cfg, console=console)
            from grpozoo.training.distributed import world_size

            processes = f" processes={world_size()} ({cfg.train.distributed})" if world_size() > 1 else ""
            say(trainer.console, f"[bold]grpozoo train[/] recipe={cfg.recipe} model={cfg.model.name} "
                                 f"task={cfg.task.name} steps={cfg.train.steps}{processes} → {trainer.run_dir}")
    try:
        fit(trainer, show_progress=not args.no_progress and trainer.main)
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    from grpozoo.training.sft import SFTRun, sft_config

    with checking_input():
        cfg = sft_config(args.config, args.overrides, recipe=args.recipe, model=args.model, task=args.task,
                         output_dir=args.output)
        job = SFTRun(cfg, epochs=args.epochs, batch_size=args.batch_size, console=console)
    try:
        job.run(show_progress=not args.no_progress)
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from grpozoo.recipes import all_recipes

    table = Table(title="grpozoo recipes")
    for column in ("recipe", "what it changes vs GRPO", "paper"):
        table.add_column(column, overflow="fold")
    for recipe in all_recipes():
        table.add_row(recipe.name, recipe.changes, recipe.citation)
    console.print(table)
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from grpozoo.reporting.zoo import zoo_markdown

    Path(args.output).write_text(zoo_markdown())
    console.print(f"wrote {args.output}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from grpozoo.evaluation import evaluate_held_out
    from grpozoo.evaluation.table import dumps, eval_table

    if args.benchmark or args.limit is not None or args.max_new_tokens is not None:
        return _eval_benchmark(args)
    with checking_input():
        cfg, model, tokenizer, source, task = _eval_inputs(args)
    progress = Progress(TextColumn("[bold]evaluating"), BarColumn(), TextColumn("{task.completed}/{task.total} prompts"),
                        TimeElapsedColumn(), console=console, disable=args.no_progress or args.json, transient=True)
    with progress:
        bar = progress.add_task("eval", total=len(task.eval_rows))
        result = evaluate_held_out(model, tokenizer, task, cfg, progress=lambda n: progress.advance(bar, n))
    e = cfg.eval
    result = {"model": source, "task": cfg.task.name, "temperature": e.temperature, "seed": e.seed,
              "max_new_tokens": cfg.rollout.max_new_tokens, **result}
    if args.json:
        print(dumps(result))
    else:
        console.print(eval_table(result, f"{source} on {cfg.task.name} (held-out; temperature {e.temperature:g}, "
                                         f"seed {e.seed}, at most {cfg.rollout.max_new_tokens} new tokens)"))
    if args.output:
        Path(args.output).write_text(dumps(result) + "\n")
    return 0


def _eval_benchmark(args: argparse.Namespace) -> int:
    """``grpozoo eval --benchmark NAME``: a fixed benchmark (``grpozoo.evaluation.benchmarks``)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from grpozoo.evaluation.benchmarks import benchmark_report, evaluate_benchmark, get_benchmark
    from grpozoo.evaluation.table import dumps

    if not args.benchmark:
        raise UserInputError("--limit and --max-new-tokens go with --benchmark NAME")
    with checking_input():
        benchmark = get_benchmark(args.benchmark)
        for option, value in (("--samples", args.samples), ("--limit", args.limit),
                              ("--max-new-tokens", args.max_new_tokens)):
            if value is not None and value < 1:
                raise UserInputError(f"{option} {value}: give 1 or more")
        cfg, model, tokenizer, source, _ = _eval_inputs(args)
        tasks = benchmark.tasks(tokenizer, cfg.task, args.limit)
    progress = Progress(TextColumn(f"[bold]{benchmark.name}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total} prompts"), TimeElapsedColumn(), console=console,
                        disable=args.no_progress or args.json, transient=True)
    with progress:
        bar = progress.add_task("eval", total=sum(len(t.eval_rows) for t in tasks))
        result = evaluate_benchmark(model, tokenizer, benchmark, tasks, samples=args.samples or 1,
                                    temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                                    seed=cfg.eval.seed, progress=lambda n: progress.advance(bar, n))
    result = {"model": source, **result}
    if args.json:
        print(dumps(result))
    else:
        console.print(benchmark_report(result, f"{source} on {benchmark.name} ({result['prompts']} problems; "
                                               f"temperature {result['temperature']:g}, seed {result['seed']}, at "
                                               f"most {result['max_new_tokens']} new tokens)"))
    if args.output:
        Path(args.output).write_text(dumps(result) + "\n")
    return 0


def _eval_inputs(args: argparse.Namespace):
    """What ``grpozoo eval`` evaluates: the configuration, the model and tokenizer (a run's checkpoint,
    or ``--model``), their name, and the task."""
    from grpozoo.config import load_run_config, resolve_config
    from grpozoo.tasks import make_task
    from grpozoo.training import checkpoint as ckpt
    from grpozoo.training.model import load_model, load_policy, load_tokenizer, resolve_model

    overrides = list(args.overrides)
    for key, value in (("eval.samples", args.samples), ("eval.temperature", args.temperature),
                       ("eval.seed", args.seed)):
        if value is not None:
            overrides.append(f"{key}={value}")
    run = args.run
    if args.checkpoint and not run:
        given = Path(args.checkpoint)
        run = str(given.parent.parent)
        if not (given / "model").is_dir() or not (Path(run) / "config.yaml").exists():
            raise FileNotFoundError(
                f"--checkpoint {args.checkpoint!r} is not a checkpoint of a run: expected RUN/checkpoints/step-N "
                f"holding model/, with RUN/config.yaml; give --run RUN too if the checkpoint lies elsewhere"
            )
    if run:
        run_dir = Path(run)
        cfg = load_run_config(run_dir, overrides)
        checkpoint = Path(args.checkpoint) if args.checkpoint else ckpt.latest_checkpoint(run_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"--run {run!r} has no checkpoint yet")
        if not (checkpoint / "model").is_dir():
            raise FileNotFoundError(f"--checkpoint {str(checkpoint)!r} holds no model/ directory")
        model, tokenizer = load_policy(cfg.model, cfg.train.device, init_from=checkpoint / "model")
        source = str(checkpoint)
    else:
        cfg = resolve_config(args.config, overrides, recipe=args.recipe, model=args.model, task=args.task)
        path = resolve_model(cfg.model.name)
        model, tokenizer = load_model(path, cfg.model.dtype, cfg.train.device), load_tokenizer(path)
        source = cfg.model.name
    return cfg, model, tokenizer, source, make_task(cfg.task)


def cmd_arena(args: argparse.Namespace) -> int:
    from grpozoo.arena import arena_from_args, run_arena, write_report

    with checking_input():
        arena = arena_from_args(
            config=args.config, recipes=args.recipes, task=args.task, model=args.model, steps=args.steps,
            seeds=args.seeds, overrides=args.overrides, output=args.output, parallel=args.parallel,
        )
        if args.report_only:
            paths = write_report(arena)
            console.print(f"wrote {paths['html']}")
            return 0
    try:
        run_arena(arena, console=console, show_progress=not args.no_progress)
    except KeyboardInterrupt:
        console.print(f"[bold]arena stopped.[/] Run the same command again to continue where it stopped "
                      f"({arena.directory}).")
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    quiet_libraries()
    command = {"train": cmd_train, "sft": cmd_sft, "recipes": cmd_recipes, "docs": cmd_docs, "eval": cmd_eval,
               "arena": cmd_arena, "serve": cmd_serve, "export": cmd_export}[args.command]
    try:
        return command(args)
    except INPUT_ERRORS as error:
        console.print(f"[bold red]error:[/] {error}")
        return 2

if __name__ == "__main__":
    sys.exit(main())
