"""Batch APIs: heavy's batch clients (heavy/batch.py) against the simulator's batch endpoints (heavy/sim/batch.py),
in each provider's documented shape: the job lifecycle, result files in shuffled order, per-request errors,
expiry, cancellation, validation, and finding a job whose creation answer was lost."""

import asyncio
import json
import time

import httpx
import pytest

from heavy.batch import AnthropicBatch, BatchFailure, BatchRequest, OpenAIBatch, batch_client
from heavy.errors import ConfigError, FatalRequestError
from heavy.sim.transport import StreamingASGITransport
from heavy.providers.anthropic import AnthropicProvider
from heavy.providers.base import Completion, CompletionRequest
from heavy.providers.openai import OpenAIProvider
from heavy.sim import SimConfig, SimulatedLLM
from heavy.types import Message, SamplingParams

pytestmark = pytest.mark.anyio


def _clients(app):
    openai = OpenAIProvider("http://sim.test/v1", transport=StreamingASGITransport(app))
    anthropic = AnthropicProvider("http://sim.test", transport=StreamingASGITransport(app))
    return batch_client(openai), batch_client(anthropic)


def _requests(k, model="gpt-4.1-mini", prefix="r"):
    return [BatchRequest(f"{prefix}{i}", CompletionRequest(
        model=model, messages=[Message(role="user", content=f"What is {i} + 40?")], params=SamplingParams(seed=i)))
        for i in range(k)]


async def _until_ended(client, job):
    seen = [job.status]
    while not job.ended:
        await asyncio.sleep(0.05)
        job = await client.poll(job.id)
        if job.status != seen[-1]:
            seen.append(job.status)
    return job, seen


async def test_openai_job_moves_through_its_states_and_answers_every_request_in_shuffled_order():
    app = SimulatedLLM(SimConfig(batch_seconds=0.6, seed=4, accuracy=1.0))
    client, _ = _clients(app)
    assert isinstance(client, OpenAIBatch)
    job = await client.submit(_requests(12), tag="t-openai", since=time.time())
    assert job.status == "validating" and job.total == 12 and not job.ended
    job, seen = await _until_ended(client, job)
    assert seen == ["validating", "in_progress", "finalizing", "completed"]
    assert job.done == 12 and job.raw["metadata"] == {"heavy_tag": "t-openai"}
    out = await client.fetch(job)
    assert set(out) == {f"r{i}" for i in range(12)}
    for i in range(12):
        c = out[f"r{i}"]
        assert isinstance(c, Completion) and c.usage.completion_tokens > 0 and c.request_id
        assert str(i + 40) in c.text
    # The output file is the documented JSONL, in no particular order.
    content = (await client.http.get_json(f"files/{job.raw['output_file_id']}/content")).text
    lines = [json.loads(line) for line in content.splitlines()]
    assert {"id", "custom_id", "response", "error"} <= set(lines[0]) and lines[0]["response"]["status_code"] == 200
    assert [line["custom_id"] for line in lines] != [f"r{i}" for i in range(12)], "results are shuffled"
    assert app.batches.summary() == {"jobs": 1, "submitted": 12, "billed": 12, "submitted_twice": 0,
                                     "billed_twice": 0}


async def test_anthropic_message_batch_ends_with_results_at_results_url():
    app = SimulatedLLM(SimConfig(batch_seconds=0.4, seed=4, accuracy=1.0))
    _, client = _clients(app)
    assert isinstance(client, AnthropicBatch)
    job = await client.submit(_requests(6, "claude-haiku-4-5"), tag="t-anthropic", since=time.time())
    assert job.status == "in_progress" and job.raw["results_url"] is None
    job, seen = await _until_ended(client, job)
    assert seen == ["in_progress", "ended"]
    assert job.raw["request_counts"] == {"processing": 0, "succeeded": 6, "errored": 0, "canceled": 0, "expired": 0}
    assert job.raw["results_url"] == f"http://sim.test/v1/messages/batches/{job.id}/results"
    out = await client.fetch(job)
    assert all(isinstance(out[f"r{i}"], Completion) and str(i + 40) in out[f"r{i}"].text for i in range(6))
    # Results before the end are refused, as the API does.
    early = await client.submit(_requests(2, "claude-haiku-4-5", "e"), tag="t2", since=time.time())
    if not early.ended:
        with pytest.raises(FatalRequestError):
            await client.results(early)


async def test_the_answers_of_a_batch_are_the_live_answers_of_the_same_requests():
    app = SimulatedLLM(SimConfig(batch_seconds=0.0, seed=9, accuracy=0.5))
    client, _ = _clients(app)
    items = _requests(5)
    job = await client.submit(items, tag="t", since=time.time())
    job, _ = await _until_ended(client, job)
    out = await client.fetch(job)
    for item in items:
        live = await client.provider.complete(item.request)
        assert out[item.custom_id].text == live.text and out[item.custom_id].usage == live.usage
    # (Anthropic's API takes no seed, so its samples are not repeatable, batched or not.)


async def test_per_request_errors_and_expiry_come_back_per_request():
    app = SimulatedLLM(SimConfig(batch_seconds=0.0, seed=1, batch_expire_rate=0.3))
    openai, anthropic = _clients(app)
    for client, model in ((openai, "gpt-4.1-mini@fail_rate=0.3"), (anthropic, "claude-haiku-4-5@fail_rate=0.3")):
        job, _ = await _until_ended(client, await client.submit(_requests(40, model), tag=model, since=time.time()))
        out = await client.fetch(job)
        assert len(out) == 40
        kinds = {("ok" if isinstance(v, Completion) else v.kind) for v in out.values()}
        assert kinds == {"ok", "errored", "expired"}, kinds
        errored = next(v for v in out.values() if isinstance(v, BatchFailure) and v.kind == "errored")
        assert "simulated failure" in errored.message
        billed = sum(isinstance(v, Completion) for v in out.values())
        if client is openai:
            assert job.status == "expired" and job.raw["error_file_id"]
        else:
            counts = job.raw["request_counts"]
            assert counts["succeeded"] == billed and counts["expired"] and counts["errored"]
    assert app.batches.summary()["billed"] == sum(app.batches.billed.values())


async def test_a_cancelled_job_answers_what_ran_and_cancels_the_rest():
    app = SimulatedLLM(SimConfig(batch_seconds=1.0, seed=1))
    openai, anthropic = _clients(app)
    for client, model, states in ((openai, "gpt-4.1-mini", ("cancelling", "cancelled")),
                                  (anthropic, "claude-haiku-4-5", ("canceling", "ended"))):
        job = await client.submit(_requests(20, model), tag=f"c-{model}", since=time.time())
        await asyncio.sleep(0.5)
        job = await client.cancel(job.id)
        assert job.status == states[0]
        job, _ = await _until_ended(client, job)
        assert job.status == states[1]
        out = await client.fetch(job)
        kinds = [v.kind if isinstance(v, BatchFailure) else "ok" for v in out.values()]
        assert len(out) == 20 and "ok" in kinds and "cancelled" in kinds


async def test_a_lost_creation_is_found_by_its_tag_not_created_again():
    app = SimulatedLLM(SimConfig(batch_seconds=5.0, seed=1))
    openai, anthropic = _clients(app)
    since = time.time()
    created = await openai.submit(_requests(3), tag="lost-1", since=since)
    await openai.submit(_requests(3, prefix="other"), tag="someone-else", since=since)
    found = await openai.find("lost-1", since=since, count=3)
    assert found is not None and found.id == created.id, "OpenAI keeps the tag in the job's metadata"
    assert await openai.find("never-created", since=since, count=3) is None
    # Anthropic keeps no tag: the job created after the tag was written, with as many requests, not a known one.
    a = await anthropic.submit(_requests(4, "claude-haiku-4-5"), tag="lost-2", since=since)
    assert (await anthropic.find("lost-2", since=since, count=4)).id == a.id
    assert await anthropic.find("lost-2", since=since, count=4, known=[a.id]) is None
    assert await anthropic.find("lost-2", since=since, count=5) is None
    assert await anthropic.find("lost-2", since=time.time() + 3600, count=4) is None


async def test_limits_cut_jobs_by_count_and_openai_jobs_by_model():
    app = SimulatedLLM(SimConfig())
    openai, anthropic = _clients(app)
    openai.max_requests = 4
    mixed = _requests(6) + _requests(3, "gpt-4.1-nano", "n")
    chunks = openai.chunks(mixed)
    assert [len(c) for c in chunks] == [4, 2, 3]
    assert all(len({r.request.model for r in c}) == 1 for c in chunks)
    anthropic.max_bytes = 2 * len(json.dumps(anthropic.line(_requests(1, "claude-haiku-4-5")[0])))
    assert all(len(c) <= 2 for c in anthropic.chunks(_requests(5, "claude-haiku-4-5")))
    with pytest.raises(ValueError, match="custom_id"):
        openai.chunks([BatchRequest("has space", mixed[0].request)])


async def test_the_simulator_refuses_what_the_apis_refuse():
    app = SimulatedLLM(SimConfig(batch_seconds=0.0))
    async with httpx.AsyncClient(transport=StreamingASGITransport(app), base_url="http://sim.test") as http:
        bad = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m1", ' \
              b'"messages": [{"role": "user", "content": "hi"}]}}\n' \
              b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m2", ' \
              b'"messages": [{"role": "user", "content": "hi"}]}}\n'
        up = await http.post("/v1/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", bad)})
        assert up.status_code == 200 and up.json()["purpose"] == "batch" and up.json()["bytes"] == len(bad)
        job = (await http.post("/v1/batches", json={"input_file_id": up.json()["id"], "endpoint": "/v1/chat/completions",
                                                    "completion_window": "24h"})).json()
        job = (await http.get(f"/v1/batches/{job['id']}")).json()
        assert job["status"] == "failed" and {e["code"] for e in job["errors"]["data"]} == {"duplicate_custom_id"}
        r = await http.post("/v1/batches", json={"input_file_id": "file-nope", "endpoint": "/v1/chat/completions",
                                                 "completion_window": "24h"})
        assert r.status_code == 400 and "purpose 'batch'" in r.json()["error"]["message"]
        r = await http.post("/v1/batches", json={"input_file_id": up.json()["id"], "endpoint": "/v1/embeddings",
                                                 "completion_window": "24h"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "endpoint"
        r = await http.get("/v1/batches/batch_nope")
        assert r.status_code == 404
        r = await http.post("/v1/messages/batches", json={"requests": [{"custom_id": "x y", "params": {}}]})
        assert r.status_code == 400 and r.json()["type"] == "error" and "custom_id" in r.json()["error"]["message"]
        health = (await http.get("/health")).json()
        assert health["batches"]["jobs"] == 1 and health["simulated"] is True


async def test_a_failed_job_says_why():
    app = SimulatedLLM(SimConfig(batch_seconds=0.0))
    openai, _ = _clients(app)
    job = await openai.submit(_requests(2) + _requests(2, "gpt-4.1-nano", "n"), tag="mixed", since=time.time())
    job = await openai.poll(job.id)
    assert job.status == "failed" and job.ended and "one model" in job.failure


def test_no_batch_api_is_a_clear_error():
    from heavy.providers.gemini import GeminiProvider

    with pytest.raises(ConfigError, match="no batch API"):
        batch_client(GeminiProvider("http://127.0.0.1:9/"))


async def test_the_official_openai_client_runs_a_batch_against_the_simulator(tmp_path):
    """The openai package's own files/batches calls, unchanged, against the simulator's endpoints."""
    from openai import AsyncOpenAI

    app = SimulatedLLM(SimConfig(batch_seconds=0.3, seed=2, accuracy=1.0))
    async with httpx.AsyncClient(transport=StreamingASGITransport(app)) as http:
        client = AsyncOpenAI(base_url="http://sim.test/v1", api_key="unused", http_client=http)
        lines = [{"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": f"What is {i} * 3?"}]}}
                 for i in range(4)]
        path = tmp_path / "in.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        uploaded = await client.files.create(file=path.open("rb"), purpose="batch")
        batch = await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                            completion_window="24h", metadata={"run": "test"})
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            await asyncio.sleep(0.05)
            batch = await client.batches.retrieve(batch.id)
        assert batch.status == "completed" and batch.request_counts.completed == 4
        content = await client.files.content(batch.output_file_id)
        answers = {row["custom_id"]: row["response"]["body"]["choices"][0]["message"]["content"]
                   for row in map(json.loads, content.text.splitlines())}
        assert all(str(i * 3) in answers[f"c{i}"] for i in range(4))
        listed = await client.batches.list(limit=10)
        assert [b.id for b in listed.data] == [batch.id]
