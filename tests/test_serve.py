"""`heavy serve`: the OpenAI-compatible proxy.

In-process tests drive the ASGI app through heavy's StreamingASGITransport, with the upstream being the
simulated LLM in-process (injected through the app's ``heavy_factory``). The end-to-end tests run real
uvicorn servers on 127.0.0.1: `heavy serve` as a subprocess in front of a `heavy sim` subprocess, driven by
the real `openai` client; and both servers in threads, to read the simulator's counters and prove that a
client disconnect closes the upstream requests.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
import time
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest

from heavy import Heavy
from heavy.sim.transport import StreamingASGITransport
from heavy.serve import create_app, is_loopback
from heavy.serve.app import ServeSettings
from heavy.sim import SimConfig, SimulatedLLM

from helpers import free_port, running_heavy, running_sim

MODEL = "openai:heavy-simulated"
Q = "What is 17 * 24 + 3?"  # 411


def user(text: str = Q) -> list[dict]:
    return [{"role": "user", "content": text}]


class Recorder:
    """ASGI middleware in front of the simulator: records each upstream request's JSON body and headers."""

    def __init__(self, app):
        self.app = app
        self.bodies: list[dict] = []
        self.headers: list[dict] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        parts: list[bytes] = []

        async def recording():
            message = await receive()
            if message["type"] == "http.request":
                parts.append(message.get("body", b""))
                if not message.get("more_body"):
                    self.bodies.append(json.loads(b"".join(parts) or b"{}"))
            return message

        await self.app(scope, recording, send)

    def chats(self) -> list[dict]:
        return [b for b in self.bodies if "messages" in b]


@asynccontextmanager
async def proxy(monkeypatch, sim: SimConfig | None = None, *, settings: ServeSettings | None = None,
                defaults: dict | None = None, headers: dict | None = None):
    """(client, app, simulator, recorder): the proxy in-process over an in-process simulator."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://sim.test/v1")  # the server's environment, as in the CLI
    llm = SimulatedLLM(sim or SimConfig(seed=1))
    rec = Recorder(llm)
    app = create_app({"model": MODEL} if defaults is None else defaults, settings=settings,
                     heavy_factory=functools.partial(Heavy, transport=StreamingASGITransport(rec)))
    client = httpx.AsyncClient(transport=StreamingASGITransport(app), base_url="http://heavy.test/v1",
                               headers=headers, timeout=30)
    try:
        yield client, app, llm, rec
    finally:
        await client.aclose()
        await app.state.heavy.aclose()


def sse_events(lines: list[str]) -> list:
    out = []
    for line in lines:
        if line.startswith("data: "):
            data = line[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def deltas(events: list, key: str) -> str:
    return "".join(e["choices"][0]["delta"].get(key) or "" for e in events
                   if isinstance(e, dict) and e.get("choices"))


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert "Traceback" not in r.text
    if code is not None:
        assert err["code"] == code, err
    return err


# --- in-process ---------------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_non_streaming_vote_answers_with_usage_and_the_decision(monkeypatch):
    async with proxy(monkeypatch, SimConfig(accuracy=0.8, seed=3)) as (client, _, llm, rec):
        r = await client.post("/chat/completions", json={
            "model": f"heavy/vote/{MODEL}", "messages": user(), "n": 5, "seed": 7})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "chat.completion" and body["model"] == f"heavy/vote/{MODEL}"
        choice = body["choices"][0]
        assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
        h = body["heavy"]
        assert h["strategy"] == "vote" and h["method"] == "vote" and h["path"] == ["sample", "vote"]
        assert h["answer"] == "411" and h["votes"]["411"] == max(h["votes"].values())
        assert h["winner"] is not None and "agree on '411'" in h["rationale"]
        assert len(h["hypotheses"]) == 5 and "411" in choice["message"]["content"]
        assert len(rec.chats()) == 5 and llm.stats.chat_requests == 5
        usage = body["usage"]
        assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.anyio
async def test_standard_fields_reach_every_hypothesis(monkeypatch):
    async with proxy(monkeypatch) as (client, _, _llm, rec):
        r = await client.post("/chat/completions", json={
            "model": f"heavy/vote/{MODEL}", "messages": user(), "n": 3, "temperature": 0.3, "max_tokens": 40,
            "seed": 100, "stop": ["STOP"], "top_p": 0.9, "user": "someone", "metadata": {"a": "b"},
            "stream_options": None, "logprobs": False, "frequency_penalty": 0})
        assert r.status_code == 200, r.text
        bodies = rec.chats()
        assert len(bodies) == 3
        assert sorted(b["seed"] for b in bodies) == [100, 101, 102]
        for b in bodies:
            assert b["temperature"] == 0.3 and b["top_p"] == 0.9 and b["stop"] == ["STOP"]
            assert b.get("max_completion_tokens", b.get("max_tokens")) == 40
            assert "user" not in b and "metadata" not in b  # ignored fields are not forwarded


@pytest.mark.anyio
async def test_max_completion_tokens_and_seed_reproducibility(monkeypatch):
    async with proxy(monkeypatch, SimConfig(accuracy=0.5, seed=2)) as (client, _, _llm, rec):
        body = {"model": f"heavy/vote/{MODEL}", "messages": user(), "n": 4, "seed": 11, "max_completion_tokens": 30}
        a = (await client.post("/chat/completions", json=body)).json()
        b = (await client.post("/chat/completions", json=body)).json()
        assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
        assert a["heavy"]["votes"] == b["heavy"]["votes"]
        assert all(x.get("max_completion_tokens", x.get("max_tokens")) == 30 for x in rec.chats())


@pytest.mark.anyio
async def test_the_whole_conversation_goes_to_every_hypothesis(monkeypatch):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is 6 * 7?"},
                {"role": "assistant", "content": "42", "refusal": None},
                {"role": "user", "content": Q}]
    async with proxy(monkeypatch) as (client, _, _llm, rec):
        r = await client.post("/chat/completions", json={"model": f"heavy/vote/{MODEL}", "messages": messages,
                                                          "n": 3})
        assert r.status_code == 200, r.text
        for b in rec.chats():
            assert [(m["role"], m["content"]) for m in b["messages"]] == [
                (m["role"], m["content"]) for m in messages]
        assert r.json()["heavy"]["answer"] == "411"


@pytest.mark.anyio
async def test_the_heavy_object_selects_n_strategy_models_aggregator_and_options(monkeypatch):
    allowed = ServeSettings(allow_models=[f"{MODEL}@*"])  # the operator lets clients name these models
    async with proxy(monkeypatch, SimConfig(accuracy=0.6, seed=4), settings=allowed) as (client, _, llm, rec):
        r = await client.post("/chat/completions", json={
            "model": "heavy", "messages": user(),
            "heavy": {"n": 3, "strategy": "judge", "models": [f"{MODEL}@accuracy=0.9"],
                      "aggregator": f"{MODEL}@judge_accuracy=1", "options": {"shuffle": False}}})
        assert r.status_code == 200, r.text
        h = r.json()["heavy"]
        assert h["strategy"] == "judge" and len(h["hypotheses"]) == 3
        assert {x["model"] for x in h["hypotheses"]} == {f"{MODEL}@accuracy=0.9"}
        assert llm.stats.judge_requests == 1
        assert rec.chats()[-1]["model"] == "heavy-simulated@judge_accuracy=1"


@pytest.mark.anyio
async def test_tools_are_the_operators_to_enable_and_a_request_may_only_narrow_them(monkeypatch):
    weak = f"{MODEL}@accuracy=0"  # never right on its own; right with the interpreter
    async with proxy(monkeypatch, defaults={"model": weak, "tools": "python"}) as (client, _, _, _):
        body = {"model": "heavy/vote", "messages": user(), "n": 2}
        r = await client.post("/chat/completions", json=body)
        assert r.status_code == 200, r.text
        h = r.json()["heavy"]
        assert h["answer"] == "411" and all(x["tool_steps"] >= 1 for x in h["hypotheses"])
        r = await client.post("/chat/completions", json={**body, "heavy": {"tools": []}})
        assert r.status_code == 200 and r.json()["heavy"]["answer"] != "411"
        assert all(x["tool_steps"] == 0 for x in r.json()["heavy"]["hypotheses"])
        err = assert_openai_error(await client.post("/chat/completions", json={**body, "heavy": {"tools": [
            "python", "web_search"]}}), 400, "invalid_value")
        assert err["param"] == "heavy.tools" and "heavy serve --tools python,web_search" in err["message"]
        # a client's own tool beside the server's: the server's still runs, the client's is only offered
        r = await client.post("/chat/completions", json={**body, "tools": [
            {"type": "function", "function": {"name": "f"}}]})
        assert r.status_code == 200 and r.json()["heavy"]["answer"] == "411", r.text
        assert r.json()["choices"][0]["finish_reason"] == "stop"
        err = assert_openai_error(await client.post("/chat/completions", json={**body, "tools": [
            {"type": "function", "function": {"name": "python"}}]}), 400, "tool_name_clash")
        assert err["param"] == "tools" and "'python'" in err["message"] and "heavy serve --tools" in err["message"]
        r = await client.post("/chat/completions", json={**body, "heavy": {"tools": []}, "tools": [
            {"type": "function", "function": {"name": "python"}}]})
        assert r.status_code == 200, "with the server's python left out, a client tool may be named python"
    async with proxy(monkeypatch, defaults={"model": weak}) as (client, _, _, _):
        err = assert_openai_error(await client.post("/chat/completions", json={
            "model": "heavy", "messages": user(), "heavy": {"tools": ["python"]}}), 400, "invalid_value")
        assert "enables no tools" in err["message"]


@pytest.mark.anyio
async def test_model_name_with_colons_slashes_and_at_reaches_the_upstream(monkeypatch):
    allowed = ServeSettings(allow_models=[f"{MODEL}@*", "openai:org/*"])
    async with proxy(monkeypatch, settings=allowed) as (client, _, _llm, rec):
        name = f"heavy/vote/{MODEL}@accuracy=1,latency=0"
        r = await client.post("/chat/completions", json={"model": name, "messages": user(), "n": 2})
        assert r.status_code == 200, r.text
        assert {b["model"] for b in rec.chats()} == {"heavy-simulated@accuracy=1,latency=0"}
        r = await client.post("/chat/completions", json={"model": "heavy/vote/openai:org/some-model:v1",
                                                          "messages": user(), "n": 1})
        assert r.status_code == 200, r.text
        assert rec.chats()[-1]["model"] == "org/some-model:v1"


@pytest.mark.anyio
async def test_streaming_shows_progress_then_streams_the_synthesis(monkeypatch):
    cfg = SimConfig(accuracy=0.5, latency=0.05, tokens_per_second=400, seed=5)
    async with proxy(monkeypatch, cfg) as (client, _, llm, _rec):
        async with client.stream("POST", "/chat/completions", json={
                "model": f"heavy/synthesize/{MODEL}", "messages": user(), "n": 4, "stream": True,
                "stream_options": {"include_usage": True}}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in r.aiter_lines()]
    events = sse_events(lines)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    reasoning = deltas(chunks, "reasoning_content")
    assert reasoning.startswith(f"sampling 4 hypotheses from {MODEL}\n")
    assert reasoning.count("done: answer") == 4 and "hypothesis 4/4 done" in reasoning
    assert f"synthesize: {MODEL} writes one answer from 4 candidates" in reasoning
    content_chunks = [c for c in chunks if c.get("choices") and c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) > 3, "the synthesis is streamed as the aggregator writes it"
    first_content = chunks.index(content_chunks[0])
    last_reasoning = max(i for i, c in enumerate(chunks) if c.get("choices")
                         and c["choices"][0]["delta"].get("reasoning_content"))
    assert last_reasoning < first_content, "progress first, then the answer"
    final = [c for c in chunks if c.get("choices") and c["choices"][0]["finish_reason"]]
    assert len(final) == 1 and final[0]["choices"][0]["finish_reason"] == "stop"
    assert final[0]["heavy"]["method"] == "synthesize"
    assert deltas(chunks, "content") == "".join(c["choices"][0]["delta"]["content"] for c in content_chunks)
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    assert all(c.get("usage", "missing") is None for c in chunks[:-1]), "usage: null until the last chunk"
    assert llm.stats.synthesize_requests == 1


@pytest.mark.anyio
async def test_streaming_a_selection_sends_the_tally_then_the_answer_at_once(monkeypatch):
    async with proxy(monkeypatch, SimConfig(accuracy=1.0, seed=6)) as (client, _, _llm, _rec):
        async with client.stream("POST", "/chat/completions", json={
                "model": f"heavy/vote/{MODEL}", "messages": user(), "n": 3, "stream": True}) as r:
            lines = [line async for line in r.aiter_lines()]
    chunks = [e for e in sse_events(lines) if e != "[DONE]"]
    reasoning = deltas(chunks, "reasoning_content")
    assert "vote: 411 ×3\n" in reasoning and "decided by vote: 3 of 3 answers agree on '411'" in reasoning
    content = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    assert len(content) == 1 and "411" in content[0]["choices"][0]["delta"]["content"]
    assert all("usage" not in c for c in chunks), "no usage fields unless stream_options.include_usage"


@pytest.mark.anyio
async def test_every_request_runs_in_the_servers_one_session(monkeypatch):
    async with proxy(monkeypatch) as (client, app, _llm, _rec):
        session = app.state.heavy.session
        for body in ({"heavy": {"strategy": "vote"}}, {"heavy": {"strategy": "judge"}}, {"temperature": 0.1},
                     {"temperature": 0.9, "seed": 4}):
            r = await client.post("/chat/completions", json={"model": "heavy", "messages": user(), "n": 2, **body})
            assert r.status_code == 200, r.text
        assert app.state.heavy.session is session and len(session._stacks) == 1, \
            "one provider stack for the endpoint, whatever each request sets"


@pytest.mark.anyio
async def test_bad_input_is_answered_in_openai_shape_and_the_server_keeps_serving(monkeypatch):
    settings = ServeSettings(max_body_bytes=2048, max_n=16, allow_models=["*"])
    async with proxy(monkeypatch, settings=settings) as (client, _, llm, _rec):
        post = functools.partial(client.post, "/chat/completions")
        ok = {"model": "heavy", "messages": user()}
        assert_openai_error(await post(content=b"{not json"), 400, "invalid_json")
        assert_openai_error(await post(json=[1, 2]), 400, "invalid_json")
        err = assert_openai_error(await post(json={**ok, "n": "3"}), 400, "invalid_value")
        assert err["param"] == "n"
        assert_openai_error(await post(json={**ok, "temperature": 7}), 400, "invalid_value")
        assert_openai_error(await post(json={**ok, "stream": "yes"}), 400, "invalid_value")
        assert_openai_error(await post(json={"model": "heavy"}), 400, "invalid_value")
        assert_openai_error(await post(json={**ok, "messages": []}), 400, "invalid_value")
        assert_openai_error(await post(json={**ok, "messages": [{"role": "wizard", "content": "x"}]}), 400)
        err = assert_openai_error(await post(json={**ok, "foo": 1, "bar": 2}), 400, "unknown_parameter")
        assert "'foo'" in err["message"] and "'bar'" in err["message"] and err["param"] == "foo"
        err = assert_openai_error(await post(json={**ok, "tools": [{"type": "function"}]}), 400, "invalid_value")
        assert err["param"] == "tools.0" and "only" in err["message"]
        err = assert_openai_error(await post(json={**ok, "functions": [{"name": "f"}]}), 400, "unsupported_parameter")
        assert "send tools" in err["message"]
        assert_openai_error(await post(json={**ok, "response_format": {"type": "json_object"}}), 400)
        err = assert_openai_error(await post(json={**ok, "heavy": {"n": 2, "nope": 1}}), 400)
        assert "heavy.nope" in err["message"]
        err = assert_openai_error(await post(json={**ok, "heavy": {"strategy": "nope"}}), 400)
        assert err["param"] == "heavy.strategy" and "registered" in err["message"]
        err = assert_openai_error(await post(json={**ok, "heavy": {"strategy": "vote", "options": {"x": 1}}}),
                                  400)
        assert err["param"] == "heavy.options" and "early_stop" in err["message"]
        assert_openai_error(await post(json={**ok, "n": 99}), 400)
        assert_openai_error(await post(json={**ok, "n": 2, "heavy": {"n": 3}}), 400, "conflicting_parameters")
        assert_openai_error(await post(json={**ok, "heavy": {"models": ["nope:x"]}}), 400)
        assert_openai_error(await post(json={**ok, "model": "gpt-4.1"}), 404, "model_not_found")
        assert_openai_error(await post(json={**ok, "model": "heavy/nope"}), 404, "model_not_found")
        assert_openai_error(await post(json={**ok, "model": "heavy/vote/nope:x"}), 404, "model_not_found")
        err = assert_openai_error(await post(json={**ok, "model": "heavy/vote/xai:grok-4"}), 400,
                                  "upstream_not_configured")
        assert "XAI_API_KEY" in err["message"]
        big = {**ok, "messages": user("x" * 5000)}
        assert_openai_error(await post(json=big), 413, "request_too_large")

        async def chunked():  # no Content-Length: the limit is enforced while reading
            for _ in range(5):
                yield b" " * 1000

        assert_openai_error(await post(content=chunked()), 413, "request_too_large")
        assert_openai_error(await client.get("/nowhere"), 404, "unknown_url")
        assert_openai_error(await client.get("/chat/completions"), 405, "method_not_allowed")
        assert_openai_error(await client.get("/models/gpt-4"), 404, "model_not_found")
        assert llm.stats.chat_requests == 0, "no bad request reached the upstream"
        r = await post(json={**ok, "n": 2})
        assert r.status_code == 200 and r.json()["heavy"]["answer"]


@pytest.mark.anyio
async def test_models_and_health(monkeypatch):
    async with proxy(monkeypatch) as (client, _, _llm, _rec):
        ids = [m["id"] for m in (await client.get("/models")).json()["data"]]
        assert ids[0] == "heavy" and "heavy/vote" in ids and f"heavy/judge/{MODEL}" in ids
        r = await client.get(f"/models/heavy/vote/{MODEL}")
        assert r.status_code == 200 and r.json()["id"] == f"heavy/vote/{MODEL}"
        r = await client.get("http://heavy.test/health")
        assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.anyio
async def test_a_server_key_is_required_and_compared(monkeypatch):
    settings = ServeSettings(api_key="server-token-123")
    async with proxy(monkeypatch, settings=settings) as (client, _, llm, _rec):
        body = {"model": "heavy", "messages": user(), "n": 2}
        err = assert_openai_error(await client.post("/chat/completions", json=body), 401, "missing_api_key")
        assert err["type"] == "authentication_error"
        r = await client.post("/chat/completions", json=body, headers={"Authorization": "Bearer wrong-token"})
        assert_openai_error(r, 401, "invalid_api_key")
        assert r.headers["www-authenticate"] == "Bearer" and "server-token-123" not in r.text
        assert_openai_error(await client.get("/models", headers={"Authorization": "Basic x"}), 401)
        assert llm.stats.chat_requests == 0
        assert (await client.get("http://heavy.test/health")).status_code == 200  # health stays open
        r = await client.post("/chat/completions", json=body, headers={"Authorization": "Bearer server-token-123"})
        assert r.status_code == 200, r.text


@pytest.mark.anyio
async def test_upstream_keys_come_from_the_server_and_are_never_echoed(monkeypatch):
    secret = "sk-server-secret-abcdef123456"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    cfg = SimConfig(fail_rate=1.0, fail_status=401, seed=1)
    async with proxy(monkeypatch, cfg, headers={"Authorization": "Bearer client-token-xyz"}) as (
            client, _, _llm, rec):
        r = await client.post("/chat/completions", json={"model": f"heavy/vote/{MODEL}", "messages": user(),
                                                          "n": 2})
        err = assert_openai_error(r, 502, "upstream_error")
        assert "401" in err["message"] and secret not in r.text and "client-token-xyz" not in r.text
        auth = {h.get("authorization") for h in rec.headers}
        assert auth == {f"Bearer {secret}"}, "the upstream gets the server's key, never the client's token"


@pytest.mark.anyio
async def test_upstream_failures_map_to_502_and_504(monkeypatch):
    allowed = ServeSettings(allow_models=[f"{MODEL}@*"])
    async with proxy(monkeypatch, SimConfig(seed=1), settings=allowed) as (client, _, _llm, _rec):
        r = await client.post("/chat/completions", json={
            "model": f"heavy/vote/{MODEL}@fail_rate=1,fail_status=503", "messages": user(), "n": 2})
        assert_openai_error(r, 502)
        r = await client.post("/chat/completions", json={
            "model": f"heavy/vote/{MODEL}@fail_rate=1,fail_status=400", "messages": user(), "n": 2})
        assert_openai_error(r, 400, "upstream_rejected_request")
    async with proxy(monkeypatch, SimConfig(latency=2.0), defaults={"model": MODEL, "timeout": 0.2}) as (
            client, _, _llm, _rec):
        r = await client.post("/chat/completions", json={"model": "heavy/vote", "messages": user(), "n": 2})
        assert_openai_error(r, 504, "upstream_timeout")
        async with client.stream("POST", "/chat/completions", json={
                "model": "heavy/vote", "messages": user(), "n": 2, "stream": True}) as r:
            assert r.status_code == 200
            events = sse_events([line async for line in r.aiter_lines()])
        assert events[-1]["error"]["code"] == "upstream_timeout" and "[DONE]" not in events
        assert "failed: ProviderTimeout" in deltas(events[:-1], "reasoning_content")


@pytest.mark.anyio
async def test_per_client_concurrency_limit_answers_429(monkeypatch):
    settings = ServeSettings(max_concurrent_per_client=2)
    async with proxy(monkeypatch, SimConfig(latency=0.5), settings=settings) as (client, app, _llm, _rec):
        body = {"model": f"heavy/vote/{MODEL}", "messages": user(), "n": 2}
        first = [asyncio.create_task(client.post("/chat/completions", json=body)) for _ in range(2)]
        await _wait_until(lambda: sum(app.state.heavy.in_flight.values()) == 2)
        r = await client.post("/chat/completions", json=body)
        err = assert_openai_error(r, 429, "too_many_concurrent_requests")
        assert err["type"] == "rate_limit_error" and r.headers["retry-after"] == "1"
        assert [x.status_code for x in await asyncio.gather(*first)] == [200, 200]
        assert (await client.post("/chat/completions", json=body)).status_code == 200
        assert not app.state.heavy.in_flight


class AsgiCall:
    """One POST /v1/chat/completions straight into the ASGI app, with a client that can disconnect at will."""

    def __init__(self, app, body: dict, client: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.app, self.client = app, client
        self.payload = json.dumps(body).encode()
        self.gone = asyncio.Event()
        self.status: int | None = None
        self.body = bytearray()
        self.chunks = 0
        self.first_chunk = asyncio.Event()

    def disconnect(self) -> None:
        self.gone.set()

    async def run(self) -> None:
        sent = False

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.payload, "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                self.body += message.get("body", b"")
                self.chunks += 1
                if b"reasoning_content" in self.body:
                    self.first_chunk.set()
                if not message.get("more_body"):
                    self.gone.set()  # response complete: the connection closes

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/v1/chat/completions", "raw_path":
                 b"/v1/chat/completions", "query_string": b"", "root_path": "", "server": ("heavy.test", 80),
                 "client": self.client, "headers": [(b"content-type", b"application/json"),
                                                    (b"content-length", str(len(self.payload)).encode())]}
        await self.app(scope, receive, send)


async def _wait_until(predicate, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


@pytest.mark.anyio
async def test_a_disconnect_cancels_the_run_and_its_upstream_requests(monkeypatch):
    async with proxy(monkeypatch, SimConfig(latency=30.0)) as (client, app, llm, _rec):
        server = app.state.heavy
        async with client.stream("POST", "/chat/completions", json={
                "model": f"heavy/vote/{MODEL}", "messages": user(), "n": 6, "stream": True}) as r:
            async for line in r.aiter_lines():
                if "sampling 6 hypotheses" in line:
                    break
            await _wait_until(lambda: llm.stats.in_flight == 6)
        took = await _wait_until(lambda: llm.stats.in_flight == 0 and server.runs == 0)
        assert took < 2.0, "the 30 s upstream calls were cancelled, not awaited"
        # non-streaming: the client disconnects while waiting for the answer
        call = AsgiCall(app, {"model": f"heavy/vote/{MODEL}", "messages": user(), "n": 3})
        task = asyncio.create_task(call.run())
        await _wait_until(lambda: llm.stats.in_flight == 3 and server.runs == 1)
        call.disconnect()
        await asyncio.wait_for(task, 2.0)  # the run is cancelled at once, not awaited for 30 s
        assert call.status is None and server.runs == 0 and not server.in_flight
        # (that the upstream connections close too is proven over real sockets below: heavy's in-process
        # transport cannot abandon a request whose response has not started)


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


def test_binding_beyond_loopback_needs_a_key():
    from click.testing import CliRunner

    from heavy.cli import cli

    r = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "1"], env={"HEAVY_SERVER_KEY": ""})
    assert r.exit_code == 1 and "--api-key" in r.output
    r = CliRunner().invoke(cli, ["serve", "--tools", "nosuch", "--port", "1"])
    assert r.exit_code == 1 and "unknown tool 'nosuch'" in r.output and "Traceback" not in r.output


# --- real servers on 127.0.0.1 ----------------------------------------------------------------------


@contextmanager
def heavy_serve(upstream: str, *args: str, key: str | None = None, tmp_path=None):
    """`heavy serve --port P ARGS` as a subprocess whose environment points openai:* at *upstream*."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "OPENAI_BASE_URL"}
    env["OPENAI_BASE_URL"] = f"{upstream}/v1"
    config = tmp_path / "heavy.toml"
    config.write_text("")
    env["HEAVY_CONFIG"] = str(config)  # the developer's own config file stays out of the test
    env.pop("HEAVY_SERVER_KEY", None)
    if key:
        env["HEAVY_SERVER_KEY"] = key
    with running_heavy("serve", "--log-level", "warning", *args, env=env) as base:
        yield base


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A `heavy sim` and a `heavy serve` in front of it (OPENAI_BASE_URL in the server's environment)."""
    with running_sim("--seed", "1") as sim:
        with heavy_serve(sim, "-m", "openai:heavy-simulated", "-n", "4", "--allow-model", "openai:heavy-simulated@*",
                         tmp_path=tmp_path_factory.mktemp("serve")) as base:
            yield base


def test_the_openai_client_non_streaming(served):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{served}/v1", api_key="unused", max_retries=0)
    r = client.chat.completions.create(model="heavy/vote/openai:heavy-simulated@accuracy=1",
                                       messages=[{"role": "user", "content": Q}], n=5, seed=1)
    assert "411" in r.choices[0].message.content and r.choices[0].finish_reason == "stop"
    assert r.model == "heavy/vote/openai:heavy-simulated@accuracy=1"
    assert r.usage.completion_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    heavy = r.model_extra["heavy"]
    assert heavy["method"] == "vote" and heavy["votes"] == {"411": 5}
    r = client.chat.completions.create(model="heavy", messages=[{"role": "user", "content": Q}])
    assert len(r.model_extra["heavy"]["hypotheses"]) == 4, "`-n 4` is the server's default"
    assert [m.id for m in client.models.list()][0] == "heavy"


def test_the_openai_client_streaming_with_usage(served):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{served}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="heavy/synthesize/openai:heavy-simulated", messages=[{"role": "user", "content": Q}], n=3,
        stream=True, stream_options={"include_usage": True})
    reasoning, content, finish, usage = [], [], None, None
    for c in stream:
        if c.usage is not None:
            usage = c.usage
        for ch in c.choices:
            extra = ch.delta.model_extra or {}
            reasoning.append(extra.get("reasoning_content") or getattr(ch.delta, "reasoning_content", None) or "")
            content.append(ch.delta.content or "")
            finish = ch.finish_reason or finish
    text = "".join(reasoning)
    assert "sampling 3 hypotheses" in text and "hypothesis 3/3 done" in text and "synthesize:" in text
    assert "".join(content).strip() and finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_the_openai_client_sees_errors(served):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{served}/v1", api_key="unused", max_retries=0)
    msgs = [{"role": "user", "content": Q}]
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4.1", messages=msgs)
    assert e.value.status_code == 404 and "heavy/<strategy>" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="heavy", messages=msgs, extra_body={"frobnicate": 1})
    assert "frobnicate" in str(e.value)
    failing = "heavy/vote/openai:heavy-simulated@fail_rate=1,fail_status=401"  # the upstream refuses its key
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model=failing, messages=msgs, n=2)
    assert e.value.status_code == 502 and "401" in str(e.value)
    with pytest.raises(openai.APIError) as e:  # after the 200: the error arrives inside the stream
        for _ in client.chat.completions.create(model=failing, messages=msgs, n=2, stream=True):
            pass
    assert "401" in str(e.value)
    r = client.chat.completions.create(model="heavy/vote/openai:heavy-simulated@accuracy=1", messages=msgs, n=2)
    assert "411" in r.choices[0].message.content  # still serving


def test_raw_sse_arrives_while_the_run_is_still_going(served):
    # ~2 s run: 0.3 s to first token at 80 tokens/s for the samples, then a streamed synthesis.
    model = "heavy/synthesize/openai:heavy-simulated@latency=0.3,tokens_per_second=80"
    arrivals: list[tuple[float, dict | str]] = []
    start = time.monotonic()
    with httpx.stream("POST", f"{served}/v1/chat/completions", timeout=30, json={
            "model": model, "messages": [{"role": "user", "content": Q}], "n": 4, "stream": True}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line[6:]
                arrivals.append((time.monotonic() - start, data if data == "[DONE]" else json.loads(data)))
    total = arrivals[-1][0]
    assert arrivals[-1][1] == "[DONE]" and 1.0 < total < 10
    first = arrivals[0][0]
    done = [t for t, e in arrivals if isinstance(e, dict) and "done: answer" in
            (e["choices"][0]["delta"].get("reasoning_content") or "")]
    content = [t for t, e in arrivals if isinstance(e, dict) and e.get("choices")
               and e["choices"][0]["delta"].get("content")]
    assert first < 0.2 * total, f"first chunk at {first:.2f} s of {total:.2f} s"
    assert len(done) == 4 and done[0] < 0.8 * total
    assert len(content) > 3 and content[0] < content[-1] - 0.3, "the synthesis streams over time"


def test_a_server_key_over_real_http(tmp_path):
    openai = pytest.importorskip("openai")
    with running_sim("--seed", "2") as sim, heavy_serve(sim, "-m", "openai:heavy-simulated@accuracy=1", "-n", "2",
                                                        key="s3cret-server-key", tmp_path=tmp_path) as base:
        msgs = [{"role": "user", "content": Q}]
        bad = openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="heavy", messages=msgs)
        good = openai.OpenAI(base_url=f"{base}/v1", api_key="s3cret-server-key", max_retries=0)
        assert "411" in good.chat.completions.create(model="heavy", messages=msgs).choices[0].message.content


@contextmanager
def uvicorn_thread(app):
    """Serve *app* with uvicorn on 127.0.0.1 in a thread (its own event loop); stop it on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.02)
        else:
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_a_disconnect_closes_the_upstream_connections_over_real_sockets(monkeypatch):
    """Both servers real (uvicorn, 127.0.0.1) so the simulator counts the disconnects it really saw."""
    llm = SimulatedLLM(SimConfig(latency=30.0))
    with uvicorn_thread(llm) as upstream:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{upstream}/v1")
        app = create_app({"model": MODEL})
        with uvicorn_thread(app) as base:
            for stream in (True, False):
                before = llm.stats.disconnects
                body = {"model": "heavy/vote", "messages": [{"role": "user", "content": Q}], "n": 5, "stream": stream}
                with pytest.raises(httpx.ReadTimeout) if not stream else _nothing():
                    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=1.5) as r:
                        for line in r.iter_lines():
                            if "sampling 5 hypotheses" in line:
                                break  # leaving the block closes the connection mid-stream
                deadline = time.monotonic() + 5
                while (llm.stats.disconnects < before + 5 or llm.stats.in_flight) and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert llm.stats.disconnects == before + 5 and llm.stats.in_flight == 0, llm.stats
                assert app.state.heavy.runs == 0
            r = httpx.get(f"{base}/health")
            assert r.json() == {"status": "ok", "runs": 0}
            assert len(app.state.heavy.session._stacks) == 1
        assert not app.state.heavy.session._stacks, "the server's shutdown closed its session's connections"


@contextmanager
def _nothing():
    yield


def test_the_listening_socket_sends_small_writes_at_once():
    """A keep-alive client's second request waited ~40 ms for its own delayed ACK while the server held back the
    response's second write (Nagle): the socket must be TCP (so asyncio sets TCP_NODELAY) and say TCP_NODELAY itself,
    which accepted connections inherit. bench/gateway.py measures the latency this saves."""
    import socket

    from heavy.remote.listener import listen

    sock = listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        sock.listen()
        client = socket.create_connection(sock.getsockname())
        accepted, _ = sock.accept()
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        accepted.close()
        client.close()
    finally:
        sock.close()
