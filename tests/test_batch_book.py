"""The batch book (``OUT.jsonl.batches``) read as data that may be damaged: a damaged line is reported with
file:line and never makes heavy pay for a request twice (its job is found by its tag, its samples fetched
again); only a torn last line, an interrupted append, counts as never written; valid JSON of the wrong shape
is a clear error naming file:line."""

import json

import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.cli import cli
from heavy.errors import ConfigError
from heavy.evaluation import BatchBook

from test_batch_eval import FAST, LostAnswer, heavy_for, run_batch, sim_with
from test_eval import read_rows, write_dataset

MODELS = {"openai": "openai:gpt-4.1-mini", "anthropic": "anthropic:claude-haiku-4-5"}


def damage(path, lineno, keep=0.5):
    """Cut line *lineno* of *path* to its first *keep* share (the line stays, its newline too)."""
    lines = path.read_bytes().split(b"\n")
    lines[lineno - 1] = lines[lineno - 1][: int(len(lines[lineno - 1]) * keep)]
    path.write_bytes(b"\n".join(lines))


def kinds(out):
    return [r["kind"] for r in read_rows(BatchBook.beside(out).path)]


@pytest.mark.anyio
@pytest.mark.parametrize("wire", ["openai", "anthropic"])
@pytest.mark.parametrize("keep", [0.5, 0.0])
async def test_a_damaged_submit_line_in_the_middle_does_not_pay_for_its_job_again(tmp_path, gsm8k, wire, keep):
    app, items = sim_with(tmp_path, gsm8k[:5], batch_seconds=0.3, seed=2)
    out = tmp_path / "out.jsonl"
    first = await run_batch(heavy_for(app, MODELS[wire], seed=1), items, out, batch_wait=0)
    assert first.still_running and kinds(out) == ["submit", "job"]
    damage(BatchBook.beside(out).path, 1, keep)  # its requests half gone (or all of it); its id is on line 2
    said = []
    await run_batch(heavy_for(app, MODELS[wire], seed=1), items, out, on_progress=said.append)
    stats = app.batches.summary()
    assert stats["jobs"] == 1 and stats["submitted"] == 15 and stats["submitted_twice"] == 0
    assert len(read_rows(out)) == 5 and not any(r["error"] for r in read_rows(out))
    named = "out.jsonl.batches:1: " if keep else "has no submit row"  # damaged, or emptied
    assert any(named in line for line in said), said


@pytest.mark.anyio
async def test_a_damaged_submit_line_whose_job_id_was_never_written_is_found_by_its_tag(tmp_path, gsm8k):
    app, items = sim_with(tmp_path, gsm8k[:4], batch_seconds=0.1, seed=2)
    out = tmp_path / "out.jsonl"
    with pytest.raises(LostAnswer.Crash):  # the job is created; the process dies before writing its id down
        await run_batch(Heavy(model=MODELS["openai"], base_url="http://sim.test/v1",
                              transport=LostAnswer(app, crash=True), retry=FAST, seed=1), items, out)
    book = BatchBook.beside(out).path
    damage(book, 1, keep=0.3)
    with book.open("a") as f:  # a line after it: the damaged one is no torn last line
        f.write(json.dumps({"id": "elsewhere", "kind": "samples", "batch_id": "", "hypotheses": []}) + "\n")
    said = []
    await run_batch(heavy_for(app, MODELS["openai"], seed=1), items, out, on_progress=said.append)
    assert app.batches.summary()["jobs"] == 1 and app.batches.summary()["submitted_twice"] == 0
    assert len(read_rows(out)) == 4
    assert any("out.jsonl.batches:1" in line for line in said), said


@pytest.mark.anyio
async def test_a_damaged_line_that_may_hide_an_untagged_job_is_refused_before_anything_is_submitted(tmp_path,
                                                                                                   gsm8k):
    app, items = sim_with(tmp_path, gsm8k[:4], batch_seconds=0.1, seed=2)
    out = tmp_path / "out.jsonl"
    with pytest.raises(LostAnswer.Crash):
        await run_batch(Heavy(model=MODELS["anthropic"], base_url="http://sim.test",
                              transport=LostAnswer(app, crash=True), retry=FAST, seed=1), items, out)
    book = BatchBook.beside(out).path
    damage(book, 1, keep=0.3)
    with book.open("a") as f:
        f.write(json.dumps({"id": "elsewhere", "kind": "samples", "batch_id": "", "hypotheses": []}) + "\n")
    with pytest.raises(ConfigError, match=r"out\.jsonl\.batches:1: "):
        await run_batch(heavy_for(app, MODELS["anthropic"], seed=1), items, out)
    assert app.batches.summary()["jobs"] == 1, "nothing submitted"


@pytest.mark.anyio
async def test_a_damaged_samples_line_is_fetched_again_from_its_job_not_bought_again(tmp_path, gsm8k):
    app, items = sim_with(tmp_path, gsm8k[:5], batch_seconds=0.05, seed=2)
    out = tmp_path / "out.jsonl"
    await run_batch(heavy_for(app, seed=1), items, out)
    assert kinds(out)[:3] == ["submit", "job", "samples"]
    out.unlink()  # every question to decide again, from the book
    damage(BatchBook.beside(out).path, 3)
    said = []
    await run_batch(heavy_for(app, seed=1), items, out, on_progress=said.append)
    stats = app.batches.summary()
    assert stats["jobs"] == 1 and stats["submitted"] == 15 and stats["submitted_twice"] == 0
    rows = read_rows(out)
    assert len(rows) == 5 and all(None not in r["hypothesis_answers"] for r in rows)
    assert any("out.jsonl.batches:3" in line for line in said), said


@pytest.mark.anyio
async def test_a_torn_last_line_counts_as_never_written_and_stays_so_after_later_appends(tmp_path, gsm8k):
    app, items = sim_with(tmp_path, gsm8k[:3], batch_seconds=0.2, seed=2)
    out = tmp_path / "out.jsonl"
    await run_batch(heavy_for(app, seed=1), items, out, batch_wait=0)
    book = BatchBook.beside(out).path
    torn = json.dumps({"id": "heavy-0123456789abcdef0123", "kind": "submit", "model": "x"})
    book.write_bytes(book.read_bytes() + torn[:30].encode())  # a crash in the middle of an append
    await run_batch(heavy_for(app, seed=1), items, out)
    assert len(read_rows(out)) == 3 and app.batches.summary()["jobs"] == 1
    # The torn line is in the middle now; it was judged when it was last, and stays judged.
    out.unlink()
    await run_batch(heavy_for(app, seed=1), items, out)
    assert len(read_rows(out)) == 3 and app.batches.summary()["jobs"] == 1


SUBMIT = {"id": "heavy-aaaaaaaaaaaaaaaaaaaa", "kind": "submit", "model": "openai:gpt-4.1-mini",
          "endpoint": "http://127.0.0.1:9/v1", "requests": {"qa-0": ["a", 0]}, "ts": 1.0}


@pytest.mark.parametrize("row, needle", [
    ({**SUBMIT, "requests": {"qa-0": ["a"]}}, "requests"),
    ({**SUBMIT, "requests": ["qa-0"]}, "requests"),
    ({**SUBMIT, "requests": {"qa-0": ["a", "zero"]}}, "requests"),
    ({**SUBMIT, "ts": "yesterday"}, "ts"),
    ({**SUBMIT, "model": None}, "model"),
    ({"id": SUBMIT["id"], "kind": "job", "batch_id": 7}, "batch_id"),
    ({"id": "a", "kind": "samples", "batch_id": "b", "hypotheses": {"index": 0}}, "hypotheses"),
    ({"id": "a", "kind": "samples", "batch_id": "b", "hypotheses": [{"index": "first"}]}, "hypothesis 0"),
    ({"id": "a", "kind": "samples", "batch_id": "b", "hypotheses": [{"model": "m"}]}, "hypothesis 0"),
    ({"id": 5, "kind": "samples", "batch_id": "b", "hypotheses": []}, "id"),
    ({"id": SUBMIT["id"], "kind": "ended", "batch_id": ["b"]}, "batch_id"),
])
def test_a_book_row_of_the_wrong_shape_is_one_line_naming_file_line(tmp_path, gsm8k, row, needle):
    data = write_dataset(tmp_path / "data.jsonl", gsm8k[:2])
    book = tmp_path / "o.jsonl.batches"
    book.write_text(json.dumps(SUBMIT) + "\n" + json.dumps(row) + "\n")
    r = CliRunner().invoke(cli, ["eval", str(data), "--batch", "--results", str(tmp_path / "o.jsonl"), "-m",
                                 "openai:gpt-4.1-mini", "--base-url", "http://127.0.0.1:9/v1"])
    assert r.exit_code == 1 and "o.jsonl.batches:2" in r.stderr and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "unexpected" not in r.stderr and "validation error" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("line", [b'{"id": "hea', b'{"id": "\xff\xfe", "kind": "submit"'])
def test_a_damaged_line_naming_nothing_is_refused_with_its_line(tmp_path, gsm8k, line):
    data = write_dataset(tmp_path / "data.jsonl", gsm8k[:2])
    book = tmp_path / "o.jsonl.batches"
    book.write_bytes(line + b"\n" + json.dumps(SUBMIT).encode() + b"\n")
    r = CliRunner().invoke(cli, ["eval", str(data), "--batch", "--results", str(tmp_path / "o.jsonl"), "-m",
                                 "openai:gpt-4.1-mini", "--base-url", "http://127.0.0.1:9/v1"])
    assert r.exit_code == 1 and "o.jsonl.batches:1" in r.stderr and "Traceback" not in r.stderr, r.stderr
