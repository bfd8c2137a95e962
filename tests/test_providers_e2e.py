"""The same end-to-end runs over all three wire formats (OpenAI, Anthropic, Gemini) against the simulator.

Each test builds a real :class:`heavy.Heavy` for ``<wire>:heavy-simulated`` whose network edge is the
simulator app in-process (``httpx.ASGITransport``), so the request goes through the preset, the factory,
the provider, the wire format on both sides, the sampler and the strategy. The last tests run the CLI
against a real ``heavy sim`` server process on 127.0.0.1 and check the base-URL contract of each preset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from heavy import Heavy
from heavy.errors import MissingKeyError, QuorumError
from heavy.events import AggregatorDelta, TokenDelta
from heavy.models import parse_spec
from heavy.providers.anthropic import AnthropicProvider
from heavy.providers.factory import build_provider
from heavy.providers.gemini import GeminiProvider
from heavy.providers.adapt import Adapt
from heavy.providers.openai import OpenAIProvider
from heavy.providers.responses import ResponsesProvider
from heavy.providers.wrappers import RetryPolicy
from heavy.sim import SimConfig, SimulatedLLM
from helpers import arithmetic_questions as arithmetic
from helpers import running_sim

pytestmark = pytest.mark.anyio

WIRES = ["openai", "anthropic", "gemini"]
#: Where each preset's base URL points: OpenAI-compatible servers are addressed at /v1, the other two
#: at their root (the provider adds /v1/messages or /v1beta/models/...).
BASE = {"openai": "http://sim.test/v1", "anthropic": "http://sim.test", "gemini": "http://sim.test"}
KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
ENV_VARS = KEY_VARS + ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GEMINI_BASE_URL", "HEAVY_SIM_DATASET")
NO_RETRY = RetryPolicy(max_attempts=1)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def sim_heavy(wire, config=None, model="heavy-simulated", **kw):
    app = SimulatedLLM(config or SimConfig())
    models = [f"{wire}:{m}" for m in ([model] if isinstance(model, str) else model)]
    h = Heavy(model=models, base_url=BASE[wire], transport=httpx.ASGITransport(app=app), **kw)
    return h, app


# --- strategies, streaming and not ---------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("wire", WIRES)
async def test_vote(wire, stream):
    events = []
    h, app = sim_heavy(wire, SimConfig(accuracy=1.0), n=5, strategy="vote", stream=stream, on_event=events.append)
    r = await h.ask("What is 17 * 24 + 3?", seed=1)
    await h.aclose()
    assert r.answer == "411" and r.decision.method == "vote" and r.decision.votes == {"411": 5}
    assert app.stats.by_wire == {wire: 5}
    for x in r.hypotheses:
        assert x.ok and x.model == f"{wire}:heavy-simulated" and x.answer == "411"
        assert x.request_id and x.finish_reason == "stop" and x.reasoning is None
        assert x.usage.prompt_tokens > 0 and x.usage.completion_tokens > 0
    assert r.usage.completion_tokens == sum(x.usage.completion_tokens for x in r.hypotheses)
    deltas = [e for e in events if isinstance(e, TokenDelta)]
    if stream:
        for x in r.hypotheses:
            assert "".join(e.text for e in deltas if e.index == x.index) == x.text
    else:
        assert not deltas


@pytest.mark.parametrize("wire", WIRES)
async def test_judge_picks_a_minority_right_answer(wire):
    h, app = sim_heavy(wire, SimConfig(accuracy=0.3, seed=9), n=6, strategy="judge")
    judge_right = covered = 0
    for i, (q, gold) in enumerate(arithmetic(6, seed=1)):
        r = await h.ask(q, seed=i)
        covered += any(x.answer == gold for x in r.hypotheses)
        judge_right += r.answer == gold
        assert r.decision.method == "judge"
        [call] = r.aggregator_calls
        assert call.purpose == "judge" and call.model == f"{wire}:heavy-simulated" and not call.error
    await h.aclose()
    assert judge_right == covered > 0
    assert app.stats.judge_requests == 6 and app.stats.by_wire[wire] == 6 * 7


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("wire", WIRES)
async def test_synthesize(wire, stream):
    events = []
    h, app = sim_heavy(wire, SimConfig(accuracy=0.5, seed=2), n=6, strategy="synthesize", stream=stream,
                       on_event=events.append)
    r = await h.ask("What is 45 * 6 + 2?", seed=8)
    await h.aclose()
    assert r.answer == "272" and r.decision.method == "synthesize"
    [call] = r.aggregator_calls
    assert call.purpose == "synthesize" and call.model == f"{wire}:heavy-simulated"
    assert r.usage.completion_tokens == sum(x.usage.completion_tokens for x in r.hypotheses) + call.usage.completion_tokens
    streamed = "".join(e.text for e in events if isinstance(e, AggregatorDelta))
    assert streamed == (r.text if stream else "")
    assert app.stats.synthesize_requests == 1


@pytest.mark.parametrize("wire", WIRES)
async def test_overrides_travel_in_the_model_name(wire):
    h, app = sim_heavy(wire, SimConfig(accuracy=1.0), model="heavy-simulated@accuracy=0", n=3, strategy="vote")
    r = await h.ask("What is 12 * 12?", seed=5)
    await h.aclose()
    assert all(x.ok and x.answer != "144" for x in r.hypotheses)
    assert app.stats.by_model == {"heavy-simulated@accuracy=0": 3}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("wire", WIRES)
async def test_logprobs_where_the_api_has_them(wire, stream):
    h, _ = sim_heavy(wire, SimConfig(accuracy=1.0), n=2, strategy="vote", logprobs=True, top_logprobs=2,
                     stream=stream)
    r = await h.ask("What is 6 * 7?", seed=3)
    await h.aclose()
    for x in r.hypotheses:
        if wire == "anthropic":  # the Messages API has no logprobs
            assert x.logprobs is None
        else:
            assert "".join(t.token for t in x.logprobs) == x.text
            assert all(t.logprob <= 0 and t.top and len(t.top) == 2 for t in x.logprobs)


# --- the caller's own tools (Heavy.ask(tools=...)), multi-turn in every wire's own form ---------------------

AGENT_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "celsius_to_fahrenheit", "parameters": {
        "type": "object", "properties": {"celsius": {"type": "number"}}, "required": ["celsius"]}}}]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("wire", WIRES)
async def test_an_agent_loop_with_the_callers_tools(wire, stream):
    h, app = sim_heavy(wire, SimConfig(accuracy=1.0), n=3, strategy="judge", stream=stream)
    messages = [{"role": "user", "content": "What is the weather in Paris right now, in degrees Fahrenheit?"}]
    made = []
    for _ in range(4):
        r = await h.ask(messages, tools=AGENT_TOOLS, seed=2)
        if not r.tool_calls:
            break
        made += [(c.name, c.arguments) for c in r.tool_calls]
        messages.append({"role": "assistant", "content": r.text, "tool_calls": [
            c.model_dump(include={"id", "name", "arguments"}) for c in r.tool_calls]})
        for c in r.tool_calls:  # tool messages without a name: the name comes from the call they answer
            out = '{"temperature_c": 18}' if c.name == "get_weather" else f"{c.arguments['celsius'] * 1.8 + 32:g}"
            messages.append({"role": "tool", "tool_call_id": c.id, "content": out})
    await h.aclose()
    assert made == [("get_weather", {"city": "Paris"}), ("celsius_to_fahrenheit", {"celsius": 18})]
    assert r.answer == "64.4" and r.decision.method == "judge" and r.decision.path[:2] == ["sample", "tool-vote"]
    assert len(r.aggregator_calls) == 1, "the judge decided among the answers; no tool vote needed an aggregator"
    assert app.stats.by_wire == {wire: 3 * 3 + 1}


# --- failures -------------------------------------------------------------------------------------------

#: A typical transient failure of each API: OpenAI 500, Anthropic 529 overloaded, Gemini 429 RESOURCE_EXHAUSTED.
FAIL_STATUS = {"openai": 500, "anthropic": 529, "gemini": 429}
API_ERROR = {"openai": '"type":"server_error"', "anthropic": '"type":"overloaded_error"',
             "gemini": '"status":"RESOURCE_EXHAUSTED"'}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("wire", WIRES)
async def test_http_failures_are_recorded_per_hypothesis(wire, stream):
    status = FAIL_STATUS[wire]
    flaky = f"heavy-simulated@fail_rate=1,fail_status={status}"
    h, app = sim_heavy(wire, SimConfig(accuracy=1.0), model=["heavy-simulated", flaky], n=4, strategy="vote",
                       stream=stream, retry=NO_RETRY)
    r = await h.ask("What is 8 * 7?")
    await h.aclose()
    assert r.answer == "56"
    failed = [x for x in r.hypotheses if not x.ok]
    assert [x.index for x in failed] == [1, 3] and app.stats.failures == 2
    for x in failed:
        assert x.error_type == "ProviderHTTPError" and x.request_id
        assert f"status {status}" in x.error and "simulated failure" in x.error
        assert f"{wire}:{flaky}" in x.error and API_ERROR[wire] in x.error


RETRY_STATUS = {"openai": 503, "anthropic": 529, "gemini": 503}


@pytest.mark.parametrize("wire", WIRES)
async def test_transient_failures_are_retried_then_fail_the_quorum(wire):
    h, app = sim_heavy(wire, model=f"heavy-simulated@fail_rate=1,fail_status={RETRY_STATUS[wire]}", n=2,
                       strategy="vote", retry=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001))
    with pytest.raises(QuorumError) as info:
        await h.ask("What is 2 + 2?")
    await h.aclose()
    assert app.stats.failures == 4  # two hypotheses, two attempts each: the error was marked retryable
    assert all(f"status {RETRY_STATUS[wire]}" in (f.error or "") for f in info.value.failures)


@pytest.mark.parametrize("wire", WIRES)
async def test_error_inside_a_200_stream_fails_the_hypothesis(wire):
    broken = "heavy-simulated@fail_rate=1,fail_status=529,fail_in_stream=true"
    h, _ = sim_heavy(wire, SimConfig(accuracy=1.0), model=["heavy-simulated", broken], n=2, strategy="vote",
                     stream=True, retry=NO_RETRY)
    r = await h.ask("What is 9 * 9?")
    await h.aclose()
    assert r.answer == "81"
    [failed] = [x for x in r.hypotheses if not x.ok]
    assert failed.model == f"{wire}:{broken}" and "inside stream" in failed.error
    if wire == "anthropic":
        assert "overloaded_error" in failed.error


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("block,needle", [("SAFETY", "promptFeedback.blockReason SAFETY"),
                                          ("finish:SAFETY", "finishReason SAFETY"),
                                          ("finish:RECITATION", "finishReason RECITATION")])
async def test_gemini_safety_block_is_a_failed_hypothesis(block, needle, stream):
    blocked = f"heavy-simulated@gemini_block={block}"
    h, _ = sim_heavy("gemini", SimConfig(accuracy=1.0), model=["heavy-simulated", blocked], n=4, strategy="vote",
                     stream=stream)
    r = await h.ask("What is 3 * 5?")
    await h.aclose()
    assert r.answer == "15"
    failed = [x for x in r.hypotheses if not x.ok]
    assert len(failed) == 2
    for x in failed:
        assert x.error_type == "ProviderResponseError" and needle in x.error and x.model == f"gemini:{blocked}"


# --- the simulator's own shapes, seen raw ------------------------------------------------------------


def raw_client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim.test", timeout=30)


def events_of(text):
    """(event name, data) of each server-sent event in *text*."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields.get("event"), fields["data"]))
    return out


async def test_sim_speaks_anthropic():
    body = {"model": "heavy-simulated@accuracy=1", "max_tokens": 400,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is 6 * 7?"}]}]}
    async with raw_client(SimulatedLLM()) as c:
        r = await c.post("/v1/messages", json=body)
        assert r.status_code == 200 and r.headers["request-id"].startswith("req_")
        msg = r.json()
        assert msg["type"] == "message" and msg["role"] == "assistant" and "simulated" in msg["model"]
        assert msg["content"][0]["type"] == "text" and msg["content"][0]["text"].endswith("The answer is 42.")
        assert msg["stop_reason"] == "end_turn" and msg["usage"]["output_tokens"] > 0
        cut = (await c.post("/v1/messages", json={**body, "stop_sequences": ["The answer"]})).json()
        assert (cut["stop_reason"], cut["stop_sequence"]) == ("stop_sequence", "The answer")
        short = (await c.post("/v1/messages", json={**body, "max_tokens": 3})).json()
        assert short["stop_reason"] == "max_tokens" and short["usage"]["output_tokens"] == 3
        r = await c.post("/v1/messages", json={**body, "stream": True})
        names = [name for name, _ in events_of(r.text)]
        assert names[:3] == ["message_start", "content_block_start", "ping"]
        assert set(names[3:-3]) == {"content_block_delta"}
        assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
        for bad, needle in [({"seed": 1}, "seed"), ({"max_tokens": None}, "max_tokens"),
                            ({"temperature": 1.5}, "temperature")]:
            r = await c.post("/v1/messages", json={k: v for k, v in {**body, **bad}.items() if v is not None})
            assert r.status_code == 400 and r.json()["type"] == "error"
            assert r.json()["error"]["type"] == "invalid_request_error" and needle in r.json()["error"]["message"]
        r = await c.get("/v1/messages")
        assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"


async def test_sim_speaks_gemini():
    body = {"contents": [{"role": "user", "parts": [{"text": "What is 6 * 7?"}]}], "generationConfig": {"seed": 5}}
    url = "/v1beta/models/heavy-simulated@accuracy=1:generateContent"
    async with raw_client(SimulatedLLM()) as c:
        data = (await c.post(url, json=body)).json()
        cand = data["candidates"][0]
        assert cand["content"]["role"] == "model" and cand["content"]["parts"][0]["text"].endswith("The answer is 42.")
        assert cand["finishReason"] == "STOP" and "simulated" in data["modelVersion"] and data["responseId"]
        assert data["usageMetadata"]["candidatesTokenCount"] > 0
        two = (await c.post(url, json={**body, "generationConfig": {"candidateCount": 2, "maxOutputTokens": 2}})).json()
        assert [x["finishReason"] for x in two["candidates"]] == ["MAX_TOKENS", "MAX_TOKENS"]
        r = await c.post(url.replace(":generateContent", ":streamGenerateContent") + "?alt=sse", json=body)
        chunks = [json.loads(data) for _, data in events_of(r.text)]
        assert all("finishReason" not in ch["candidates"][0] for ch in chunks[:-1])
        assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
        assert "".join(ch["candidates"][0]["content"]["parts"][0]["text"] for ch in chunks) == cand["content"]["parts"][0]["text"]
        r = await c.post(url, json={**body, "generationConfig": {"seed": 1, "n": 2}})
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert 'Unknown name "n"' in r.json()["error"]["message"] and r.json()["error"]["code"] == 400
        r = await c.post(url.replace(":generateContent", ":streamGenerateContent"), json=body)
        assert r.status_code == 400 and "alt=sse" in r.json()["error"]["message"]
        r = await c.post(url.replace(":generateContent", ":embedContent"), json=body)
        assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
        r = await c.post("/v1beta/models/heavy-simulated@acuracy=1:generateContent", json=body)
        assert r.status_code == 400 and "acuracy" in r.json()["error"]["message"]


# --- presets, keys and the factory -------------------------------------------------------------------


def test_presets_resolve_roots_keys_and_base_url_env():
    a = parse_spec("anthropic:claude-x", env={"ANTHROPIC_API_KEY": "sk-ant-abcdefgh"})
    assert (a.preset.wire, a.base_url, a.api_key, a.model) == ("anthropic", "https://api.anthropic.com",
                                                               "sk-ant-abcdefgh", "claude-x")
    g = parse_spec("gemini:gemini-y", env={"GEMINI_API_KEY": "g-key-1", "GOOGLE_API_KEY": "g-key-2"})
    assert (g.preset.wire, g.base_url, g.api_key) == ("gemini", "https://generativelanguage.googleapis.com", "g-key-1")
    assert parse_spec("gemini:m", env={"GOOGLE_API_KEY": "g-key-2"}).api_key == "g-key-2"
    assert parse_spec("anthropic:m", env={"ANTHROPIC_BASE_URL": "http://proxy.test/"}).base_url == "http://proxy.test"
    assert parse_spec("gemini:m", env={"GEMINI_BASE_URL": "http://proxy.test"}).base_url == "http://proxy.test"


@pytest.mark.parametrize("spec,var", [("anthropic:claude-x", "ANTHROPIC_API_KEY"), ("gemini:gemini-y", "GEMINI_API_KEY")])
def test_missing_key_names_the_variable(spec, var):
    with pytest.raises(MissingKeyError) as info:
        parse_spec(spec, env={})
    assert info.value.env_var == var and var in str(info.value)


async def test_factory_builds_each_wire_with_the_injected_transport():
    transport = httpx.MockTransport(lambda r: httpx.Response(500))
    expected = {"openai": OpenAIProvider, "anthropic": AnthropicProvider, "gemini": GeminiProvider}
    for wire, cls in expected.items():
        p = build_provider(parse_spec(f"{wire}:m", base_url=BASE[wire]), transport=transport)
        assert type(p) is Adapt and p.name == wire, "each wire under the profile adapter (heavy.providers.adapt)"
        inner = p.inner.wires["openai"] if wire == "openai" else p.inner  # OpenAI's endpoint routes two wires
        assert type(inner) is cls and inner.base_url == BASE[wire]
        await p.aclose()
    routed = build_provider(parse_spec("openai:m", base_url=BASE["openai"]), transport=transport).inner
    assert type(routed.wires["responses"]) is ResponsesProvider and routed.wires["responses"].http is \
        routed.wires["openai"].http, "the Responses wire shares the endpoint's connections"
    plain = build_provider(parse_spec("vllm:m", base_url=BASE["openai"]), transport=transport)
    assert list(plain.inner.wires) == ["openai"], "another vendor's server has no Responses API"
    assert type(build_provider(parse_spec("sim")).inner).__name__ == "OpenAIProvider", "the sim wire is registered"


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("wire", ["anthropic", "gemini"])
async def test_contract_urls_and_key_headers_from_the_environment(wire, stream, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-contract-0123456789")
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaContract0123456789abcdefghijklmno")
    sim = httpx.ASGITransport(app=SimulatedLLM(SimConfig(accuracy=1.0)))
    seen = []

    async def spy(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), dict(request.headers)))
        return await sim.handle_async_request(request)

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            await request.aread()
            return await spy(request)

    # The preset's own *_BASE_URL variable is where its environment key may go (an explicit base_url= on
    # another host gets no environment key: tests/test_keys.py).
    monkeypatch.setenv(f"{wire.upper()}_BASE_URL", "http://root.test")
    h = Heavy(model=f"{wire}:heavy-simulated@accuracy=1", transport=Spy(), n=1, strategy="vote", stream=stream)
    r = await h.ask("What is 5 * 5?")
    await h.aclose()
    assert r.answer == "25"
    [(url, headers)] = seen
    if wire == "anthropic":
        assert url == "http://root.test/v1/messages"
        assert headers["x-api-key"] == "sk-ant-contract-0123456789" and headers["anthropic-version"] == "2023-06-01"
    else:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        assert url == f"http://root.test/v1beta/models/heavy-simulated@accuracy=1:{method}"
        assert headers["x-goog-api-key"] == "AIzaContract0123456789abcdefghijklmno"


# --- the CLI against a real `heavy sim` server on 127.0.0.1 ------------------------------------------


@pytest.fixture(scope="module")
def sim_root():
    with running_sim("--accuracy", "1", "--latency", "0.2") as root:
        yield root


CLI_KEYS = {"anthropic": ("ANTHROPIC_API_KEY", "sk-ant-cli-contract-0123456789"),
            "gemini": ("GEMINI_API_KEY", "AIzaCliContract0123456789abcdefghijklm")}


@pytest.mark.parametrize("wire", ["anthropic", "gemini"])
def test_cli_contract_against_a_real_server(wire, sim_root):
    """``-m anthropic:MODEL --base-url ROOT`` talks to ROOT/v1/messages; ``-m gemini:MODEL --base-url ROOT``
    to ROOT/v1beta/models/MODEL:generateContent (or :streamGenerateContent?alt=sse with the live view);
    the simulator serves each wire only at its own path, so a right answer proves the URL."""
    var, key = CLI_KEYS[wire]
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env[var] = key
    for extra in ([], ["--live"]):  # --live streams every call
        out = subprocess.run(
            [sys.executable, "-m", "heavy.cli", "ask", "-m", f"{wire}:heavy-simulated", "--base-url", sim_root,
             "-n", "4", "-s", "vote", *extra, "What is 17 * 3?"], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "51\n" and key not in out.stderr
