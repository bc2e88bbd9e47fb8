"""Datasets as tasks: column mapping, save_to_disk directories, cached hub ids, reference answers."""

import json
import os
import re
import socket

import datasets
import pytest

from grpozoo.config import TaskConfig
from grpozoo.errors import ConfigError, DataError
from grpozoo.tasks import FileTask, HubDatasetTask, SavedDatasetTask, make_task
from grpozoo.tasks.hints import hints_from_solution
from grpozoo.tasks.references import parse_boxed, parse_gsm8k, parse_last_line, parse_reference


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path, monkeypatch):
    # `datasets` reads and writes its cache here: a fresh, empty cache per test
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def _gsm8k_rows(n, start=0):
    rows = []
    for i in range(start, start + n):
        a, b = i + 2, i + 5
        rows.append({
            "question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
            "final": f"Tom starts with {a} apples.\nHe buys {b} more: {a} + {b} = <<{a}+{b}={a + b}>>{a + b}.\n"
                     f"#### {a + b}",
            "level": i % 3,
        })
    return rows


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _task(name, **kwargs):
    return make_task(TaskConfig(name=str(name), **{"train_size": 100, "eval_size": 3, **kwargs}))


def _prompts(rows):
    return [r["prompt"] for r in rows]


# ---------------------------------------------------------------- reference answers


def test_gsm8k_reference_final_answer_and_solution():
    answer, solution = parse_gsm8k("Half of 48 is <<48/2=24>>24.\nSo 24 + 48 = <<24+48=72>>72.\n#### 72")
    assert answer == "72"
    assert solution == "Half of 48 is 24.\nSo 24 + 48 = 72."  # calculator annotations dropped


def test_gsm8k_reference_with_several_markers_takes_the_last():
    answer, solution = parse_gsm8k("first try #### 12\nno, recount: 7 + 8 = 15\n####  15 \n")
    assert answer == "15"
    assert solution == "first try #### 12\nno, recount: 7 + 8 = 15"


@pytest.mark.parametrize(("reference", "problem"), [
    ("The answer is 42", "has no '####' marker"),
    ("so 40 + 2 = 42\n####   \n", "has nothing after its last '####'"),
])
def test_gsm8k_reference_without_a_final_answer_is_refused(reference, problem):
    with pytest.raises(ValueError, match=problem):
        parse_gsm8k(reference)


def test_boxed_reference_with_nested_braces():
    reference = "Rationalise: $\\frac{1}{\\sqrt{2}} = \\boxed{\\frac{\\sqrt{2}}{2}}$."
    answer, solution = parse_boxed(reference)
    assert answer == "\\frac{\\sqrt{2}}{2}"
    assert solution == reference


def test_boxed_reference_takes_the_last_box_and_a_bare_box_has_no_solution():
    assert parse_boxed("First \\boxed{3}, then corrected: \\boxed{\\{1, 2\\}}")[0] == "\\{1, 2\\}"
    assert parse_boxed("  \\boxed{7} ") == ("7", "")


@pytest.mark.parametrize(("reference", "problem"), [
    ("the answer is 7", "no complete \\\\boxed"),
    ("so \\boxed{\\frac{1}{2}", "no complete \\\\boxed"),  # its braces never close
    ("so \\boxed{}", "empty \\\\boxed"),
])
def test_boxed_reference_without_a_complete_box_is_refused(reference, problem):
    with pytest.raises(ValueError, match=problem):
        parse_boxed(reference)


def test_last_line_reference():
    assert parse_last_line("3 + 4 = 7\n7 * 2 = 14\n\nAnswer: 14\n\n") == ("14", "3 + 4 = 7\n7 * 2 = 14")
    assert parse_last_line("The final answer is -3.5") == ("-3.5", "")
    # a line that merely starts with the word keeps it
    assert parse_last_line("answers vary by region") == ("answers vary by region", "")
    with pytest.raises(ValueError, match="is empty"):
        parse_last_line(" \n\n")
    with pytest.raises(ValueError, match="holds no answer"):
        parse_last_line("work\nAnswer:")


def test_auto_reference_is_the_answer_as_it_is():
    assert parse_reference("#### 5", "auto") == ("#### 5", "")


def test_hints_from_a_solution_grow_to_the_whole_solution():
    solution = "Plan: add the parts.\n2 + 3 = 5\n5 + 4 = 9\n9 + 1 = 10\nThe answer is 10"
    hints = hints_from_solution(solution)
    assert hints == [
        "Plan: add the parts.\n2 + 3 = 5",
        "Plan: add the parts.\n2 + 3 = 5\n5 + 4 = 9\n9 + 1 = 10",
        solution,
    ]
    assert hints_from_solution("Just one step.") == ["Just one step."]
    assert hints_from_solution("First we add. Then we halve. So it is 3.")[0] == "First we add."


# ---------------------------------------------------------------- column mapping, files


def test_columns_map_a_dataset_onto_prompt_and_answer_and_gsm8k_gives_solutions(tmp_path):
    path = _write_jsonl(tmp_path / "apples.jsonl", _gsm8k_rows(10))
    task = _task(path, columns={"prompt": "question", "answer": "final"}, reference_format="gsm8k")
    assert isinstance(task, FileTask)
    rows = task.train_rows + task.eval_rows
    assert len(task.eval_rows) == 3 and len(rows) == 10
    for row in rows:
        a, b = map(int, re.match(r"Tom has (\d+) apples and buys (\d+) more", row["prompt"]).groups())
        assert row["answer"] == str(a + b)
        assert row["solution"] == f"Tom starts with {a} apples.\nHe buys {b} more: {a} + {b} = {a + b}."
        assert row["hints"][-1] == row["solution"] and row["hints"][0] == f"Tom starts with {a} apples."
        assert "question" not in row and "final" not in row and row["level"] in (0, 1, 2)
    # correctness compares against the extracted final answer, not the worked reference
    row = task.train_rows[0]
    assert task.score(f"so he has {row['answer']}", row) == 1.0
    assert task.score(f"so he has {int(row['answer']) + 1}", row) == 0.0
    # the prompt asked of the model is the mapped question
    assert task.messages(row)[-1]["content"] == row["prompt"]


def test_a_column_mapped_twice_and_an_existing_solution_kept(tmp_path):
    rows = [{"q": f"{i} + 1 = ?", "worked": f"{i} + 1 = {i + 1}\nAnswer: {i + 1}", "note": "mine"} for i in range(8)]
    path = _write_jsonl(tmp_path / "plus.jsonl", rows)
    task = _task(path, columns={"prompt": "q", "answer": "worked", "solution": "worked"},
                 reference_format="last_line")
    for row in task.train_rows:
        i = int(row["prompt"].split(" ")[0])
        assert row["answer"] == str(i + 1)
        assert row["solution"] == f"{i} + 1 = {i + 1}\nAnswer: {i + 1}"  # the mapped column, not the parsed text


def test_a_missing_mapped_column_names_it_the_columns_and_the_fix(tmp_path):
    path = _write_jsonl(tmp_path / "apples.jsonl", _gsm8k_rows(6))
    with pytest.raises(DataError) as info:
        _task(path, columns={"prompt": "question", "answer": "finale"})
    message = str(info.value)
    assert "task.columns.answer names the column 'finale', which the dataset does not have" in message
    assert "Did you mean 'final'?" in message
    assert "Its columns: question, final, level" in message
    assert "--set task.columns.answer=final" in message


def test_a_dataset_without_prompt_or_answer_columns_says_how_to_map_them(tmp_path):
    path = _write_jsonl(tmp_path / "apples.jsonl", _gsm8k_rows(6))
    with pytest.raises(DataError, match=r"no 'prompt' \(text\) or 'messages' \(chat\) column; its columns: "
                                        r"question, final, level\. .*--set task.columns.prompt=question"):
        _task(path)
    with pytest.raises(DataError, match=r"has no 'answer' column; .*--set task.columns.answer=<column>"):
        _task(path, columns={"prompt": "question"})


def test_a_reference_not_in_the_chosen_format_names_the_row(tmp_path):
    rows = _gsm8k_rows(8)
    rows[5]["final"] = "He has 12 apples."
    path = _write_jsonl(tmp_path / "apples.jsonl", rows)
    with pytest.raises(DataError) as info:
        _task(path, columns={"prompt": "question", "answer": "final"}, reference_format="gsm8k")
    message = str(info.value)
    assert "row 5's answer 'He has 12 apples.' has no '####' marker" in message
    assert "task.reference_format=gsm8k" in message


def test_unknown_column_role_is_a_config_error():
    with pytest.raises(ValueError, match="'promt' is not one of them. Did you mean 'prompt'?"):
        TaskConfig(columns={"promt": "question"})


def test_dataset_fields_are_refused_for_reasoning_gym_tasks_and_split_for_files(tmp_path):
    with pytest.raises(ConfigError, match="task.columns, task.reference_format: for datasets"):
        make_task(TaskConfig(name="chain_sum", columns={"prompt": "q"}, reference_format="gsm8k"))
    path = _write_jsonl(tmp_path / "apples.jsonl", _gsm8k_rows(6))
    with pytest.raises(ConfigError, match="holds one table"):
        _task(path, split="test", columns={"prompt": "question", "answer": "final"})


# ---------------------------------------------------------------- save_to_disk directories


def _dataset(rows):
    return datasets.Dataset.from_list(rows)


def test_a_saved_dataset_directory_is_a_task(tmp_path):
    _dataset(_gsm8k_rows(12)).save_to_disk(str(tmp_path / "apples"))
    task = _task(tmp_path / "apples", columns={"prompt": "question", "answer": "final"}, reference_format="gsm8k")
    assert isinstance(task, SavedDatasetTask) and task.name == "apples"
    assert len(task.eval_rows) == 3 and len(task.train_rows) == 9
    assert not set(_prompts(task.train_rows)) & set(_prompts(task.eval_rows))
    assert sorted(_prompts(task.train_rows + task.eval_rows)) == sorted(r["question"] for r in _gsm8k_rows(12))
    assert all(r["answer"].isdigit() and r["solution"] for r in task.train_rows)
    # the held-out rows are drawn with task.seed
    again = _task(tmp_path / "apples", columns={"prompt": "question", "answer": "final"}, seed=1)
    assert _prompts(again.eval_rows) != _prompts(task.eval_rows)
    with pytest.raises(ConfigError, match="single Dataset, without splits; task.split='test'"):
        _task(tmp_path / "apples", columns={"prompt": "question", "answer": "final"}, split="test")


def test_a_saved_dataset_dict_trains_on_its_split_and_holds_out_its_test_split(tmp_path):
    train, test, validation = _gsm8k_rows(10), _gsm8k_rows(5, start=100), _gsm8k_rows(6, start=200)
    train.append(dict(test[0]))  # a train row repeating a held-out question is dropped
    splits = datasets.DatasetDict({"train": _dataset(train), "test": _dataset(test), "validation": _dataset(validation)})
    splits.save_to_disk(str(tmp_path / "apples"))
    mapping = {"columns": {"prompt": "question", "answer": "final"}, "reference_format": "gsm8k"}
    task = _task(tmp_path / "apples", eval_size=4, **mapping)
    test_questions = {r["question"] for r in test}
    assert len(task.eval_rows) == 4 and set(_prompts(task.eval_rows)) <= test_questions
    assert set(_prompts(task.train_rows)) == {r["question"] for r in train} - set(_prompts(task.eval_rows))
    assert not set(_prompts(task.train_rows)) & set(_prompts(task.eval_rows))

    other = _task(tmp_path / "apples", eval_size=4, split="validation", **mapping)
    assert set(_prompts(other.train_rows)) == {r["question"] for r in validation}
    assert set(_prompts(other.eval_rows)) <= test_questions

    # trained on the test split itself, the held-out rows are carved out of it
    carved = _task(tmp_path / "apples", eval_size=2, split="test", **mapping)
    assert len(carved.eval_rows) == 2 and len(carved.train_rows) == 3
    assert set(_prompts(carved.train_rows + carved.eval_rows)) == test_questions

    with pytest.raises(DataError, match="has no split 'valid'. Did you mean 'validation'.* Its splits: train, test, "
                                        "validation; set task.split"):
        _task(tmp_path / "apples", split="valid", **mapping)


def test_a_dataset_dict_without_a_test_split_carves_out_held_out_rows(tmp_path):
    datasets.DatasetDict({"train": _dataset(_gsm8k_rows(9))}).save_to_disk(str(tmp_path / "apples"))
    task = _task(tmp_path / "apples", columns={"prompt": "question", "answer": "final"})
    assert len(task.eval_rows) == 3 and len(task.train_rows) == 6
    assert not set(_prompts(task.train_rows)) & set(_prompts(task.eval_rows))


def test_a_directory_that_is_not_a_saved_dataset(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="task directory .* is not a dataset: .* Give a directory written by Dataset.save_to_disk"):
        _task(tmp_path / "plain")


# ---------------------------------------------------------------- hub ids from the local cache


class Apples(datasets.GeneratorBasedBuilder):
    """A dataset builder like a hub dataset's: two splits, written into the datasets cache by
    ``download_and_prepare`` under the hub id's cache directory, as a download from the Hub is."""

    def _info(self):
        return datasets.DatasetInfo(features=datasets.Features(
            {"question": datasets.Value("string"), "final": datasets.Value("string"), "level": datasets.Value("int64")}
        ))

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=split, gen_kwargs={"split": split}) for split in ("train", "test")]

    def _generate_examples(self, split):
        rows = _gsm8k_rows(12) if split == "train" else _gsm8k_rows(4, start=50)
        yield from enumerate(rows)


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to open a connection is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def test_a_cached_hub_dataset_loads_offline(tmp_path, no_network):
    # the cache a download of "testorg/apples" leaves: <cache>/testorg___apples/default/0.0.0/<commit>/
    builder = Apples(repo_id="testorg/apples", dataset_name="apples", hash="1a2b3c4d")
    builder.download_and_prepare()
    assert builder.cache_dir.startswith(str(tmp_path / "hf-cache" / "testorg___apples" / "default"))
    offline_before = (datasets.config.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE"))

    task = _task("testorg/apples", columns={"prompt": "question", "answer": "final"}, reference_format="gsm8k")
    assert isinstance(task, HubDatasetTask) and task.name == "apples"
    test_questions = {r["question"] for r in _gsm8k_rows(4, start=50)}
    assert len(task.eval_rows) == 3 and set(_prompts(task.eval_rows)) <= test_questions
    assert set(_prompts(task.train_rows)) == {r["question"] for r in _gsm8k_rows(12)}
    assert all(r["answer"] == str(int(r["solution"].split(" = ")[-1].rstrip("."))) for r in task.train_rows)
    assert no_network == []
    assert (datasets.config.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")) == offline_before

    with pytest.raises(DataError, match="Couldn't find cache for testorg/apples for config 'main'.*Set task.subset"):
        _task("testorg/apples", subset="main", columns={"prompt": "question", "answer": "final"})


def test_a_hub_dataset_not_in_the_cache_says_so_and_how_to_provide_it(no_network):
    with pytest.raises(DataError) as info:
        _task("testorg/absent", subset="main")
    message = str(info.value)
    assert "task 'testorg/absent' is not a file or directory here" in message
    assert "Hugging Face Hub dataset id" in message
    assert "(subset 'main') is not in the local datasets cache" in message
    assert "no network access" in message
    assert "datasets.load_dataset('testorg/absent', 'main').save_to_disk('absent')" in message
    assert "--task path/to/absent" in message
    assert no_network == []  # offline: nothing tried the network
