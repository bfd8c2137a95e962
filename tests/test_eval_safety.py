"""`heavy eval` never loses data and rejects bad input clearly.

Results files and pools are append-only: nothing a user (or a crash) left in them is deleted, a file holding
other data is refused, two writers are never allowed at once, and bad datasets get one line naming the file,
the line and the fix.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from heavy.cli import cli
from heavy.errors import ConfigError
from heavy.evaluation import Pool, ResultsFile, load_items

from helpers import free_port, running_sim

SIM = "sim:heavy-simulated@accuracy=1"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def two(tmp_path, monkeypatch):
    rows = [{"question": "What is 2+2?", "answer": "4"}, {"question": "What is 3+3?", "answer": "6"}]
    data = write_jsonl(tmp_path / "two.jsonl", rows)
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(data))
    return data


def heavy_eval(*args):
    return CliRunner().invoke(cli, ["eval", *map(str, args)])


def one_line_error(r, *needles):
    """Exit 1 with exactly one line on stderr holding every needle, and no traceback."""
    assert r.exit_code == 1, (r.exit_code, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in r.output
    return lines[0]


def rows_of(path):
    """Complete rows; a torn line (the start of a row cut by a crash) is the only unreadable line allowed."""
    rows = []
    for line in path.read_bytes().split(b"\n"):
        try:
            rows.append(json.loads(line))
        except ValueError:
            assert not line.strip() or line.startswith(b'{"id": '), line
    return rows


# --- 1. nothing the user wrote is ever deleted ------------------------------------------------------------

@pytest.mark.parametrize("content", [
    b"a\nkeep me",                                              # the probe's finding: plain text, no newline
    b"notes\n\nmore notes\n",
    b'{"question": "What is 2+2?", "answer": "4"}\n',             # a dataset passed as --results
    b'{"id": "x", "something": "else"}\n',                        # JSON rows of another program
    b"[1, 2, 3]\n",
    b"\xff\xfe binary \x00\x01",
])
def test_a_results_file_holding_other_data_is_refused_and_left_untouched(tmp_path, two, content):
    target = tmp_path / "n.txt"
    target.write_bytes(content)
    r = heavy_eval(two, "-m", SIM, "-n", "1", "--results", target)
    one_line_error(r, str(target), "not a heavy eval results row", "pick another --results path or remove the file")
    assert target.read_bytes() == content, "not one byte of the user's file may change"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.txt", "two.jsonl"], "no lock file left behind"


def test_a_torn_last_row_is_kept_and_the_run_appends_after_it(tmp_path, two):
    out = tmp_path / "r.jsonl"
    assert heavy_eval(two, "-m", SIM, "-n", "1", "--results", out, "--limit", "1").exit_code == 0
    # A crash mid-append leaves the start of a row without its end (here cut inside a UTF-8 character).
    torn = json.dumps({"id": "zz", "question": "café"}, ensure_ascii=False).encode()
    torn = torn[: torn.index("é".encode()) + 1]
    out.write_bytes(out.read_bytes() + torn)
    before = out.read_bytes()
    assert ResultsFile(out).done() and out.read_bytes() == before, "reading never changes the file"

    r = heavy_eval(two, "-m", SIM, "-n", "1", "--results", out)
    assert r.exit_code == 0, r.output
    after = out.read_bytes()
    assert after.startswith(before + b"\n"), "the torn line stays; the next row starts on a new line"
    rows = rows_of(out)
    assert sorted(row["question"] for row in rows) == ["What is 2+2?", "What is 3+3?"]
    assert "1 results already there, 1 to go" in r.stderr
    again = heavy_eval(two, "-m", SIM, "-n", "1", "--results", out)
    assert again.exit_code == 0 and out.read_bytes() == after, "a torn line mid-file is still just skipped"


def test_a_record_pool_holding_other_data_is_refused_and_a_replay_names_its_fix(tmp_path, two):
    foreign = tmp_path / "pool.jsonl"
    foreign.write_text('{"id": "a", "strategy": "vote", "n": 1}\n')  # a results file, not a pool
    before = foreign.read_bytes()
    r = heavy_eval(two, "-m", SIM, "-n", "2", "--results", tmp_path / "r.jsonl", "--record", foreign)
    one_line_error(r, f"{foreign}:1", "pool", "pick another --record path or remove the file")
    r = heavy_eval(two, "-m", SIM, "-n", "2", "--results", tmp_path / "r.jsonl", "--replay", foreign)
    one_line_error(r, f"{foreign}:1", "--replay takes a pool written by heavy eval --record")
    assert foreign.read_bytes() == before and not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("flag", ["--record", "--replay"])
def test_results_may_not_share_a_file_with_the_pool_or_the_dataset(tmp_path, two, flag):
    out = tmp_path / "same.jsonl"
    out.write_text("")
    r = heavy_eval(two, "-m", SIM, "-n", "2", "--results", out, flag, out)
    one_line_error(r, "--results and", "same file")
    r = heavy_eval(two, "-m", SIM, "-n", "2", "--results", two)
    one_line_error(r, "--results and DATASET name the same file")


# --- 2. one writer at a time ------------------------------------------------------------------------------

def test_two_opens_for_writing_conflict_and_readers_need_no_lock(tmp_path):
    p = tmp_path / "r.jsonl"
    writer = ResultsFile(p, lock=True)
    writer.append({"id": "a", "strategy": "vote", "n": 1, "correct": True})
    lock = tmp_path / "r.jsonl.lock"
    assert lock.read_text().strip() == str(os.getpid()), "the sidecar names the writer"
    with pytest.raises(ConfigError, match="already open for writing"):
        ResultsFile(p, lock=True)
    reader = ResultsFile(p)
    assert [r["id"] for r in reader.rows] == ["a"]
    with pytest.raises(ConfigError, match="already open for writing"):
        reader.append({"id": "b", "strategy": "vote", "n": 1})  # a reader that starts writing needs the lock
    writer.close()
    assert not lock.exists(), "a clean close removes the sidecar"
    with ResultsFile(p, lock=True) as again:
        again.append({"id": "b", "strategy": "vote", "n": 1, "correct": False})
    assert [r["id"] for r in rows_of(p)] == ["a", "b"]


def test_a_stale_lock_file_of_a_dead_writer_does_not_block(tmp_path, two):
    out = tmp_path / "r.jsonl"
    (tmp_path / "r.jsonl.lock").write_text("999999\n")  # a SIGKILLed run leaves its sidecar; flock died with it
    r = heavy_eval(two, "-m", SIM, "-n", "1", "--results", out)
    assert r.exit_code == 0, r.output
    assert len(rows_of(out)) == 2 and not (tmp_path / "r.jsonl.lock").exists()


def test_a_second_heavy_eval_on_the_same_files_is_refused_while_readers_go_on(tmp_path, gsm8k):
    data = write_jsonl(tmp_path / "data.jsonl", gsm8k[:24])  # ~8 s at 0.3 s a question: outlives the others
    out, pool = tmp_path / "results.jsonl", tmp_path / "pool.jsonl"
    with running_sim("--latency", "0.3", "--dataset", str(data)) as base:
        common = ["-m", "openai:heavy-simulated", "--base-url", f"{base}/v1", "-s", "vote", "-n", "2"]
        cmd = [sys.executable, "-m", "heavy.cli", "eval", str(data), *common, "--concurrency", "1"]
        first = subprocess.Popen([*cmd, "--results", str(out), "--record", str(pool)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (not pool.exists() or len(rows_of(pool)) < 2):
                time.sleep(0.05)
            assert first.poll() is None, f"the first run must still be going: {first.stderr.read()}"
            assert len(rows_of(pool)) >= 2

            def second(*args):
                return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)

            for args, flag in (
                (["--results", str(out)], "--results"),
                (["--results", str(tmp_path / "other.jsonl"), "--record", str(pool)], "--record"),
            ):
                r = second(*args)
                assert r.returncode == 1, r.stderr
                lines = r.stderr.strip().splitlines()
                assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
                assert f"is being written by another heavy eval (pid {first.pid}); wait for it or pick another " \
                       f"{flag}" in lines[0]
            # A replay of the pool being recorded needs no lock and changes nothing in it.
            recorded = pool.read_bytes()
            r = second("--results", str(tmp_path / "replayed.jsonl"), "--replay", str(pool))
            assert r.returncode == 0, r.stderr
            assert pool.read_bytes().startswith(recorded)
            assert len(rows_of(tmp_path / "replayed.jsonl")) >= 2
        finally:
            assert first.wait(timeout=60) == 0, first.stderr.read()
        rows = rows_of(out)
        assert sorted(r["id"] for r in rows) == sorted({r["id"] for r in rows}) and len(rows) == 24, \
            "every question exactly once: the refused runs wrote nothing"
        assert not (tmp_path / "other.jsonl").exists()
        assert not (tmp_path / "results.jsonl.lock").exists() and not (tmp_path / "pool.jsonl.lock").exists()
        r = subprocess.run([*cmd, "--results", str(out)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "24 results already there, 0 to go" in r.stderr, r.stderr


# --- 3. bad datasets ----------------------------------------------------------------------------------------

GOOD = b'{"question": "What is 2+2?", "answer": "4"}\n'


@pytest.mark.parametrize("content,line,needle", [
    (GOOD + b'{"question": null, "answer": "4"}\n', 2, "'question' must be a non-empty string, got null"),
    (b'{"question": "q", "answer": "4", "choices": 123}\n', 1, "'choices' must be a list"),
    (b'{"question": "q", "answer": "A", "choices": ' + json.dumps(list("abcdefghijk")).encode() + b"}\n", 1,
     "at most 10 options"),
    (GOOD + GOOD + b'{"question": "caf\xe9", "answer": "4"}\n', 3,
     "not UTF-8 text (byte 0xe9): save the dataset as UTF-8"),
    (GOOD + b"\n" + b"question: what?\n", 3, "not JSON"),
    (b'["What is 2+2?", "4"]\n', 1, "got a JSON list: each line must be a JSON object"),
    (b'{"question": "q", "answer": null}\n', 1, "'answer' is empty"),
    (b'{"question": "q", "answer": ["4", "four"]}\n', 1, "'answer' must be a string or a number"),
    (b'{"question": "q"}\n', 1, "no 'answer'"),
    (b'{"question": "q", "answer": "4", "id": {"a": 1}}\n', 1, "'id' must be a string or an integer"),
    (b'{"question": "q", "tests": 5}\n', 1, "'tests' must be a string"),
])
def test_a_bad_dataset_line_is_one_line_naming_file_line_and_fix(tmp_path, content, line, needle):
    data = tmp_path / "data.jsonl"
    data.write_bytes(content)
    r = heavy_eval(data, "-m", SIM, "-n", "1", "--results", tmp_path / "r.jsonl")
    one_line_error(r, f"{data}:{line}:", needle)
    assert not (tmp_path / "r.jsonl").exists()


def test_a_utf8_bom_and_a_line_separator_inside_a_string_are_accepted(tmp_path, monkeypatch):
    data = tmp_path / "bom.jsonl"
    rows = [{"question": "What is 2+2?", "answer": "4"}, {"question": "Add 3\u2028and 3.", "answer": "6"}]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    data.write_bytes(b"\xef\xbb\xbf" + text.encode())
    write_jsonl(tmp_path / "sim.jsonl", rows)  # the simulator's own answer key: no BOM, U+2028 escaped
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(tmp_path / "sim.jsonl"))
    assert [i.question for i in load_items(data)] == ["What is 2+2?", "Add 3\u2028and 3."]
    r = heavy_eval(data, "-m", SIM, "-n", "1", "--results", tmp_path / "r.jsonl")
    assert r.exit_code == 0, r.output
    rows = rows_of(tmp_path / "r.jsonl")
    assert [row["question"] for row in rows] == ["What is 2+2?", "Add 3\u2028and 3."]
    assert all(row["correct"] for row in rows), "questions reach the model without the BOM"


@pytest.mark.parametrize("args,needle", [
    (["--limit", "-1"], "--limit must be 0 or more (got -1)"),
    (["--offset", "-2"], "--offset must be 0 or more (got -2)"),
    (["--offset", "5"], "no questions after --offset 5"),
])
def test_bad_limit_and_offset(tmp_path, two, args, needle):
    r = heavy_eval(two, "-m", SIM, "-n", "1", "--results", tmp_path / "r.jsonl", *args)
    one_line_error(r, needle)
    assert not (tmp_path / "r.jsonl").exists()


def test_load_items_rejects_negative_limit_and_offset(two):
    with pytest.raises(ConfigError, match="--limit must be 0 or more"):
        load_items(two, limit=-1)
    with pytest.raises(ConfigError, match="--offset must be 0 or more"):
        load_items(two, offset=-1)
    assert len(load_items(two, limit=0)) == 0 and len(load_items(two, offset=1)) == 1


def test_a_results_path_that_cannot_be_created_is_one_line(tmp_path, two):
    r = heavy_eval(two, "-m", SIM, "-n", "1", "--results", tmp_path / "two.jsonl" / "r.jsonl")
    one_line_error(r, "pick another --results path")


# --- 4. a run where every question failed is a failure --------------------------------------------------------

def test_exit_1_when_every_question_errored_with_the_results_written(tmp_path, two):
    out = tmp_path / "r.jsonl"
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    r = heavy_eval(two, "-m", "openai:heavy-simulated", "--base-url", unreachable, "-n", "2", "--results", out)
    line = one_line_error(r, "all 2 results are errors", str(out), "--retry-errors")
    assert "connect" in line.lower(), line
    rows = rows_of(out)
    assert len(rows) == 2 and all(row["error"] and row["correct"] is False for row in rows)
    assert "accuracy heavy N=2: 0.000 (0/2)" in r.stdout, "the summary is still printed"
    # A re-run with nothing left to do still reports the failure.
    again = heavy_eval(two, "-m", SIM, "-n", "2", "--results", out)
    assert again.exit_code == 1 and "0 to go" in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("heavy: error: all 2 results are errors")
    # --retry-errors against a working model redoes them and succeeds.
    fixed = heavy_eval(two, "-m", SIM, "-n", "2", "--results", out, "--retry-errors")
    assert fixed.exit_code == 0 and "errors" not in fixed.stderr, fixed.output


def test_some_errors_warn_but_exit_0(tmp_path, two):
    out = write_jsonl(tmp_path / "r.jsonl", [
        {"id": i.id, "question": i.question, "gold": i.gold, "answer": None, "correct": False, "strategy": "vote",
         "n": 1, "error": "ProviderTimeout: took too long" if k == 0 else None}
        for k, i in enumerate(load_items(two))
    ])
    r = heavy_eval(two, "-m", SIM, "-s", "vote", "-n", "1", "--results", out)
    assert r.exit_code == 0, r.output
    assert "1 of 2 results are errors (e.g. ProviderTimeout: took too long)" in r.stderr


def test_pool_rows_are_validated_when_read(tmp_path):
    p = write_jsonl(tmp_path / "pool.jsonl", [{"id": "a", "hypotheses": [{"index": "zero"}]}])
    with pytest.raises(ConfigError, match="record the pool again"):
        Pool(p).hypotheses("a")
