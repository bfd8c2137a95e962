"""Batch result files read as data from outside: a file that lacks lines is reconciled with the job's own
counts (what the job says completed is lost, never bought again; only what it says never ran goes out again),
and a malformed line costs that line only, named by job id and line number. Faults are injected by heavy's
simulated batch APIs (:class:`heavy.sim.batchio.ResultFaults`)."""

import asyncio
import time

import pytest

from heavy.batch import BatchFailure, BatchRequest, batch_client
from heavy.evaluation import BatchBook
from heavy.evaluation.batching import custom_id
from heavy.sim.transport import StreamingASGITransport
from heavy.providers.anthropic import AnthropicProvider
from heavy.providers.base import Completion, CompletionRequest
from heavy.providers.openai import OpenAIProvider
from heavy.sim import SimConfig, SimulatedLLM
from heavy.sim.batchio import ResultFaults
from heavy.types import Message, SamplingParams

from test_batch_eval import heavy_for, run_batch, sim_with
from test_eval import read_rows

pytestmark = pytest.mark.anyio
MODELS = {"openai": ("openai:gpt-4.1-mini", "gpt-4.1-mini"), "anthropic": ("anthropic:claude-haiku-4-5",
                                                                            "claude-haiku-4-5")}


def client_for(app, wire):
    if wire == "openai":
        return batch_client(OpenAIProvider("http://sim.test/v1", transport=StreamingASGITransport(app)))
    return batch_client(AnthropicProvider("http://sim.test", transport=StreamingASGITransport(app)))


def requests(k, model):
    return [BatchRequest(f"r{i}", CompletionRequest(model=model, messages=[Message(role="user", content=f"{i} + 1?")],
                                                    params=SamplingParams(seed=i))) for i in range(k)]


async def damaged_job(wire, faults, k, **config):
    """A job of *k* requests run to its end by the simulator with *faults* in its result files: the simulated
    job, the heavy job, and what heavy read of it."""
    app = SimulatedLLM(SimConfig(batch_seconds=0.0, seed=3, **config))
    app.batches.faults = faults
    client = client_for(app, wire)
    items = requests(k, MODELS[wire][1])
    job = await client.submit(items, tag=f"t{time.time()}", since=time.time())
    while not job.ended:
        await asyncio.sleep(0.02)
        job = await client.poll(job.id)
    return app.batches.jobs[job.id], job, await client.fetch(job, expected=[r.custom_id for r in items])


# --- the batch client ----------------------------------------------------------------------------------


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_lines_missing_from_a_job_that_completed_everything_are_lost_not_unrun(wire):
    sim, job, out = await damaged_job(wire, ResultFaults(drop=2), 8)
    lost = {cid: v for cid, v in out.items() if isinstance(v, BatchFailure)}
    assert len(out) == 8 and set(lost) == sim.dropped
    for cid, failure in lost.items():
        assert failure.kind == "lost" and job.id in failure.message and cid in failure.message
    assert sum(isinstance(v, Completion) for v in out.values()) == 6


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_lines_missing_of_requests_the_job_says_never_ran_may_go_out_again(wire):
    sim, job, out = await damaged_job(wire, ResultFaults(drop=2, outcomes=("expired",)), 20, batch_expire_rate=0.4)
    missing = {cid for cid, v in out.items() if isinstance(v, BatchFailure) and v.kind == "missing"}
    assert len(missing) == 2 and missing == sim.dropped
    assert not any(isinstance(v, BatchFailure) and v.kind == "lost" for v in out.values())


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_when_the_counts_cannot_tell_which_missing_line_ran_none_is_bought_again(wire):
    sim, job, out = await damaged_job(wire, ResultFaults(drop=6, outcomes=("expired", "succeeded")), 30,
                                      batch_expire_rate=0.4)
    dropped = sim.dropped
    outcomes = {cid: o for cid, o, _ in sim.results}
    assert {outcomes[cid] for cid in dropped} == {"expired", "succeeded"}
    assert {out[cid].kind for cid in dropped} == {"lost"}, "some completed, nobody can tell which: none bought again"
    assert all("nobody can tell which" in out[cid].message for cid in dropped)


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_a_malformed_line_costs_that_line_only_named_by_job_and_line(wire):
    sim, job, out = await damaged_job(wire, ResultFaults(garble=1), 8)
    (garbled,) = sim.garbled
    assert sum(isinstance(v, Completion) for v in out.values()) == 7, "the other lines' answers are used"
    assert out[garbled].kind == "lost"
    (note,) = out.problems
    assert job.id in note and "line " in note and "not JSON" in note


# --- heavy eval --batch --------------------------------------------------------------------------------


async def damaged_eval(tmp_path, gsm8k, wire, faults):
    """``heavy eval --batch`` of 5 questions, N=3, on one job whose result file has *faults*: the simulated job,
    the results rows, the book's BatchLost samples by custom_id, and the progress lines."""
    app, items = sim_with(tmp_path, gsm8k[:5], batch_seconds=0.05, seed=2)
    app.batches.faults = faults
    out, said = tmp_path / "out.jsonl", []
    await run_batch(heavy_for(app, MODELS[wire][0], seed=1), items, out, on_progress=said.append)
    stats = app.batches.summary()
    assert stats["jobs"] == 1 and stats["submitted"] == 15 and stats["submitted_twice"] == 0, "nothing bought twice"
    rows = read_rows(out)
    assert len(rows) == 5 and not any(r["error"] for r in rows)
    lost = {custom_id(r["id"], h["index"]): h for r in read_rows(BatchBook.beside(out).path)
            if r["kind"] == "samples" for h in r["hypotheses"] if h.get("error_type") == "BatchLost"}
    (job,) = app.batches.jobs.values()
    return job, rows, lost, said


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_eval_does_not_buy_again_what_a_completed_job_left_out_of_its_file(tmp_path, gsm8k, wire):
    job, _, lost, said = await damaged_eval(tmp_path, gsm8k, wire, ResultFaults(drop=2))
    assert set(lost) == job.dropped and all(job.id in h["error"] and cid in h["error"] for cid, h in lost.items())
    assert any(job.id in line and all(c in line for c in lost) for line in said), said


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_eval_uses_every_other_answer_of_a_file_with_a_malformed_line(tmp_path, gsm8k, wire):
    job, rows, lost, said = await damaged_eval(tmp_path, gsm8k, wire, ResultFaults(garble=1))
    assert sum(a is not None for r in rows for a in r["hypothesis_answers"]) == 14, "the other 14 answers are used"
    assert set(lost) == job.garbled
    assert any(job.id in line and "line " in line and "not JSON" in line for line in said), said


async def test_eval_submits_again_only_what_the_job_says_never_ran(tmp_path, gsm8k):
    app, items = sim_with(tmp_path, gsm8k[:8], batch_seconds=0.05, seed=5, batch_expire_rate=0.3)
    app.batches.faults = ResultFaults(drop=2, outcomes=("expired",))
    out = tmp_path / "out.jsonl"
    await run_batch(heavy_for(app, seed=1), items, out)
    stats = app.batches.summary()
    first = next(iter(app.batches.jobs.values()))
    assert first.dropped and all(app.batches.submitted[c] >= 2 for c in first.dropped), "never ran: out again"
    assert stats["billed_twice"] == 0 and len(read_rows(out)) == 8


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_a_line_of_json_without_a_custom_id_costs_that_line_only(wire):
    from heavy.batch import BatchJob, BatchResults

    client = client_for(SimulatedLLM(SimConfig()), wire)
    out = BatchResults()
    client._answers('{"custom_id": 5, "note": "not JSON"}\n[1, 2]\n', BatchJob("job-1", "ended", True), "its results",
                    out)
    assert not out and [p.split(": line ")[1][:1] for p in out.problems] == ["1", "2"]
    assert all("job-1" in p and "(no custom_id)" in p for p in out.problems)
