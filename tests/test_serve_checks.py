"""`heavy serve`'s request checks are linear, bounded and said in a 400 that names the field.

What OpenAI refuses at once is refused here before any upstream call: more than 128 tools (the operator may
allow more with `--max-tools`), more than 4 stop strings, a tool message that answers no call of the
conversation, a call of a tool the request does not declare, two calls with one id. A tool call's arguments
nested thousands deep are a 400, not a RecursionError; no error echoes a client's value whole.
"""

from __future__ import annotations

import functools
import json
import threading
import time

import httpx
import pytest

from heavy import constants as C
from heavy.serve.app import ServeSettings
from heavy.types import ToolSpec, as_tool_specs

from test_serve import assert_openai_error, proxy, user
from test_serve_guard import _env
from helpers import running_heavy

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def tools(k: int) -> list[dict]:
    return [{"type": "function", "function": {"name": f"tool_{i}", "description": "d", "parameters": {
        "type": "object", "properties": {"x": {"type": "string"}}}}} for i in range(k)]


def conversation(*turns: dict) -> list[dict]:
    return [*user(), *turns]


# --- tools: how many, checked once, linearly -------------------------------------------------------------


def test_as_tool_specs_is_linear_and_names_a_duplicate():
    many = tools(40_000)
    started = time.monotonic()
    assert len(as_tool_specs(many)) == 40_000
    with pytest.raises(ValueError) as caught:
        as_tool_specs([*many, many[123]])
    assert time.monotonic() - started < 5.0, "quadratic: 40,000 tools took 53 s before"
    assert "tool_123" in str(caught.value) and str(caught.value).startswith("tools.40000")
    names = [f"t{i}" for i in range(500)]
    with pytest.raises(ValueError) as caught:  # many duplicates: named, not all of them echoed
        as_tool_specs([{"name": n} for n in names * 2])
    assert len(str(caught.value)) < 300


@pytest.mark.anyio
async def test_more_tools_than_the_limit_are_a_400_and_the_operator_may_raise_it(monkeypatch):
    async with proxy(monkeypatch) as (client, _, llm, _rec):
        post = functools.partial(client.post, "/chat/completions")
        err = assert_openai_error(await post(json={"model": "heavy", "messages": user(),
                                                   "tools": tools(C.SERVE_MAX_TOOLS + 1)}), 400, "too_many_tools")
        assert err["param"] == "tools" and "--max-tools" in err["message"] and "128" in err["message"]
        r = await post(json={"model": "heavy", "messages": user(), "n": 2, "tools": tools(C.SERVE_MAX_TOOLS)})
        assert r.status_code == 200, r.text
        assert llm.stats.chat_requests == 2
    async with proxy(monkeypatch, settings=ServeSettings(max_tools=1000)) as (client, _, _llm, rec):
        r = await client.post("/chat/completions", json={"model": "heavy", "messages": user(), "n": 1,
                                                         "tools": tools(1000)})
        assert r.status_code == 200, r.text
        assert len(rec.chats()[-1]["tools"]) == 1000


@pytest.mark.anyio
async def test_each_tool_is_validated_once_per_request(monkeypatch):
    calls = []
    original = ToolSpec.model_validate.__func__

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return original(cls, *args, **kwargs)

    async with proxy(monkeypatch) as (client, _, _llm, _rec):
        monkeypatch.setattr(ToolSpec, "model_validate", classmethod(counting))
        r = await client.post("/chat/completions", json={"model": "heavy", "messages": user(), "n": 2,
                                                         "tools": tools(3), "tool_choice": "auto"})
        assert r.status_code == 200, r.text
    assert len(calls) == 3, f"{len(calls)} validations of 3 tools"


def test_40000_tools_are_refused_within_a_second_while_health_answers(tmp_path):
    """The contract: 40,000 tools (about 2 MB) in one request are a 400 within a second, and the event loop
    stays free: /health answers all the while (the duplicate check took 53 s with /health blocked before)."""
    many = [{"type": "function", "function": {"name": f"tool_{i}"}} for i in range(40_000)]
    body = json.dumps({"model": "heavy", "messages": user(), "tools": many}).encode()
    assert 1_900_000 < len(body) < C.SERVE_MAX_BODY_BYTES
    with running_heavy("serve", "-m", "sim", "--log-level", "warning", env=_env(tmp_path)) as base:
        result: dict = {}

        def big() -> None:
            started = time.monotonic()
            try:
                r = httpx.post(f"{base}/v1/chat/completions", content=body, timeout=10,
                               headers={"content-type": "application/json"})
                result["status"], result["text"] = r.status_code, r.text
            except httpx.HTTPError as exc:
                result["status"] = repr(exc)
            result["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=big)
        thread.start()
        slowest = 0.0
        while thread.is_alive():
            started = time.monotonic()
            assert httpx.get(f"{base}/health", timeout=5).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
        thread.join()
        assert result["status"] == 400, result
        assert json.loads(result["text"])["error"]["param"] == "tools"
        assert result["seconds"] < 1.0, result["seconds"]
        assert slowest < 1.0, slowest


# --- stop, tool messages, calls --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_careless_conversations_are_a_400_naming_the_field_before_any_upstream_call(monkeypatch):
    answered = {"role": "tool", "tool_call_id": "call_1", "content": "18"}
    other = {**CALL, "id": "call_2", "function": {"name": "get_time", "arguments": "{}"}}
    cases = [
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": ["s"] * 100_000}, "stop"),
        ({"messages": conversation({"role": "tool", "tool_call_id": "call_9", "content": "18"}), "tools": [WEATHER]},
         "messages.1.tool_call_id"),
        ({"messages": conversation(answered, {"role": "assistant", "content": None, "tool_calls": [CALL]}),
          "tools": [WEATHER]}, "messages.1.tool_call_id"),  # the call comes after its answer
        ({"messages": conversation({"role": "assistant", "content": None, "tool_calls": [CALL, other]}, answered),
          "tools": [WEATHER]}, "messages.1.tool_calls.1.function.name"),  # get_time is not declared
        ({"messages": conversation({"role": "assistant", "content": None, "tool_calls": [CALL]}, answered)},
         "messages.1.tool_calls.0.function.name"),  # no tools at all
        ({"messages": conversation({"role": "assistant", "content": None, "tool_calls": [CALL, CALL]}, answered),
          "tools": [WEATHER]}, "messages.1.tool_calls.1.id"),
        ({"messages": conversation({"role": "assistant", "content": None, "tool_calls": [CALL]}, answered,
                                   {"role": "assistant", "content": None, "tool_calls": [CALL]}, answered),
          "tools": [WEATHER]}, "messages.3.tool_calls.0.id"),
        ({"messages": conversation({"role": "assistant", "content": None, "tool_calls": [CALL]}, answered, answered),
          "tools": [WEATHER]}, "messages.3.tool_call_id"),  # one call answered twice
    ]
    async with proxy(monkeypatch) as (client, _, llm, _rec):
        for extra, param in cases:
            started = time.monotonic()
            r = await client.post("/chat/completions", json={"model": "heavy", "messages": user(), **extra})
            err = assert_openai_error(r, 400)
            assert err["param"] == param, (param, err)
            assert len(err["message"]) < 400 and time.monotonic() - started < 2.0, err["message"]
        assert llm.stats.chat_requests == 0, "nothing refused reached the upstream"
        ok = {"model": "heavy", "n": 2, "stop": ["a", "b", "c", "d"], "tools": [WEATHER],
              "messages": conversation({"role": "assistant", "content": None, "tool_calls": [CALL]}, answered)}
        r = await client.post("/chat/completions", json=ok)
        assert r.status_code == 200, r.text


@pytest.mark.anyio
async def test_deep_json_in_a_tool_calls_arguments_is_a_400_not_a_500(monkeypatch, caplog):
    caplog.set_level("DEBUG", logger="heavy.serve")
    async with proxy(monkeypatch) as (client, _, llm, _rec):
        for depth in (5000, 200_000, C.SERVE_MAX_JSON_DEPTH + 1):
            deep = {**CALL, "function": {"name": "get_weather", "arguments": '{"a":' + "[" * depth + "]" * depth + "}"}}
            body = {"model": "heavy", "tools": [WEATHER], "messages": conversation(
                {"role": "assistant", "content": None, "tool_calls": [deep]})}
            err = assert_openai_error(await client.post("/chat/completions", json=body), 400)
            assert err["param"] == "messages.1.tool_calls.0.function.arguments" and "nest" in err["message"], err
        lone = {**CALL, "function": {"name": "get_weather", "arguments": '{"city": "\\ud800"}'}}
        body = {"model": "heavy", "tools": [WEATHER], "messages": conversation(
            {"role": "assistant", "content": None, "tool_calls": [lone]})}
        err = assert_openai_error(await client.post("/chat/completions", json=body), 400)
        assert err["param"] == "messages.1.tool_calls.0.function.arguments"
        assert llm.stats.chat_requests == 0
    assert not [r for r in caplog.records if r.levelno >= 40 or r.exc_info], caplog.text


@pytest.mark.anyio
async def test_no_error_echoes_a_clients_value_whole(monkeypatch):
    huge = "A" * 50_000
    async with proxy(monkeypatch, settings=ServeSettings(max_body_bytes=1 << 20)) as (client, _, _llm, _rec):
        post = functools.partial(client.post, "/chat/completions")
        ok = {"model": "heavy", "messages": user()}
        cases = [
            ({**ok, "tools": [WEATHER], "tool_choice": {"type": "function", "junk": huge}}, "tool_choice"),
            ({**ok, "tools": [WEATHER], "tool_choice": huge}, "tool_choice"),
            ({**ok, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": huge}}},
             "tool_choice"),
            ({**ok, "model": huge}, "model"),
            ({**ok, "model": "heavy/" + huge}, "model"),
            ({**ok, "model": "heavy/vote/openai:" + huge}, "model"),
            ({**ok, huge: 1}, None),
            ({**ok, "heavy": {"strategy": huge}}, "heavy.strategy"),
            ({**ok, "heavy": {"tools": [huge]}}, "heavy.tools"),
            ({**ok, "n": 2, "heavy": {"n": 3, "models": [huge]}}, None),
            ({**ok, "tools": [{"type": "function", "function": {"name": huge}}]}, None),
            ({**ok, "heavy": {"models": [huge]}}, None),
        ]
        for body, param in cases:
            r = await post(json=body)
            assert 400 <= r.status_code < 500, r.text
            err = r.json()["error"]
            assert "A" * 100 not in err["message"] and len(err["message"]) < 600, err["message"][:300]
            if param:
                assert err["param"] == param, err
            assert err["param"] is None or len(err["param"]) < 100, err["param"][:200]
