"""Tasks: reasoning-gym by name and data files, with disjoint, deterministic splits."""

import csv
import json
import re

import pytest

from grpozoo.config import TaskConfig
from grpozoo.errors import ConfigError, DataError
from grpozoo.tasks import FileTask, ReasoningGymTask, make_task

CHAIN_SUM = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path, monkeypatch):
    # keep `datasets` from writing its cache of our throwaway files into the user's home
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def _chain_sum(seed=0, **kwargs):
    return make_task(TaskConfig(name="chain_sum", params=CHAIN_SUM, train_size=30, eval_size=10, seed=seed, **kwargs))


def _prompts(rows):
    return [r["prompt"] for r in rows]


# ---------------------------------------------------------------- reasoning-gym


def test_chain_sum_splits_are_disjoint_and_sized():
    task = _chain_sum()
    assert isinstance(task, ReasoningGymTask)
    assert task.name == "chain_sum"
    assert len(task.eval_rows) == 10
    assert 0 < len(task.train_rows) <= 30
    assert not set(_prompts(task.train_rows)) & set(_prompts(task.eval_rows))
    for row in task.train_rows + task.eval_rows:
        assert isinstance(row["answer"], str) and row["prompt"]


def test_chain_sum_is_deterministic_for_a_seed():
    a, b, c = _chain_sum(seed=5), _chain_sum(seed=5), _chain_sum(seed=6)
    assert _prompts(a.train_rows) == _prompts(b.train_rows)
    assert _prompts(a.eval_rows) == _prompts(b.eval_rows)
    assert _prompts(a.train_rows) != _prompts(c.train_rows)


def test_chain_sum_answers_are_the_sums():
    # recompute each sum from the question text ("... problem: 6 + 12 =")
    task = _chain_sum()
    for row in task.train_rows + task.eval_rows:
        expression = re.search(r"(\d+(?:\s*[-+]\s*\d+)+)\s*=\s*$", row["prompt"]).group(1)
        tokens = re.findall(r"[-+]|\d+", expression)
        total = int(tokens[0])
        for sign, number in zip(tokens[1::2], tokens[2::2], strict=True):
            total += int(number) if sign == "+" else -int(number)
        assert row["answer"] == str(total)


def test_chain_sum_score_right_and_wrong():
    task = _chain_sum()
    row = task.eval_rows[0]
    right = int(row["answer"])
    assert task.score(f"Let me add. The answer is {right}", row) == 1.0
    assert task.score(f"The answer is {right + 1}", row) == 0.0
    assert task.score("I do not know", row) == 0.0
    # last_number takes the last number: a trailing wrong number makes it wrong
    assert task.score(f"{right}, or maybe {right + 2}", row) == 0.0


def test_unknown_task_name_suggests():
    with pytest.raises(ValueError) as info:
        make_task(TaskConfig(name="chain_summ"))
    message = str(info.value)
    assert "unknown task 'chain_summ'" in message
    assert "Did you mean 'chain_sum'?" in message


def test_bad_reasoning_gym_params_name_the_task():
    with pytest.raises(ValueError, match="task.params for reasoning-gym task 'chain_sum'"):
        make_task(TaskConfig(name="chain_sum", params={"no_such_param": 1}, train_size=2, eval_size=1))


# ---------------------------------------------------------------- files


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _file_task(path, **kwargs):
    defaults = {"train_size": 100, "eval_size": 3, "seed": 0}
    return make_task(TaskConfig(name=str(path), **{**defaults, **kwargs}))


def test_jsonl_task_loads_and_splits_without_overlap(tmp_path):
    rows = [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i), "level": i % 3} for i in range(12)]
    task = _file_task(_write_jsonl(tmp_path / "sums.jsonl", rows))
    assert isinstance(task, FileTask)
    assert task.name == "sums"
    assert len(task.eval_rows) == 3 and len(task.train_rows) == 9
    assert not set(_prompts(task.train_rows)) & set(_prompts(task.eval_rows))
    # every row survives, with its extra columns
    assert sorted(_prompts(task.train_rows + task.eval_rows)) == sorted(r["prompt"] for r in rows)
    assert all("level" in r for r in task.train_rows)


def test_file_split_is_seeded(tmp_path):
    path = _write_jsonl(tmp_path / "q.jsonl", [{"prompt": f"q{i}", "answer": str(i)} for i in range(20)])
    assert _prompts(_file_task(path, seed=1).eval_rows) == _prompts(_file_task(path, seed=1).eval_rows)
    assert _prompts(_file_task(path, seed=1).eval_rows) != _prompts(_file_task(path, seed=2).eval_rows)


def test_file_duplicates_of_held_out_prompts_are_dropped_from_train(tmp_path):
    rows = [{"prompt": "same", "answer": "1"}] * 6 + [{"prompt": f"q{i}", "answer": str(i)} for i in range(6)]
    task = _file_task(_write_jsonl(tmp_path / "dup.jsonl", rows), eval_size=4)
    held_out = set(_prompts(task.eval_rows))
    assert not held_out & set(_prompts(task.train_rows))


def test_file_train_size_caps_train_rows(tmp_path):
    path = _write_jsonl(tmp_path / "q.jsonl", [{"prompt": f"q{i}", "answer": str(i)} for i in range(20)])
    task = _file_task(path, train_size=5)
    assert len(task.train_rows) == 5 and len(task.eval_rows) == 3


def test_csv_task(tmp_path):
    path = tmp_path / "table.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "answer"])
        writer.writerows([[f"half of {2 * i}", str(i)] for i in range(1, 9)])
    task = _file_task(path)
    assert len(task.eval_rows) == 3 and len(task.train_rows) == 5
    assert not set(_prompts(task.train_rows)) & set(_prompts(task.eval_rows))
    row = task.train_rows[0]
    assert task.score(f"it is {row['answer']}", row) == 1.0
    assert task.score(f"it is {int(row['answer']) + 1}", row) == 0.0


def test_messages_column_task(tmp_path):
    rows = [
        {"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": f"q{i}"}], "answer": str(i)}
        for i in range(8)
    ]
    task = _file_task(_write_jsonl(tmp_path / "chat.jsonl", rows))
    assert len(task.eval_rows) == 3 and len(task.train_rows) == 5
    train_questions = {r["messages"][1]["content"] for r in task.train_rows}
    eval_questions = {r["messages"][1]["content"] for r in task.eval_rows}
    assert not train_questions & eval_questions
    # the file's own system message is kept, not doubled by the configured system prompt
    messages = task.messages(task.train_rows[0])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == "Be terse."


def test_file_task_scores_with_math_verify(tmp_path):
    rows = [{"prompt": f"q{i}", "answer": "0.5"} for i in range(5)]
    task = _file_task(_write_jsonl(tmp_path / "half.jsonl", rows), answer_format="boxed")
    row = task.train_rows[0]
    assert task.score("so \\boxed{\\frac{1}{2}}", row) == 1.0
    assert task.score("so \\boxed{2}", row) == 0.0
    assert task.score("no box", row) == 0.0


def test_row_missing_answer_names_row_index(tmp_path):
    rows = [{"prompt": f"q{i}", "answer": str(i)} for i in range(6)]
    rows[4] = {"prompt": "q4"}
    with pytest.raises(ValueError, match="row 4 has no 'answer' value"):
        _file_task(_write_jsonl(tmp_path / "noanswer.jsonl", rows))


def test_row_with_blank_answer_names_row_index(tmp_path):
    rows = [{"prompt": f"q{i}", "answer": str(i)} for i in range(6)]
    rows[2]["answer"] = "  "
    with pytest.raises(ValueError, match="row 2 has no 'answer' value"):
        _file_task(_write_jsonl(tmp_path / "blank.jsonl", rows))


def test_row_missing_prompt_names_row_index(tmp_path):
    rows = [{"prompt": f"q{i}", "answer": str(i)} for i in range(6)]
    rows[5] = {"answer": "5"}
    with pytest.raises(ValueError, match=r"row 5 has no 'prompt' \(text\) or 'messages' \(chat\)"):
        _file_task(_write_jsonl(tmp_path / "noprompt.jsonl", rows))


def test_file_with_too_few_rows(tmp_path):
    path = _write_jsonl(tmp_path / "tiny.jsonl", [{"prompt": f"q{i}", "answer": str(i)} for i in range(3)])
    with pytest.raises(ValueError, match=r"has 3 rows, not more than task.eval_size=3"):
        _file_task(path)


GOOD_LINE = '{"prompt": "1 + 1 =", "answer": "2"}'


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("broken.jsonl", "\n".join([GOOD_LINE, GOOD_LINE, '{"prompt": "2 + 2 =", answer: 4}', GOOD_LINE]),
         "line 3 is not valid JSON (Expecting property name enclosed in double quotes at column 23); "
         "expected one JSON object per line"),
        ("arrays.jsonl", "\n".join([GOOD_LINE, '["2 + 2 =", "4"]']),
         "line 2 holds '[\"2 + 2 =\", \"4\"]', not a JSON object"),
        ("broken.json", f'[{GOOD_LINE},\n{{"prompt": "2 + 2 =" "answer": "4"}}]',
         "line 2, column 22: Expecting ',' delimiter; expected a JSON list of objects"),
        ("broken.csv", 'prompt,answer\n1 + 1 =,2\n"2 + 2 =,4\n', "EOF inside string starting at row 2; "
         "expected a header line naming the columns"),
        ("broken.parquet", "not a parquet file", "Parquet magic bytes not found in footer"),
        ("empty.jsonl", "\n\n", "is empty: expected one JSON object per line"),
    ],
)
def test_an_unreadable_data_file_names_the_file_the_line_and_what_was_expected(tmp_path, name, text,
                                                                               expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as info:
        _file_task(path)
    assert str(info.value).startswith(f"task file {str(path)!r} ")
    assert expected in str(info.value)


def test_reasoning_gym_rejecting_its_params_is_a_config_error():
    params = {"min_terms": 3, "max_terms": 2}
    with pytest.raises(ConfigError, match="reasoning-gym task 'chain_sum': max_terms must be >= min_terms"):
        make_task(TaskConfig(name="chain_sum", params=params, train_size=2, eval_size=1))


def test_missing_file_and_bad_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_task(TaskConfig(name=str(tmp_path / "missing.jsonl")))
    other = tmp_path / "rows.txt"
    other.write_text("x\n")
    with pytest.raises(ValueError, match="unsupported suffix"):
        make_task(TaskConfig(name=str(other)))


# ---------------------------------------------------------------- messages


def test_messages_system_prompt_first_and_instruction_appended():
    task = _chain_sum(system_prompt="Be exact.", instruction="Put the answer in \\boxed{}.")
    row = {"prompt": "What is 2 + 2?", "answer": "4"}
    assert task.messages(row) == [
        {"role": "system", "content": "Be exact."},
        {"role": "user", "content": "What is 2 + 2? Put the answer in \\boxed{}."},
    ]


def test_messages_without_system_prompt_or_instruction():
    task = _chain_sum(system_prompt=None, instruction="")
    assert task.messages({"prompt": "Q", "answer": "1"}) == [{"role": "user", "content": "Q"}]


def test_messages_column_gets_system_prompt_prepended_and_is_not_mutated():
    task = _chain_sum(system_prompt="Be exact.")
    row = {"messages": [{"role": "user", "content": "Q"}], "answer": "1"}
    messages = task.messages(row)
    assert messages == [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "Q"}]
    messages[1]["content"] = "changed"
    assert row["messages"] == [{"role": "user", "content": "Q"}]


def test_instruction_is_appended_to_the_last_user_message_of_a_chat_row():
    task = _chain_sum(system_prompt=None, instruction="Answer in \\boxed{}.")
    row = {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                        {"role": "user", "content": "Q2"}], "answer": "1"}
    messages = task.messages(row)
    assert [m["content"] for m in messages] == ["Q1", "A1", "Q2 Answer in \\boxed{}."]
    assert row["messages"][2]["content"] == "Q2"
