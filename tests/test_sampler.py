"""The sampler: parallel fan-out, isolated failures, quorum, deadline, early stop, events."""

import asyncio
import json
import time

import httpx
import pytest

from heavy.answers import final_answer
from heavy.errors import QuorumError
from heavy.events import HypothesisFailed, HypothesisFinished, HypothesisStarted, TokenDelta
from heavy.providers.openai import OpenAIProvider
from heavy.providers.wrappers import ConcurrencyLimit
from heavy.sampler import ModelRef, Sampler
from heavy.types import Message, SamplingParams

pytestmark = pytest.mark.anyio
Q = [Message(role="user", content="What is 6 * 7?")]


class FakeEndpoint:
    """An OpenAI-compatible endpoint behind MockTransport whose behaviour is keyed by the request seed."""

    def __init__(self, latency=0.0, fail_seeds=(), slow_seeds=(), slow_latency=5.0):
        self.latency, self.fail_seeds, self.slow_seeds, self.slow_latency = latency, set(fail_seeds), set(slow_seeds), slow_latency
        self.in_flight = self.max_in_flight = self.calls = self.cancelled = 0
        self.bodies = []

    async def __call__(self, req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        self.bodies.append(body)
        seed = body.get("seed")
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.slow_latency if seed in self.slow_seeds else self.latency)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        if seed in self.fail_seeds:
            return httpx.Response(500, json={"error": {"message": "boom"}})
        text = f"Thinking about seed {seed}. The answer is {42 if seed is None or seed % 3 else 41}."
        if body.get("stream"):
            chunks = [{"choices": [{"delta": {"content": w + " "}}]} for w in text.split()]
            sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json={"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                                         "usage": {"prompt_tokens": 5, "completion_tokens": 9}})


def ref(endpoint, label="fake:m", limit=None):
    p = OpenAIProvider("http://fake.local/v1", transport=httpx.MockTransport(endpoint), name="fake")
    return ModelRef(label=label, provider=ConcurrencyLimit(p, limit) if limit else p, model="m")


def sampler(*refs, seed=0, **kw):
    return Sampler(list(refs), params=SamplingParams(temperature=0.7, seed=seed), extract=final_answer, **kw)


async def test_n_calls_run_in_parallel():
    ep = FakeEndpoint(latency=0.4)
    start = time.monotonic()
    hyps = await sampler(ref(ep)).sample(Q, 8)
    wall = time.monotonic() - start
    assert ep.max_in_flight == 8, "all 8 requests must be in flight at once"
    assert wall < 8 * 0.4 / 2, f"8 calls of 0.4 s took {wall:.2f}s: serial, not parallel"
    assert [h.index for h in hyps] == list(range(8)) and all(h.ok for h in hyps)
    assert {h.answer for h in hyps} == {"41", "42"}


async def test_distinct_seeds_per_hypothesis():
    ep = FakeEndpoint()
    hyps = await sampler(ref(ep), seed=10).sample(Q, 5)
    assert sorted(b["seed"] for b in ep.bodies) == [10, 11, 12, 13, 14]
    assert [h.seed for h in hyps] == [10, 11, 12, 13, 14]


async def test_one_failure_does_not_cancel_siblings():
    ep = FakeEndpoint(latency=0.05, fail_seeds={3})
    hyps = await sampler(ref(ep)).sample(Q, 6)
    assert [h.status for h in hyps] == ["ok", "ok", "ok", "failed", "ok", "ok"]
    failed = hyps[3]
    assert failed.error_type == "ProviderHTTPError" and "boom" in failed.error and "500" in failed.error
    assert ep.cancelled == 0


async def test_quorum_error_carries_every_failure():
    ep = FakeEndpoint(fail_seeds=set(range(6)))
    with pytest.raises(QuorumError) as info:
        await sampler(ref(ep)).sample(Q, 6)
    assert len(info.value.failures) == 6
    assert "only 0 of 6" in str(info.value)


async def test_quorum_min_successes():
    ep = FakeEndpoint(fail_seeds={0, 1, 2})
    with pytest.raises(QuorumError, match="need 4"):
        await sampler(ref(ep), min_successes=4).sample(Q, 6)
    assert len(await sampler(ref(FakeEndpoint(fail_seeds={0, 1})), min_successes=4).sample(Q, 6)) == 6


async def test_deadline_cancels_stragglers_and_keeps_what_arrived():
    ep = FakeEndpoint(latency=0.05, slow_seeds={2, 5}, slow_latency=30)
    s = sampler(ref(ep), deadline=time.monotonic() + 0.5)
    start = time.monotonic()
    async with s.round(Q, 6) as run:
        got = [h async for h in run]
    assert time.monotonic() - start < 5
    assert run.deadline_hit
    assert sorted(h.index for h in got) == [0, 1, 3, 4]
    statuses = {h.index: h.status for h in run.hypotheses}
    assert statuses[2] == statuses[5] == "cancelled"
    await asyncio.sleep(0)
    assert ep.cancelled == 2, "the straggling HTTP calls themselves must be cancelled"


async def test_breaking_out_early_cancels_the_rest():
    ep = FakeEndpoint(latency=0.05, slow_seeds={1, 2, 3}, slow_latency=30)
    s = sampler(ref(ep))
    async with s.round(Q, 4) as run:
        async for h in run:
            break
    assert h.index == 0 and run.stopped_early and not run.deadline_hit
    assert [x.status for x in run.hypotheses] == ["ok", "cancelled", "cancelled", "cancelled"]
    assert ep.cancelled == 3


async def test_hypotheses_arrive_in_completion_order():
    ep = FakeEndpoint(latency=0.01, slow_seeds={0}, slow_latency=0.3)
    s = sampler(ref(ep))
    async with s.round(Q, 3) as run:
        order = [h.index async for h in run]
    assert order[-1] == 0


async def test_per_hypothesis_timeout():
    ep = FakeEndpoint(latency=0.01, slow_seeds={1}, slow_latency=30)
    hyps = await sampler(ref(ep), timeout=0.3).sample(Q, 3)
    assert [h.status for h in hyps] == ["ok", "failed", "ok"]
    assert hyps[1].error_type == "ProviderTimeout"


async def test_models_are_round_robined():
    a, b = FakeEndpoint(), FakeEndpoint()
    hyps = await sampler(ref(a, "fake:a"), ref(b, "fake:b")).sample(Q, 5)
    assert [h.model for h in hyps] == ["fake:a", "fake:b", "fake:a", "fake:b", "fake:a"]
    assert (a.calls, b.calls) == (3, 2)


async def test_provider_concurrency_limit():
    ep = FakeEndpoint(latency=0.05)
    hyps = await sampler(ref(ep, limit=2)).sample(Q, 6)
    assert ep.max_in_flight == 2 and len(hyps) == 6


async def test_events_and_streaming_deltas():
    ep = FakeEndpoint(fail_seeds={1})
    events = []
    await sampler(ref(ep), emit=events.append, stream=True).sample(Q, 3)
    kinds = [type(e) for e in events]
    assert kinds.count(HypothesisStarted) == 3
    assert kinds.count(HypothesisFinished) == 2 and kinds.count(HypothesisFailed) == 1
    deltas = [e for e in events if isinstance(e, TokenDelta) and e.index == 0]
    assert "".join(d.text for d in deltas).strip().endswith("The answer is 41.")
    assert all(b["stream"] for b in ep.bodies)
