"""Tasks from datasets: the common part (columns, reference answers, held-out rows, math-verify
scoring), ``save_to_disk`` directories, and Hugging Face Hub datasets read from the local cache."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grpozoo.errors import ConfigError, DataError
from grpozoo.registry import did_you_mean
from grpozoo.rewards.math import math_equal
from grpozoo.tasks.base import Task, split_disjoint
from grpozoo.tasks.references import prepare_rows

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
HELD_OUT_SPLIT = "test"


def is_hub_id(name: str) -> bool:
    """Whether ``name`` reads as a Hub dataset id, ``org/name``."""
    return bool(HUB_ID.match(name)) and ".." not in name


class DatasetTask(Task):
    """Rows with a ``prompt`` (text) or ``messages`` (chat) column and an ``answer`` column, after
    ``task.columns`` and ``task.reference_format`` (:mod:`grpozoo.tasks.references`), scored by
    math-verify against ``answer``.

    Held-out rows come from the dataset's ``test`` split when it has one (and ``task.split`` is
    another); otherwise the rows are shuffled with ``task.seed`` and the first ``eval_size`` held
    out. Either way train rows with the same prompt as a held-out row are dropped. Every other column
    reaches the reward functions; a ``hints`` or ``solution`` column feeds guided rollouts (see
    :mod:`grpozoo.tasks.hints`).
    """

    def _set_rows(self, source: str, rows: list[dict[str, Any]],
                  held_out: list[dict[str, Any]] | None = None) -> None:
        cfg = self.cfg
        rows = prepare_rows(rows, cfg, source)
        random.Random(cfg.seed).shuffle(rows)
        if held_out:
            held = prepare_rows(held_out, cfg, f"{source}, held-out split {HELD_OUT_SPLIT!r}")
            random.Random(cfg.seed).shuffle(held)
            eval_rows = held[: cfg.eval_size]
            self.train_rows, self.eval_rows = split_disjoint(eval_rows + rows, len(eval_rows))
        else:
            if len(rows) <= cfg.eval_size:
                raise DataError(
                    f"{source} has {len(rows)} rows, not more than task.eval_size={cfg.eval_size}: "
                    f"lower task.eval_size or add rows"
                )
            self.train_rows, self.eval_rows = split_disjoint(rows, cfg.eval_size)
        if not self.train_rows:
            raise DataError(f"{source}: every train row repeats a held-out prompt; no train rows are left")
        self.train_rows = self.train_rows[: cfg.train_size]

    def score(self, completion: str, row: dict[str, Any]) -> float:
        answer = self.extract(completion)
        return 0.0 if answer is None else float(math_equal(answer, str(row["answer"])))


def pick_split(data: Any, split: str, source: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The rows of ``split`` of a loaded ``datasets`` Dataset or DatasetDict, and the held-out
    split's rows (None when there is none to take them from)."""
    import datasets

    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            splits = list(data)
            raise DataError(
                f"{source} has no split {split!r}.{did_you_mean(split, splits)} Its splits: {', '.join(splits)}; "
                f"set task.split to one of them"
            )
        held_out = data[HELD_OUT_SPLIT].to_list() if HELD_OUT_SPLIT in data and split != HELD_OUT_SPLIT else None
        return data[split].to_list(), held_out
    if isinstance(data, datasets.Dataset):
        if split != "train":
            raise ConfigError(
                f"{source} is a single Dataset, without splits; task.split={split!r} has nothing to pick: "
                f"leave task.split at 'train'"
            )
        return data.to_list(), None
    raise DataError(f"{source} holds a {type(data).__name__}, not a Dataset or DatasetDict")


class SavedDatasetTask(DatasetTask):
    """A directory written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``; a
    DatasetDict's ``task.split`` is trained on."""

    def __init__(self, cfg):
        super().__init__(cfg)
        import datasets

        path = Path(cfg.name)
        if cfg.subset is not None:
            raise ConfigError(f"task.subset={cfg.subset!r} picks a configuration of a hub dataset; "
                              f"the directory {cfg.name!r} has none: leave it unset")
        try:
            data = datasets.load_from_disk(str(path))
        except FileNotFoundError as error:
            raise DataError(
                f"task directory {cfg.name!r} is not a dataset: {error} Give a directory written by "
                f"Dataset.save_to_disk or DatasetDict.save_to_disk, or a .jsonl/.json/.parquet/.csv file"
            ) from None
        self.name = path.resolve().name
        source = f"dataset directory {cfg.name!r} (split {cfg.split!r})"
        if isinstance(data, datasets.Dataset):
            source = f"dataset directory {cfg.name!r}"
        rows, held_out = pick_split(data, cfg.split, source)
        self._set_rows(source, rows, held_out)


@contextmanager
def hub_offline() -> Iterator[None]:
    """``datasets`` and ``huggingface_hub`` in offline mode for the block: nothing tries the network,
    and a Hub dataset loads only from the local cache. Both libraries read ``HF_HUB_OFFLINE`` /
    ``HF_DATASETS_OFFLINE`` when imported, so their module flags are set too, then restored."""
    import datasets.config
    import huggingface_hub.constants

    saved_env = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    flags = [(datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE"),
             (huggingface_hub.constants, "HF_HUB_OFFLINE")]
    saved_flags = [(module, attr, getattr(module, attr)) for module, attr in flags if hasattr(module, attr)]
    os.environ.update({key: "1" for key in saved_env})
    for module, attr, _ in saved_flags:
        setattr(module, attr, True)
    try:
        yield
    finally:
        for module, attr, value in saved_flags:
            setattr(module, attr, value)
        for key, old in saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def not_cached_message(name: str, subset: str | None, cache: str) -> str:
    subset_arg = f", {subset!r}" if subset else ""
    local = name.split("/")[-1]
    return (
        f"task {name!r} is not a file or directory here, so it was read as a Hugging Face Hub dataset id, "
        f"but that dataset{f' (subset {subset!r})' if subset else ''} is not in the local datasets cache "
        f"({cache}). grpozoo reads hub datasets from the cache only: this run has no network access to the "
        f"Hub. To make it available, on a machine with network run\n"
        f"  python -c \"import datasets; datasets.load_dataset({name!r}{subset_arg}).save_to_disk({local!r})\"\n"
        f"then copy the directory {local!r} here and give its path as the task (--task path/to/{local}); "
        f"or load it there with datasets.load_dataset and copy that machine's datasets cache "
        f"(~/.cache/huggingface/datasets) to {cache} here"
    )


class HubDatasetTask(DatasetTask):
    """A Hugging Face Hub dataset (``org/name``, configuration ``task.subset``) already in the local
    ``datasets`` cache, loaded with ``datasets.load_dataset`` in offline mode."""

    def __init__(self, cfg):
        super().__init__(cfg)
        import datasets

        name = cfg.name
        cache = str(datasets.config.HF_DATASETS_CACHE)
        with hub_offline():
            try:
                data = datasets.load_dataset(name, cfg.subset)
            except (ConnectionError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as error:
                raise DataError(not_cached_message(name, cfg.subset, cache)) from error
            except ValueError as error:  # cached, but not that configuration, or several and none chosen
                reason = "; ".join(str(error).splitlines())
                raise DataError(
                    f"hub dataset {name!r} in the local datasets cache ({cache}): {reason}. Set task.subset to a "
                    f"cached configuration"
                ) from None
        self.name = name.split("/")[-1]
        source = f"hub dataset {name!r} (split {cfg.split!r})"
        rows, held_out = pick_split(data, cfg.split, source)
        self._set_rows(source, rows, held_out)
