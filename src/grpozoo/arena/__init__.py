"""The arena: several recipes trained side by side on the same model, data, seeds and budget,
one report. From Python::

    from grpozoo.arena import arena_from_args, run_arena

    arena = arena_from_args(recipes="grpo,dr_grpo", task="chain_sum", steps=20, seeds=2)
    run_arena(arena)  # DIR/runs/<recipe>-seed<k>/ and DIR/report.html, DIR/summary.md, DIR/summary.csv
"""

from grpozoo.arena.report import collect, write_report
from grpozoo.arena.runner import run_arena, run_state, train_one
from grpozoo.arena.spec import Arena, ArenaRun, Entry, arena_from_args, load_arena_file, parse_seeds

__all__ = [
    "Arena",
    "ArenaRun",
    "Entry",
    "arena_from_args",
    "collect",
    "load_arena_file",
    "parse_seeds",
    "run_arena",
    "run_state",
    "train_one",
    "write_report",
]
