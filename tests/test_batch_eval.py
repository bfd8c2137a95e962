"""`heavy eval --batch`: a dataset sampled through batch jobs on heavy's simulated batch APIs, decided as its
samples come back; killed and resumed with nothing lost, submitted or paid twice; the same rows as an
interactive run at half the sampling price."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.cli import cli
from heavy.evaluation import BatchBook, EvalRunner, Pool, ResultsFile, load_items
from heavy.sim.transport import StreamingASGITransport
from heavy.providers.wrappers import RetryPolicy
from heavy.sim import SimConfig, SimulatedLLM

from helpers import running_sim
from test_eval import read_rows, write_dataset

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


def sim_stats(base):
    return httpx.get(f"{base}/health").json()["batches"]


def eval_cmd(data, out, base, model="openai:gpt-4.1-mini", *extra):
    url = f"{base}/v1" if model.startswith("openai") else base
    return [sys.executable, "-m", "heavy.cli", "eval", str(data), "-m", model, "--base-url", url, "--batch",
            "--results", str(out), "--batch-poll", "0.2", *extra]


def test_contract_batch_rows_are_the_interactive_rows_at_half_the_sampling_price(tmp_path, gsm8k):
    data = write_dataset(tmp_path / "data.jsonl", gsm8k[:12])
    with running_sim("--dataset", str(data), "--batch-seconds", "1", "--accuracy", "0.6") as base:
        common = ["-s", "vote", "-n", "3", "--seed", "1"]
        batched = CliRunner().invoke(cli, eval_cmd(data, tmp_path / "batch.jsonl", base)[3:] + common)
        assert batched.exit_code == 0, batched.output
        stats = sim_stats(base)
        assert stats == {"jobs": 1, "submitted": 36, "billed": 36, "submitted_twice": 0, "billed_twice": 0}
        live = CliRunner().invoke(cli, ["eval", str(data), "-m", "openai:gpt-4.1-mini", "--base-url", f"{base}/v1",
                                        "--results", str(tmp_path / "live.jsonl"), *common])
        assert live.exit_code == 0, live.output
    assert "saved $" in batched.stderr and "(50%)" in batched.stderr
    b = {r["id"]: r for r in read_rows(tmp_path / "batch.jsonl")}
    i = {r["id"]: r for r in read_rows(tmp_path / "live.jsonl")}
    assert set(b) == set(i) and len(b) == 12
    book = read_rows(tmp_path / "batch.jsonl.batches")
    job_id = next(r["batch_id"] for r in book if r["kind"] == "job")
    for key, row in b.items():
        assert set(i[key]) <= set(row), "every field of an interactive row is in the batch row"
        for field in ("question", "gold", "answer", "correct", "strategy", "n", "model", "total_tokens", "usage",
                      "calls", "method", "path", "hypothesis_answers", "error"):
            assert row[field] == i[key][field], (field, row[field], i[key][field])
        assert row["cost_usd"] == pytest.approx(i[key]["cost_usd"] / 2)
        assert row["interactive_cost_usd"] == pytest.approx(i[key]["cost_usd"])
        assert row["batch"] == [job_id] and row["live_calls"] == 0
    right = sum(r["correct"] for r in b.values())
    assert f"accuracy vote N=3: {right / 12:.3f} ({right}/12)" in batched.stdout


def test_anthropic_batch_with_a_judge_deciding_live(tmp_path, gsm8k):
    data = write_dataset(tmp_path / "data.jsonl", gsm8k[:6])
    out = tmp_path / "out.jsonl"
    with running_sim("--dataset", str(data), "--batch-seconds", "0.5") as base:
        r = subprocess.run(eval_cmd(data, out, base, "anthropic:claude-haiku-4-5", "-s", "judge", "-n", "3"),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        stats = sim_stats(base)
    assert stats["jobs"] == 1 and stats["submitted"] == stats["billed"] == 18 and stats["billed_twice"] == 0
    rows = read_rows(out)
    assert len(rows) == 6 and all(row["method"] == "judge" and row["live_calls"] == 1 for row in rows)
    assert all(row["batch"][0].startswith("msgbatch_") for row in rows)
    # The judge's call is live, at interactive prices; the samples at batch prices.
    assert all(row["cost_usd"] < row["interactive_cost_usd"] for row in rows)
    assert "live call(s)" in r.stderr and "saved $" in r.stderr


def test_killed_twice_and_resumed_nothing_lost_submitted_or_paid_twice(tmp_path, gsm8k):
    data = write_dataset(tmp_path / "data.jsonl", gsm8k[:30])
    out = tmp_path / "out.jsonl"
    book = tmp_path / "out.jsonl.batches"
    # Slow judges make the decisions take a while, so the second kill lands among them.
    with running_sim("--dataset", str(data), "--batch-seconds", "3", "--latency", "0.3") as base:
        cmd = eval_cmd(data, out, base, "openai:gpt-4.1-mini", "-s", "judge", "-n", "4", "--concurrency", "2")

        def run_until(ready):
            victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not ready():
                time.sleep(0.05)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()

        run_until(lambda: book.exists() and any(r["kind"] == "job" for r in read_rows(book)))
        assert not out.exists() or not read_rows(out), "killed while the job was running"
        assert sim_stats(base)["jobs"] == 1
        run_until(lambda: out.exists() and len(read_rows(out)) >= 3)
        partial = len(read_rows(out))
        assert 3 <= partial < 30, f"the second kill should land among the decisions (had {partial} rows)"
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        stats = sim_stats(base)
    assert stats == {"jobs": 1, "submitted": 120, "billed": 120, "submitted_twice": 0, "billed_twice": 0}
    rows = read_rows(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 30, "every question decided exactly once"
    assert f"{partial} results already there" in done.stderr
    kinds = [r["kind"] for r in read_rows(book)]
    assert kinds.count("submit") == kinds.count("job") == kinds.count("ended") == 1


# --- in-process: the simulator behind heavy's own transport ----------------------------------------------


def sim_with(tmp_path, rows, **config):
    """A simulator knowing *rows*' gold answers, and *rows* as the items of a dataset file."""
    app = SimulatedLLM(SimConfig(dataset={r["question"]: r["answer"] for r in rows}, **config))
    return app, load_items(write_dataset(tmp_path / "d.jsonl", rows))


def heavy_for(app, model="openai:gpt-4.1-mini", **kwargs):
    base = "http://sim.test/v1" if model.startswith("openai") else "http://sim.test"
    return Heavy(model=model, base_url=base, transport=StreamingASGITransport(app), retry=FAST, **kwargs)


async def run_batch(heavy, items, out, strategies=("vote",), ns=(3,), **kwargs):
    runner = EvalRunner(heavy=heavy, strategies=list(strategies), ns=list(ns), results=ResultsFile(out),
                        batch=BatchBook.beside(out), batch_poll=0.05, **kwargs)
    try:
        await runner.evaluate(items)
    finally:
        await heavy.aclose()
    return runner


@pytest.mark.anyio
async def test_expired_requests_are_submitted_again_and_nothing_is_billed_twice(tmp_path, gsm8k):
    app, items = sim_with(tmp_path, gsm8k[:10], batch_seconds=0.1, batch_expire_rate=0.3, seed=5)
    out = tmp_path / "out.jsonl"
    await run_batch(heavy_for(app, seed=1), items, out)
    stats = app.batches.summary()
    assert stats["jobs"] > 1 and stats["submitted_twice"] > 0, "the expired requests went out again"
    assert stats["billed_twice"] == 0 and stats["billed"] <= 30
    results = read_rows(out)
    assert len(results) == 10 and not any(r["error"] for r in results)
    assert any(len(r["batch"]) > 1 for r in results), "a question answered by two jobs names both"


@pytest.mark.anyio
async def test_strategies_and_ns_share_one_batch_and_record_keeps_the_pool(tmp_path, gsm8k):
    app, items = sim_with(tmp_path, gsm8k[:5], batch_seconds=0.1, seed=2)
    pool = tmp_path / "pool.jsonl"
    await run_batch(heavy_for(app, seed=3), items, tmp_path / "a.jsonl", strategies=("vote", "judge"), ns=(1, 4),
                    record=Pool(pool))
    assert app.batches.summary()["submitted"] == 20 and app.batches.summary()["jobs"] == 1
    assert len(read_rows(tmp_path / "a.jsonl")) == 5 * 2 * 2
    assert [len(r["hypotheses"]) for r in read_rows(pool)] == [4] * 5
    # A later batch run with the same pool decides on it: no job at all.
    await run_batch(heavy_for(app, seed=3), items, tmp_path / "b.jsonl", ns=(4,), record=Pool(pool))
    assert app.batches.summary()["jobs"] == 1 and len(read_rows(tmp_path / "b.jsonl")) == 5


class LostAnswer(httpx.AsyncBaseTransport):
    """The simulator behind a network that loses the answer of the first job creation after the job was
    created (*crash*: the process dies right then)."""

    class Crash(BaseException):
        pass

    def __init__(self, app, crash=False):
        self.inner, self.crash, self.lost = StreamingASGITransport(app), crash, 0

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path in ("/v1/batches", "/v1/messages/batches") and not self.lost:
            self.lost += 1
            await response.aread()
            if self.crash:
                raise self.Crash()
            raise httpx.ReadError("connection reset after the request was sent", request=request)
        return response


@pytest.mark.anyio
@pytest.mark.parametrize("model", ["openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5"])
async def test_a_job_whose_creation_answer_was_lost_is_found_not_created_again(tmp_path, gsm8k, model):
    app, items = sim_with(tmp_path, gsm8k[:4], batch_seconds=0.1, seed=2)
    base = "http://sim.test/v1" if model.startswith("openai") else "http://sim.test"

    # Within a run: the create times out after the provider acted; the retry finds the job by its tag.
    lossy = LostAnswer(app)
    await run_batch(Heavy(model=model, base_url=base, transport=lossy, retry=FAST, seed=1), items,
                    tmp_path / "a.jsonl")
    assert lossy.lost == 1 and app.batches.summary()["jobs"] == 1
    assert len(read_rows(tmp_path / "a.jsonl")) == 4

    # Across runs: the process dies between the job's creation and writing its id down; the next run finds it.
    with pytest.raises(LostAnswer.Crash):
        await run_batch(Heavy(model=model, base_url=base, transport=LostAnswer(app, crash=True), retry=FAST, seed=1),
                        items, tmp_path / "b.jsonl")
    kinds = [r["kind"] for r in read_rows(tmp_path / "b.jsonl.batches")]
    assert kinds == ["submit"] and app.batches.summary()["jobs"] == 2
    await run_batch(heavy_for(app, model, seed=1), items, tmp_path / "b.jsonl")
    assert app.batches.summary()["jobs"] == 2, "the job was picked up, not created again"
    assert len(read_rows(tmp_path / "b.jsonl")) == 4


@pytest.mark.anyio
async def test_per_request_errors_are_failed_hypotheses_and_the_rest_decide(tmp_path, gsm8k):
    app, items = sim_with(tmp_path, gsm8k[:6], batch_seconds=0.0, seed=1)
    out = tmp_path / "out.jsonl"
    await run_batch(heavy_for(app, "openai:gpt-4.1-mini@fail_rate=0.3", seed=4), items, out, ns=(5,))
    results = read_rows(out)
    assert len(results) == 6
    answers = [a for r in results for a in r["hypothesis_answers"]]
    assert None in answers and any(a is not None for a in answers)
    failed = [h for r in read_rows(BatchBook.beside(out).path) if r["kind"] == "samples" for h in r["hypotheses"]
              if h.get("status") == "failed"]
    assert failed and all(h["error_type"] == "BatchRequestError" and "simulated failure" in h["error"]
                          for h in failed)


def test_batch_wait_leaves_the_jobs_running_for_the_next_run(tmp_path, gsm8k):
    data = write_dataset(tmp_path / "data.jsonl", gsm8k[:5])
    out = tmp_path / "out.jsonl"
    with running_sim("--dataset", str(data), "--batch-seconds", "2") as base:
        first = CliRunner().invoke(cli, eval_cmd(data, out, base)[3:] + ["-n", "2", "--batch-wait", "0"])
        assert first.exit_code == 0, first.output
        assert "still running" in first.stderr and "run the same command again" in first.stderr
        assert not out.exists() or not read_rows(out)
        again = CliRunner().invoke(cli, eval_cmd(data, out, base)[3:] + ["-n", "2"])
        assert again.exit_code == 0, again.output
        assert "picking up 1 batch job(s)" in again.stderr
        assert sim_stats(base)["jobs"] == 1 and len(read_rows(out)) == 5


@pytest.mark.parametrize("args, message", [
    (["-m", "sim"], "heavy sim --port"),
    (["-m", "xai:grok-4", "--base-url", "http://127.0.0.1:9/v1"], "no batch API"),
    (["-m", "gemini:gemini-2.5-flash", "--base-url", "http://127.0.0.1:9"], "no batch API"),
    (["-m", "openai:gpt-4.1-mini", "--base-url", "http://127.0.0.1:9/v1", "--replay", "{pool}"], "--replay"),
    (["-m", "openai:gpt-4.1-mini", "--base-url", "http://127.0.0.1:9/v1", "--tools", "python"], "--tools"),
])
def test_bad_combinations_are_one_line_errors_naming_the_fix(tmp_path, gsm8k, args, message):
    data = write_dataset(tmp_path / "data.jsonl", gsm8k[:2])
    pool = tmp_path / "pool.jsonl"
    pool.write_text("")
    args = [a.replace("{pool}", str(pool)) for a in args]
    r = CliRunner().invoke(cli, ["eval", str(data), "--batch", "--results", str(tmp_path / "o.jsonl"), *args])
    assert r.exit_code == 1 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.jsonl.batches").exists() or not read_rows(tmp_path / "o.jsonl.batches")
