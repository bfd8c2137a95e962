"""Faults: retries and Retry-After, shared cooldown, retry budget, fatal errors, broken streams,
budgets, rate limits, and secrets in every artefact of a failing run."""

import asyncio
import email.utils
import json
import time

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.cli import cli
from heavy.errors import FatalRequestError, OptionsError
from heavy.events import HypothesisRestarted
from heavy.http import retry_after
from heavy.providers.wrappers import RetryPolicy
from heavy.sim import SimConfig, SimulatedLLM

pytestmark = pytest.mark.anyio
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


def answer(text="The answer is 42.", usage=(10, 5)):
    return httpx.Response(200, json={"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}})


class Script:
    """A fake endpoint: responses per arrival order; records arrival times."""

    def __init__(self, responses, default=None):
        self.responses = list(responses)
        self.default = default or answer
        self.arrivals = []

    async def __call__(self, req):
        self.arrivals.append(time.monotonic())
        r = self.responses.pop(0) if self.responses else self.default
        return r() if callable(r) else r


def heavy(endpoint, **kw):
    kw.setdefault("retry", FAST)
    return Heavy(model="openai:m", base_url="http://fake.test/v1", transport=httpx.MockTransport(endpoint), **kw)


def test_retry_after_forms():
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "3"}) == 3.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after({"retry-after": future}) <= 31
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


async def test_429_is_retried_after_the_servers_delay_and_noted_in_the_trace():
    ep = Script([httpx.Response(429, headers={"retry-after-ms": "300"}, json={"error": {"message": "slow down"}})])
    start = time.monotonic()
    r = await heavy(ep, n=1, strategy="vote").ask("q")
    assert r.answer == "42" and time.monotonic() - start >= 0.3
    h = r.hypotheses[0]
    assert h.ok and "attempt 1 failed (HTTP 429); retrying in 0.30s" in h.trace[0]
    assert r.retries == 1


async def test_a_429_cools_the_provider_down_for_every_sibling():
    ep = Script([httpx.Response(429, headers={"retry-after": "1"}, json={"error": {"message": "rate"}})])
    h = heavy(ep, n=4, strategy="vote", concurrency=1)  # serial, so siblings arrive after the 429
    r = await h.ask("q")
    assert r.answer == "42"
    first, rest = ep.arrivals[0], ep.arrivals[1:]
    assert all(t - first >= 0.95 for t in rest), "siblings must wait out the cooldown, not hammer the API"


async def test_retry_after_beyond_the_cap_is_not_waited_for():
    ep = Script([httpx.Response(429, headers={"retry-after": "3600"}, json={"error": {"message": "quota"}})],
                default=lambda: answer())
    r = await heavy(ep, n=2, strategy="vote").ask("q")
    assert [x.status for x in r.hypotheses].count("failed") == 1 and r.answer == "42"


async def test_x_should_retry_false_is_respected():
    ep = Script([httpx.Response(500, headers={"x-should-retry": "false"}, json={"error": {"message": "no"}})])
    r = await heavy(ep, n=2, strategy="vote").ask("q")
    assert len(ep.arrivals) == 2 and r.hypotheses[0].status == "failed"


async def test_the_retry_budget_is_shared_across_hypotheses():
    ep = Script([], default=lambda: httpx.Response(503, json={"error": {"message": "down"}}))
    h = heavy(ep, n=4, strategy="vote")
    with pytest.raises(Exception):
        await h.ask("q")
    # 4 first attempts + a shared budget of 2 retries per hypothesis = 12, not 4 x 4 attempts = 16.
    assert len(ep.arrivals) == 12


async def test_a_fatal_4xx_cancels_the_siblings_with_one_clear_error():
    async def ep(req):
        await asyncio.sleep(0.05 if json.loads(req.content).get("seed") == 0 else 5)
        return httpx.Response(401, json={"error": {"message": "invalid key"}})

    h = heavy(ep, n=6, strategy="vote", seed=0)
    start = time.monotonic()
    with pytest.raises(FatalRequestError, match="invalid key") as info:
        await h.ask("q")
    assert info.value.status == 401
    assert time.monotonic() - start < 2, "siblings are cancelled, not awaited"


async def test_fatal_error_of_one_model_leaves_the_other_model_running():
    async def ep(req):
        model = json.loads(req.content)["model"]
        if model == "bad":
            return httpx.Response(404, json={"error": {"message": "no such model"}})
        return answer()

    h = Heavy(model=["openai:bad", "openai:good"], base_url="http://fake.test/v1", transport=httpx.MockTransport(ep),
              n=4, strategy="vote")
    r = await h.ask("q")
    assert r.answer == "42" and [x.model for x in r.successes] == ["openai:good", "openai:good"]


def sse(*pieces, then=None):
    body = "".join(f"data: {json.dumps({'choices': [{'delta': {'content': p}}]})}\n\n" for p in pieces)
    return body + (then if then is not None else "data: [DONE]\n\n")


async def test_a_stream_broken_mid_way_is_resampled_from_scratch():
    broken = sse("The answ", then='data: {"error": {"message": "upstream reset"}}\n\n')
    ok = sse("The answer ", "is 42.")
    ep = Script([httpx.Response(200, text=broken, headers={"content-type": "text/event-stream"}),
                 httpx.Response(200, text=ok, headers={"content-type": "text/event-stream"})])
    events = []
    r = await heavy(ep, n=1, strategy="vote", on_event=events.append).ask("q")
    h = r.hypotheses[0]
    assert h.ok and h.text == "The answer is 42." and "re-sampled from scratch" in h.trace[-1]
    assert any(isinstance(e, HypothesisRestarted) for e in events)


async def test_token_budget_stops_sampling_and_the_strategy_decides_on_what_arrived():
    app = SimulatedLLM(SimConfig(accuracy=1.0, latency=0.05, latency_sigma=1.0, seed=1))
    h = Heavy(model="openai:heavy-simulated", base_url="http://sim.test/v1", transport=httpx.ASGITransport(app=app),
              n=8, strategy="vote", max_total_tokens=300, seed=3)
    r = await h.ask("What is 12 * 12?")
    assert r.budget_hit == "tokens" and r.answer == "144"
    assert 1 <= len(r.successes) < 8
    cancelled = [x for x in r.hypotheses if x.status == "cancelled"]
    assert cancelled and all("budget" in x.error for x in cancelled)
    assert r.usage.total_tokens >= 300 and all(x.usage.prompt_tokens > 0 for x in cancelled)


async def test_dollar_budget_needs_prices_and_counts_cost():
    with pytest.raises(OptionsError, match="prices"):
        Heavy(model="openai:mystery-model", base_url="http://x.test/v1", max_cost_usd=1.0)
    ep = Script([], default=lambda: answer(usage=(1_000_000, 1_000_000)))
    h = Heavy(model="openai:gpt-4.1-mini", base_url="http://fake.test/v1", transport=httpx.MockTransport(ep),
               n=3, strategy="synthesize", max_cost_usd=5.0, concurrency=1, retry=FAST)
    r = await h.ask("q")
    # each call costs 0.40 + 1.60 = $2.00: the cap is reached after 3 calls, so synthesis is refused
    assert r.cost_usd == pytest.approx(6.0)
    assert r.budget_hit == "cost" and r.decision.method == "vote" and "synthesize failed" in r.decision.path


async def test_requests_per_minute_limit_paces_calls():
    ep = Script([])
    h = heavy(ep, n=8, strategy="vote", rpm=60)  # a burst of 6, then one per second
    await h.ask("q")
    assert len(ep.arrivals) == 8
    assert ep.arrivals[-1] - ep.arrivals[0] >= 1.5


def test_no_key_in_any_artefact_of_a_failing_cli_run(monkeypatch, tmp_path):
    key = "sk-test-LEAK-CHECK-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("HEAVY_DEBUG", "")
    runner = CliRunner()
    from helpers import running_sim

    with running_sim("--fail-rate", "1", "--fail-status", "401") as base:
        r = runner.invoke(cli, ["ask", "-m", "openai:heavy-simulated", "--base-url", f"{base}/v1", "-n", "3",
                                "--json", "What is 1 + 1?"])
    assert r.exit_code == 1
    artefacts = r.stdout + r.stderr + repr(r.exception)
    assert key not in artefacts and "401" in r.stderr
