"""`heavy eval`: scoring, resume after a kill, record/replay pools, summary, plot."""

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.cli import cli
from heavy.evaluation import EvalRunner, Pool, ResultsFile, is_correct, load_items, summarize, wilson
from heavy.sim import SimConfig, SimulatedLLM

from helpers import running_sim


def write_dataset(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def small_dataset(tmp_path, gsm8k):
    return write_dataset(tmp_path / "data.jsonl", gsm8k[:12])


def read_rows(path):
    """Every row; a run killed mid-write may leave a torn line (heavy keeps it and appends after it)."""
    rows = []
    for line in path.read_bytes().split(b"\n"):
        try:
            rows.append(json.loads(line))
        except ValueError:
            assert not line.strip() or line.startswith(b'{"id": '), f"only torn rows may be unreadable: {line!r}"
    return rows


def test_is_correct_and_wilson():
    assert is_correct("1,234.0", "1234") and is_correct("$18", "18") and is_correct("B", "(b)")
    assert not is_correct(None, "3") and not is_correct("4", "3")
    lo, hi = wilson(19, 30)
    assert 0.44 < lo < 0.46 and 0.78 < hi < 0.81
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_load_items_forms(tmp_path):
    p = write_dataset(tmp_path / "d.jsonl", [
        {"question": "2+2?", "answer": "Because... #### 4"},
        {"id": "mc1", "question": "Capital of France?", "choices": ["Rome", "Paris"], "answer": "B"},
        {"question": "2+2?", "answer": "4"},  # duplicate question: kept once
    ])
    items = load_items(p)
    assert [i.gold for i in items] == ["4", "B"]
    assert items[1].id == "mc1" and "B) Paris" in items[1].prompt and "letter" in items[1].prompt
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    r = CliRunner().invoke(cli, ["eval", str(bad), "--results", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 1 and "bad.jsonl:1" in r.stderr and "Traceback" not in r.stderr


def test_torn_last_line_is_kept_and_appends_stay_valid(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"id": "a", "strategy": "vote", "n": 1, "correct": true}\n{"id": "b", "strat')
    before = p.read_bytes()
    f = ResultsFile(p)
    assert f.done() == {("a", "vote", 1)}
    assert ResultsFile(p).rows and p.read_bytes() == before, "reading alone never changes the file"
    f.append({"id": "b", "strategy": "vote", "n": 1, "correct": False})
    f.close()
    after = p.read_bytes()
    assert after.startswith(before + b"\n"), "the torn line is kept; the new row starts on a line of its own"
    assert [r["id"] for r in read_rows(p)] == ["a", "b"]
    assert [r["id"] for r in ResultsFile(p).rows] == ["a", "b"], "the torn line is ignored on reading"


def test_contract_eval_appends_resumes_and_prints_accuracy(tmp_path, small_dataset, monkeypatch):
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(small_dataset))
    out = tmp_path / "results.jsonl"
    args = ["eval", str(small_dataset), "-m", "sim:heavy-simulated@accuracy=0.6", "-s", "vote", "-n", "5",
            "--results", str(out), "--concurrency", "3", "--seed", "1"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    rows = read_rows(out)
    assert len(rows) == 12
    for row in rows:
        assert {"question", "gold", "answer", "correct"} <= set(row) and isinstance(row["correct"], bool)
        assert row["correct"] == (row["answer"] == row["gold"])
    right = sum(r["correct"] for r in rows)
    assert f"accuracy vote N=5: {right / 12:.3f} ({right}/12)" in r.stdout
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and len(read_rows(out)) == 12, "a second run must not repeat questions"
    assert "12 results already there, 0 to go" in again.stderr


def test_eval_resumes_after_a_kill_with_nothing_lost_or_repeated(tmp_path, gsm8k):
    data = write_dataset(tmp_path / "data.jsonl", gsm8k[:20])
    out = tmp_path / "results.jsonl"
    with running_sim("--latency", "0.3", "--dataset", str(data)) as base:
        cmd = [sys.executable, "-m", "heavy.cli", "eval", str(data), "-m", "openai:heavy-simulated", "--base-url",
               f"{base}/v1", "-s", "vote", "-n", "3", "--results", str(out), "--concurrency", "2"]
        victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not out.exists() or len(read_rows(out)) < 4):
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        partial = len(read_rows(out))
        assert 4 <= partial < 20, f"the kill should land mid-run (had {partial} rows)"
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        rows = read_rows(out)
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)) == 20, "every question exactly once"
        assert {r["question"] for r in rows} == {row["question"] for row in gsm8k[:20]}
        assert f"{partial} results already there" in done.stderr


@pytest.mark.anyio
async def test_replay_decides_on_the_recorded_pool_without_sampling(tmp_path, gsm8k):
    rows = gsm8k[:8]
    app = SimulatedLLM(SimConfig(accuracy=0.5, seed=3, dataset={r["question"]: r["answer"] for r in rows}))
    items = load_items(write_dataset(tmp_path / "d.jsonl", rows))

    def heavy():
        return Heavy(model="openai:heavy-simulated", base_url="http://sim.test/v1",
                     transport=httpx.ASGITransport(app=app), n=4, seed=5)

    pool = Pool(tmp_path / "pool.jsonl")
    rec = EvalRunner(heavy=heavy(), strategies=["vote"], ns=[4], results=ResultsFile(tmp_path / "r1.jsonl"),
                     record=pool)
    await rec.evaluate(items)
    assert len(read_rows(tmp_path / "pool.jsonl")) == 8
    assert all(len(r["hypotheses"]) == 4 and r["question"] for r in read_rows(tmp_path / "pool.jsonl"))
    sampled = app.stats.chat_requests
    assert sampled == 32

    replay = EvalRunner(heavy=heavy(), strategies=["vote", "judge"], ns=[1, 2, 4],
                        results=ResultsFile(tmp_path / "r2.jsonl"), replay=Pool(tmp_path / "pool.jsonl"))
    await replay.evaluate(items)
    results = read_rows(tmp_path / "r2.jsonl")
    assert len(results) == 8 * 2 * 3
    judge_calls = sum(r["calls"] - r["n"] for r in results if r["strategy"] == "judge")
    assert app.stats.chat_requests - sampled == judge_calls, "replay makes only judge calls, no sampling"
    # vote@4 on replay equals vote@4 while recording: the very same hypotheses decided.
    recorded = {r["id"]: r["answer"] for r in read_rows(tmp_path / "r1.jsonl")}
    assert all(r["answer"] == recorded[r["id"]] for r in results if (r["strategy"], r["n"]) == ("vote", 4))
    # N=1 is the first hypothesis alone, for every strategy.
    pool_rows = {r["id"]: r for r in read_rows(tmp_path / "pool.jsonl")}
    for r in results:
        if r["n"] == 1 and r["strategy"] == "vote":
            assert r["answer"] == pool_rows[r["id"]]["hypotheses"][0].get("answer")
    table = {(s.strategy, s.n): s for s in summarize(results)}
    assert table[("vote", 4)].total == 8 and table[("judge", 1)].calls_per_question == 1.0

    # A generating strategy replays its first round and samples its later rounds live; the question
    # itself is never sampled again.
    before = app.stats.chat_requests
    debate = EvalRunner(heavy=heavy(), strategies=["debate"], ns=[4], results=ResultsFile(tmp_path / "r3.jsonl"),
                        replay=Pool(tmp_path / "pool.jsonl"), options={"debate": {"stop_on_consensus": False}})
    await debate.evaluate(items)
    rows3 = read_rows(tmp_path / "r3.jsonl")
    assert all("round 1" in r["path"] and not r.get("error") for r in rows3), rows3
    assert app.stats.chat_requests - before == sum(r["calls"] - 4 for r in rows3) > 0


def test_eval_cli_compares_strategies_and_plots(tmp_path, small_dataset, monkeypatch):
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(small_dataset))
    svg = tmp_path / "plot.svg"
    r = CliRunner().invoke(cli, ["eval", str(small_dataset), "-m", "sim:heavy-simulated@accuracy=0.5",
                                 "--strategies", "vote,heavy", "--ns", "1,4", "--results", str(tmp_path / "r.jsonl"),
                                 "--record", str(tmp_path / "pool.jsonl"), "--plot", str(svg), "--json",
                                 "--seed", "2"])
    assert r.exit_code == 0, r.output
    summary = {(s["strategy"], s["n"]): s for s in json.loads(r.stdout)}
    assert set(summary) == {("vote", 1), ("vote", 4), ("heavy", 1), ("heavy", 4)}
    assert summary[("vote", 1)]["accuracy"] == summary[("heavy", 1)]["accuracy"], "same first hypothesis"
    assert summary[("heavy", 4)]["accuracy"] >= summary[("vote", 1)]["accuracy"]
    root = ET.fromstring(svg.read_text())
    assert root.tag.endswith("svg") and svg.read_text().count("<polyline") == 4


def test_eval_rejects_options_no_strategy_takes(tmp_path, small_dataset):
    r = CliRunner().invoke(cli, ["eval", str(small_dataset), "-s", "vote", "-o", "bogus=1",
                                 "--results", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 1 and "bogus" in r.stderr


def test_eval_records_logprobs_so_confidence_can_be_replayed(tmp_path, small_dataset, monkeypatch):
    """Without --logprobs a pool has no token logprobs and `confidence` replayed on it falls back to the vote;
    with --logprobs K the pool keeps them and `confidence` weighs the recorded traces."""
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(small_dataset))
    common = ["-m", "sim:heavy-simulated@accuracy=0.5", "-n", "4", "--seed", "3", "--limit", "3", "--json"]
    for flag, name in (([], "plain"), (["--logprobs", "2"], "lp")):
        r = CliRunner().invoke(cli, ["eval", str(small_dataset), *common, *flag, "-s", "vote",
                                     "--results", str(tmp_path / f"rec-{name}.jsonl"),
                                     "--record", str(tmp_path / f"pool-{name}.jsonl")])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(cli, ["eval", str(small_dataset), *common, "-s", "confidence",
                                     "--results", str(tmp_path / f"conf-{name}.jsonl"),
                                     "--replay", str(tmp_path / f"pool-{name}.jsonl")])
        assert r.exit_code == 0, r.output
    hyps = [h for row in read_rows(tmp_path / "pool-lp.jsonl") for h in row["hypotheses"]]
    assert len(hyps) == 12 and all(h["logprobs"] and len(h["logprobs"][0]["top"]) <= 2 for h in hyps)
    assert all(row["params"]["logprobs"] is True for row in read_rows(tmp_path / "pool-lp.jsonl"))
    assert not any(h.get("logprobs") for row in read_rows(tmp_path / "pool-plain.jsonl") for h in row["hypotheses"])
    assert all("no logprobs" in row["path"] for row in read_rows(tmp_path / "conf-plain.jsonl"))
    assert all("no logprobs" not in row["path"] and row["method"] != "vote"
               for row in read_rows(tmp_path / "conf-lp.jsonl"))


@pytest.mark.anyio
async def test_replay_extracts_answers_again_from_the_recorded_text():
    """A pool stores texts and the answers extracted when it was recorded; replay extracts again, so a pool
    recorded before an extraction fix is decided with the fix (here a real reply of the local model)."""
    from heavy.types import Hypothesis

    text = "So 300 cents is 3 dollars:\n   \\[\n   \\text{The answer is } 3 \\text{ dollars}\n   \\]"
    stale = [Hypothesis(index=i, model="openai:heavy-simulated", status="ok", text=text, answer="}3dollars")
             for i in range(2)]
    h = Heavy(model="openai:heavy-simulated", base_url="http://sim.test/v1",
              transport=httpx.ASGITransport(app=SimulatedLLM(SimConfig())), n=2)
    r = await h.ask("How much for 15 brown socks?", pool=stale, live=False)
    assert r.answer == "3" and [x.answer for x in r.hypotheses] == ["3", "3"]


def test_a_gzipped_pool_replays_and_cannot_be_recorded_into(tmp_path, small_dataset, monkeypatch):
    import gzip

    monkeypatch.setenv("HEAVY_SIM_DATASET", str(small_dataset))
    common = ["-m", "sim:heavy-simulated@accuracy=0.5", "-n", "4", "--seed", "3", "--limit", "3", "-s", "vote"]
    r = CliRunner().invoke(cli, ["eval", str(small_dataset), *common, "--results", str(tmp_path / "a.jsonl"),
                                 "--record", str(tmp_path / "pool.jsonl")])
    assert r.exit_code == 0, r.output
    gz = tmp_path / "pool.jsonl.gz"
    gz.write_bytes(gzip.compress((tmp_path / "pool.jsonl").read_bytes()))
    r = CliRunner().invoke(cli, ["eval", str(small_dataset), *common, "--results", str(tmp_path / "b.jsonl"),
                                 "--replay", str(gz)])
    assert r.exit_code == 0, r.output
    assert [x["answer"] for x in read_rows(tmp_path / "b.jsonl")] == [x["answer"] for x in read_rows(tmp_path / "a.jsonl")]
    r = CliRunner().invoke(cli, ["eval", str(small_dataset), *common, "--results", str(tmp_path / "c.jsonl"),
                                 "--record", str(gz)])
    assert r.exit_code == 1 and "plain JSONL" in r.stderr and "Traceback" not in r.output
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip")
    r = CliRunner().invoke(cli, ["eval", str(small_dataset), *common, "--results", str(tmp_path / "d.jsonl"),
                                 "--replay", str(tmp_path / "bad.jsonl.gz")])
    assert r.exit_code == 1 and "gzip" in r.stderr and "Traceback" not in r.output
