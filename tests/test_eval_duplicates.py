"""Datasets read as data from outside: a question held twice with different gold answers is warned about
(once per question, naming its lines) and counted in the summary; the same question with the same gold is
merged as before, and counted too."""

import json

from click.testing import CliRunner

from heavy.cli import cli
from heavy.evaluation.items import load_items, read_dataset

from test_eval import write_dataset

ROWS = [
    {"question": "What is 2+2?", "answer": "4"},                 # 1
    {"question": "What is 3+3?", "answer": "6"},                 # 2
    {"question": "What is 2+2?", "answer": "#### 4"},            # 3: the same gold: merged
    {"question": "What is 2+2?", "answer": "5"},                 # 4: another gold: conflict
    {"question": "What is 2+2?", "answer": "22"},                # 5: and another (still one warning)
    {"id": "x", "question": "What is 7+1?", "answer": "8"},      # 6
    {"id": "x", "question": "What is 9+1?", "answer": "10"},     # 7: the same id, another question
    {"id": "a", "question": "What is 5+5?", "answer": "10"},     # 8
    {"id": "b", "question": "What is 5+5?", "answer": "11"},     # 9: another id, the same question, another gold
]


def test_read_dataset_counts_merged_rows_and_names_conflicting_ones(tmp_path):
    data = read_dataset(write_dataset(tmp_path / "d.jsonl", ROWS))
    assert [i.gold for i in data.items] == ["4", "6", "8", "10", "11"], "the first row of an id is kept"
    assert data.merged == 1
    by_lines = {c.lines: c for c in data.conflicts}
    assert set(by_lines) == {(1, 4, 5), (6, 7), (8, 9)}
    assert by_lines[(1, 4, 5)].golds == ("4", "5", "22") and not by_lines[(1, 4, 5)].kept_all
    assert by_lines[(8, 9)].kept_all, "two ids: both are scored, each against its own gold"
    assert all(str(tmp_path / "d.jsonl") in c.warning for c in data.conflicts)
    assert "lines 1, 4, 5" in by_lines[(1, 4, 5)].warning and '"5" at line 4' in by_lines[(1, 4, 5)].warning
    assert load_items(tmp_path / "d.jsonl") == data.items


def test_counts_follow_offset_and_limit(tmp_path):
    data = read_dataset(write_dataset(tmp_path / "d.jsonl", ROWS), offset=1, limit=2)
    assert [i.id for i in data.items][1] == "x"
    assert data.merged == 0 and [c.lines for c in data.conflicts] == [(6, 7)]


def test_eval_warns_once_per_question_and_counts_in_the_summary(tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", ROWS)
    common = ["eval", str(data), "-m", "sim:heavy-simulated", "-n", "1", "-s", "vote"]
    r = CliRunner().invoke(cli, [*common, "--results", str(tmp_path / "a.jsonl")])
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if "gold" in line or "id 'x'" in line]
    assert len(warnings) == 3, r.stderr
    assert sum("lines 1, 4, 5" in w for w in warnings) == 1
    assert "3 question(s) with conflicting duplicates" in r.stdout and "1 duplicate row(s) merged" in r.stdout
    j = CliRunner().invoke(cli, [*common, "--results", str(tmp_path / "b.jsonl"), "--json"])
    assert j.exit_code == 0, j.output
    (row,) = json.loads(j.stdout)
    assert row["duplicates_merged"] == 1 and row["duplicates_conflicting"] == 3


def test_a_clean_dataset_says_nothing_of_duplicates(tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", ROWS[:2])
    r = CliRunner().invoke(cli, ["eval", str(data), "-m", "sim:heavy-simulated", "-n", "1", "--results",
                                 str(tmp_path / "a.jsonl"), "--json"])
    assert r.exit_code == 0 and "duplicate" not in r.stderr
    assert json.loads(r.stdout)[0]["duplicates_conflicting"] == 0
