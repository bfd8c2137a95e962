"""The simulator and a caller's own tools (heavy.sim.clienttools), asked in each wire format's own shape
(hand-written bodies, not heavy's providers): which tools it calls and with what, the turn after a result,
tool_choice, parallel calls, and its pick on an undecided tool vote.
"""

from __future__ import annotations

import json

import httpx
import pytest

from heavy.prompts import parse_verdict
from heavy.sim import SimConfig, SimulatedLLM
from heavy.toolvote import tool_vote_messages
from heavy.types import ClientTools, Message, as_tool_specs

pytestmark = pytest.mark.anyio

QUESTION = "What is the weather in Paris right now, in degrees Fahrenheit?"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CONVERT = {"type": "object", "properties": {"celsius": {"type": "number"}}, "required": ["celsius"]}
OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
                {"type": "function", "function": {"name": "celsius_to_fahrenheit", "parameters": CONVERT}}]
RESULT = json.dumps({"city": "Paris", "temperature_c": 18, "conditions": "sunny"})


def sim(**config) -> httpx.AsyncClient:
    app = SimulatedLLM(SimConfig(**{"accuracy": 1.0, **config}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")


async def openai(client, messages, **extra) -> dict:
    r = await client.post("/v1/chat/completions", json={"model": "heavy-simulated", "messages": messages,
                                                         "tools": OPENAI_TOOLS, **extra})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]


def calls(choice: dict) -> list[tuple[str, dict]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in choice["message"].get("tool_calls") or []]


async def test_openai_wire_a_whole_loop():
    async with sim() as client:
        user = [{"role": "user", "content": QUESTION}]
        first = await openai(client, user, seed=1)
        assert first["finish_reason"] == "tool_calls" and first["message"]["content"] is None
        assert calls(first) == [("get_weather", {"city": "Paris"})], "the conversion waits for a temperature"
        call_id = first["message"]["tool_calls"][0]["id"]
        history = [*user, first["message"], {"role": "tool", "tool_call_id": call_id, "content": RESULT}]
        second = await openai(client, history, seed=1)
        assert calls(second) == [("celsius_to_fahrenheit", {"celsius": 18})]
        history += [second["message"], {"role": "tool", "tool_call_id": second["message"]["tool_calls"][0]["id"],
                                         "content": "64.4"}]
        third = await openai(client, history, seed=1)
        assert third["finish_reason"] == "stop" and "The answer is 64.4." in third["message"]["content"]


async def test_openai_wire_streams_the_calls_in_fragments():
    async with sim() as client:
        r = await client.post("/v1/chat/completions", json={
            "model": "heavy-simulated", "messages": [{"role": "user", "content": QUESTION}], "tools": OPENAI_TOOLS,
            "stream": True})
        pieces, finish = [], None
        for line in r.text.splitlines():
            if line.startswith("data: {"):
                choice = json.loads(line[6:])["choices"][0]
                pieces += choice["delta"].get("tool_calls") or []
                finish = choice["finish_reason"] or finish
        assert pieces[0]["function"]["name"] == "get_weather" and pieces[0]["id"].startswith("call_")
        assert json.loads("".join(p["function"]["arguments"] for p in pieces)) == {"city": "Paris"}
        assert finish == "tool_calls"


async def test_samples_spell_their_arguments_differently():
    async with sim() as client:
        history = [{"role": "user", "content": QUESTION},
                   {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                   {"role": "tool", "tool_call_id": "call_1", "content": RESULT}]
        spellings = set()
        for seed in range(12):
            choice = await openai(client, history, seed=seed)
            spellings.add(choice["message"]["tool_calls"][0]["function"]["arguments"])
        assert spellings == {'{"celsius": 18}', '{"celsius": 18.0}'}, "one call, written two ways"


async def test_a_weak_model_sometimes_answers_without_the_tool():
    async with sim(accuracy=0.0) as client:
        choice = await openai(client, [{"role": "user", "content": QUESTION}], seed=1)
        assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]


async def test_tool_choice_and_parallel_calls():
    both = [{"role": "user", "content": "It is 18 degrees Celsius in Paris: what is the weather, in Fahrenheit?"}]
    async with sim() as client:
        assert sorted(n for n, _ in calls(await openai(client, both))) == ["celsius_to_fahrenheit", "get_weather"]
        assert len(calls(await openai(client, both, parallel_tool_calls=False))) == 1
        choice = await openai(client, both, tool_choice="none")
        assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
        hello = [{"role": "user", "content": "Hello there, how are you?"}]
        assert calls(await openai(client, hello)) == []
        assert [n for n, _ in calls(await openai(client, hello, tool_choice="required"))] == ["get_weather"]
        named = {"type": "function", "function": {"name": "celsius_to_fahrenheit"}}
        assert calls(await openai(client, both, tool_choice=named)) == [("celsius_to_fahrenheit", {"celsius": 18})]


async def test_anthropic_wire():
    tools = [{"name": "get_weather", "input_schema": WEATHER}, {"name": "celsius_to_fahrenheit",
                                                               "input_schema": CONVERT}]

    async def ask(messages, **extra):
        r = await client.post("/v1/messages", json={"model": "heavy-simulated", "max_tokens": 500, "tools": tools,
                                                     "messages": messages, **extra})
        assert r.status_code == 200, r.text
        return r.json()

    async with sim() as client:
        first = await ask([{"role": "user", "content": QUESTION}])
        assert first["stop_reason"] == "tool_use"
        [use] = first["content"]
        assert use["type"] == "tool_use" and use["name"] == "get_weather" and use["input"] == {"city": "Paris"}
        history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": first["content"]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": RESULT}]}]
        second = await ask(history)
        assert [(b["name"], b["input"]) for b in second["content"]] == [("celsius_to_fahrenheit", {"celsius": 18})]
        forced = await ask([{"role": "user", "content": QUESTION}], tool_choice={"type": "tool",
                                                                                 "name": "celsius_to_fahrenheit"})
        assert [b["name"] for b in forced["content"]] == ["celsius_to_fahrenheit"]
        none = await ask([{"role": "user", "content": QUESTION}], tool_choice={"type": "none"})
        assert none["stop_reason"] == "end_turn"


async def test_gemini_wire():
    declarations = [{"functionDeclarations": [{"name": "get_weather", "parameters": WEATHER},
                                              {"name": "celsius_to_fahrenheit", "parameters": CONVERT}]}]

    async def ask(contents, **extra):
        r = await client.post("/v1beta/models/heavy-simulated:generateContent", json={
            "contents": contents, "tools": declarations, **extra})
        assert r.status_code == 200, r.text
        return r.json()["candidates"][0]["content"]["parts"]

    async with sim() as client:
        user = {"role": "user", "parts": [{"text": QUESTION}]}
        [part] = await ask([user])
        assert part["functionCall"]["name"] == "get_weather" and part["functionCall"]["args"] == {"city": "Paris"}
        history = [user, {"role": "model", "parts": [part]}, {"role": "user", "parts": [{"functionResponse": {
            "name": "get_weather", "response": {"result": RESULT}}}]}]
        [part] = await ask(history)
        assert part["functionCall"] == {**part["functionCall"], "name": "celsius_to_fahrenheit"}
        assert part["functionCall"]["args"]["celsius"] == 18
        forced = await ask([user], toolConfig={"functionCallingConfig": {
            "mode": "ANY", "allowedFunctionNames": ["celsius_to_fahrenheit"]}})
        assert [p["functionCall"]["name"] for p in forced] == ["celsius_to_fahrenheit"]
        [text] = await ask([user], toolConfig={"functionCallingConfig": {"mode": "NONE"}})
        assert "functionCall" not in text


async def test_it_picks_on_an_undecided_tool_vote():
    tools = ClientTools(specs=as_tool_specs(OPENAI_TOOLS))
    prompt = tool_vote_messages([Message(role="user", content=QUESTION)], tools, [
        ("A", 'CALL\nget_weather {"city": "London"}'), ("B", 'CALL\nget_weather {"city": "Paris"}'),
        ("C", "ANSWER\nIt is probably sunny.")])
    async with sim() as client:
        r = await client.post("/v1/chat/completions", json={"model": "heavy-simulated", "messages": [
            m.model_dump(include={"role", "content"}) for m in prompt]})
        assert parse_verdict(r.json()["choices"][0]["message"]["content"], ["A", "B", "C"]) == "B"
