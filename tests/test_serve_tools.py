"""An agent's tools through `heavy serve`: the real `openai` client drives a small agent loop (two tools, three
turns: a call, its result, another call, its result, the answer) against a real `heavy serve` process in
front of a real `heavy sim` process, whose simulated model calls the tools in the OpenAI, Anthropic and
Gemini wire formats. Every process runs on 127.0.0.1 and is stopped by PID.

`python tests/test_serve_tools.py docs/agent-loop.md` records the loop's transcript the docs quote.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers, when run as a script

from helpers import running_heavy, running_sim  # noqa: E402

openai = pytest.importorskip("openai")

QUESTION = "What is the weather in Paris right now, in degrees Fahrenheit?"
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "The current weather in a city, temperatures in Celsius.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "celsius_to_fahrenheit", "description": "Convert a temperature from Celsius to Fahrenheit.",
        "parameters": {"type": "object", "properties": {"celsius": {"type": "number"}}, "required": ["celsius"]}}},
]
#: What the agent's own tools return (the client runs them; heavy never does).
WEATHER = {"Paris": {"temperature_c": 18, "conditions": "sunny"}}
KEYS = {"ANTHROPIC_API_KEY": "sk-ant-agent-loop-0123456789", "GEMINI_API_KEY": "AIzaAgentLoop0123456789abcdefghijkl"}


def run_tool(name: str, arguments: dict) -> str:
    if name == "get_weather":
        return json.dumps({"city": arguments["city"], **WEATHER[arguments["city"]]})
    if name == "celsius_to_fahrenheit":
        return f"{arguments['celsius'] * 9 / 5 + 32:g}"
    raise AssertionError(f"the model called an unknown tool {name!r}")


def _streamed(stream) -> tuple[str | None, list[dict], str | None, dict]:
    """(content, tool calls, finish reason, heavy summary) of a streamed reply, assembled as agents do."""
    content, calls, finish, heavy = [], {}, None, {}
    for chunk in stream:
        heavy = (chunk.model_extra or {}).get("heavy") or heavy
        for choice in chunk.choices:
            content.append(choice.delta.content or "")
            for piece in choice.delta.tool_calls or []:
                slot = calls.setdefault(piece.index, {"id": None, "type": "function",
                                                      "function": {"name": "", "arguments": ""}})
                slot["id"] = piece.id or slot["id"]
                if piece.function is not None:
                    slot["function"]["name"] += piece.function.name or ""
                    slot["function"]["arguments"] += piece.function.arguments or ""
            finish = choice.finish_reason or finish
    return "".join(content) or None, [calls[i] for i in sorted(calls)], finish, heavy


def agent_loop(client, model: str, *, stream: bool, seed: int = 1, n: int = 5) -> tuple[list[dict], list[dict]]:
    """The loop an agent framework runs: ask, run the tools called, append their results, ask again, until the
    model answers. Returns the conversation and, per turn, what came back (finish reason, heavy's summary)."""
    messages: list[dict] = [{"role": "user", "content": QUESTION}]
    turns: list[dict] = []
    for turn in range(5):
        request = {"model": model, "messages": messages, "tools": TOOLS, "n": n, "seed": seed + 10 * turn}
        if stream:
            content, calls, finish, heavy = _streamed(client.chat.completions.create(**request, stream=True))
        else:
            r = client.chat.completions.create(**request)
            message = r.choices[0].message
            content, finish, heavy = message.content, r.choices[0].finish_reason, r.model_extra["heavy"]
            calls = [c.model_dump() for c in message.tool_calls or []]
        messages.append({"role": "assistant", "content": content, **({"tool_calls": calls} if calls else {})})
        turns.append({"finish_reason": finish, "method": heavy.get("method"), "votes": heavy.get("votes"),
                      "tool_vote": heavy.get("tool_vote"), "rationale": heavy.get("rationale")})
        if finish != "tool_calls":
            return messages, turns
        for call in calls:
            result = run_tool(call["function"]["name"], json.loads(call["function"]["arguments"]))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    raise AssertionError(f"the loop did not end: {messages}")


@contextmanager
def servers(tmp: Path, *args: str) -> Iterator[str]:
    """`heavy sim` and a `heavy serve` in front of it, every preset's base URL on the simulator."""
    with running_sim("--seed", "1") as sim:
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL")) and
               k != "HEAVY_SERVER_KEY"}
        config = tmp / "heavy.toml"
        config.write_text("")
        env.update(KEYS, HEAVY_CONFIG=str(config), OPENAI_BASE_URL=f"{sim}/v1", ANTHROPIC_BASE_URL=sim,
                   GEMINI_BASE_URL=sim)
        with running_heavy("serve", "--log-level", "warning", "-m", "openai:heavy-simulated", "--allow-model",
                           "*:heavy-simulated@*", *args, env=env) as base:
            yield base


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # The server runs python for its hypotheses too: its own tools keep working beside the client's.
    with servers(tmp_path_factory.mktemp("serve-tools"), "--tools", "python") as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
def test_an_agent_loop_through_heavy_serve(served, wire, stream):
    messages, turns = agent_loop(served, f"heavy/vote/{wire}:heavy-simulated@accuracy=0.9", stream=stream)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert [t["finish_reason"] for t in turns] == ["tool_calls", "tool_calls", "stop"]
    first, second, answer = messages[1], messages[3], messages[5]
    assert first["content"] is None and second["content"] is None
    [weather], [convert] = first["tool_calls"], second["tool_calls"]
    assert weather["id"].startswith("call_") and weather["type"] == "function"
    assert weather["function"]["name"] == "get_weather" and json.loads(weather["function"]["arguments"]) == {
        "city": "Paris"}
    assert convert["function"]["name"] == "celsius_to_fahrenheit"
    assert json.loads(convert["function"]["arguments"]) == {"celsius": 18}  # written 18 or 18.0: one vote
    assert messages[2]["tool_call_id"] == weather["id"] and messages[4]["tool_call_id"] == convert["id"]
    assert "The answer is 64.4" in answer["content"] and "tool_calls" not in answer
    for turn, sig in zip(turns, ['get_weather({"city":"Paris"})', 'celsius_to_fahrenheit({"celsius":18})']):
        vote = turn["tool_vote"]
        assert turn["method"] == "tool-vote" and vote["decided"] == "call"
        assert vote["calls"] > vote["answers"] and turn["votes"] == {sig: vote["calls"]}
    assert turns[2]["method"] == "vote" and turns[2]["tool_vote"]["decided"] == "answer"


def test_contract_tools_are_accepted_and_a_call_finishes_with_tool_calls(served):
    r = served.chat.completions.create(model="heavy/judge/openai:heavy-simulated@accuracy=1", n=3, tools=TOOLS,
                                       messages=[{"role": "user", "content": QUESTION}])
    assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.tool_calls[0].id.startswith("call_")
    r = served.chat.completions.create(model="heavy/vote/openai:heavy-simulated@accuracy=1", n=3, tools=TOOLS,
                                       tool_choice="none", messages=[{"role": "user", "content": "What is 17 * 24 + 3?"}])
    assert r.choices[0].finish_reason == "stop" and "411" in r.choices[0].message.content


def test_tool_choice_and_parallel_calls_reach_the_models(served):
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = served.chat.completions.create(model="heavy/vote/anthropic:heavy-simulated@accuracy=1", n=3, tools=TOOLS,
                                       messages=msgs, tool_choice={"type": "function", "function": {
                                           "name": "celsius_to_fahrenheit"}})
    [call] = r.choices[0].message.tool_calls
    assert call.function.name == "celsius_to_fahrenheit"  # forced, though the question needs the weather
    both = [{"role": "user", "content": "The weather in Paris is 18 degrees: what is that in Fahrenheit, and "
             "what is the weather like?"}]
    r = served.chat.completions.create(model="heavy/vote/gemini:heavy-simulated@accuracy=1", n=3, tools=TOOLS,
                                       messages=both)
    assert sorted(c.function.name for c in r.choices[0].message.tool_calls) == ["celsius_to_fahrenheit",
                                                                                  "get_weather"]
    r = served.chat.completions.create(model="heavy/vote/openai:heavy-simulated@accuracy=1", n=3, tools=TOOLS,
                                       messages=both, parallel_tool_calls=False)
    assert len(r.choices[0].message.tool_calls) == 1


def test_a_client_tool_named_like_a_server_tool_is_a_400_naming_it(served):
    python = {"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as e:
        served.chat.completions.create(model="heavy", messages=[{"role": "user", "content": QUESTION}],
                                       tools=[*TOOLS, python])
    assert e.value.status_code == 400 and "'python'" in str(e.value) and "heavy serve --tools python" in str(e.value)
    # the server's own python still answers arithmetic beside the client's tools
    r = served.chat.completions.create(model="heavy/vote/openai:heavy-simulated@accuracy=0", n=2, tools=TOOLS,
                                       messages=[{"role": "user", "content": "What is 17 * 24 + 3?"}])
    assert r.choices[0].finish_reason == "stop" and "411" in r.choices[0].message.content
    assert all(h["tool_steps"] >= 1 for h in r.model_extra["heavy"]["hypotheses"])


def test_bad_tool_input_is_a_400_naming_the_parameter(served):
    import httpx

    user = {"role": "user", "content": QUESTION}
    bad_call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}
    cases = [({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
             ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
             ({"tool_choice": "required"}, "tool_choice"),
             ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools.0.function.name"),
             ({"messages": [user, {"role": "tool", "content": "18"}]}, "messages.1.tool_call_id"),
             ({"messages": [user, {"role": "assistant", "content": None, "tool_calls": [bad_call]}]},
              "messages.1.tool_calls.0.function.arguments"),
             ({"functions": [{"name": "f"}]}, "functions")]
    for extra, param in cases:
        r = httpx.post(f"{served.base_url}chat/completions", json={"model": "heavy", "messages": [user], **extra})
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (extra, r.text)
        assert "Traceback" not in r.text


def record(out: Path) -> None:
    """Run the loop once (OpenAI wire upstream, not streamed) and write its transcript as Markdown."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch, servers(Path(scratch)) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)
        model = "heavy/vote/openai:heavy-simulated@accuracy=0.9"
        messages, turns = agent_loop(client, model, stream=False)
    lines = ["# An agent loop through `heavy serve`", "",
             "Recorded by `python tests/test_serve_tools.py docs/agent-loop.md`: the `openai` Python client runs a "
             "small agent loop against `heavy serve` in front of `heavy sim` (the simulated model: no key, no "
             f"network, not a real LLM). Each request asks `{model}` with n=5 and the two tools below; heavy "
             "samples five hypotheses, votes between calling and answering and on the calls, and answers with one "
             "assistant message. The client runs the tools itself.", "",
             "## The tools", "", "```json", json.dumps(TOOLS, indent=2), "```", "", "## The conversation", "",
             "What the client sent last (every assistant turn is what heavy answered):", "", "```json",
             json.dumps(messages, indent=2, ensure_ascii=False), "```", "", "## How each turn was decided", "",
             "From the `heavy` field of each response:", "", "```json",
             json.dumps(turns, indent=2, ensure_ascii=False), "```"]
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/agent-loop.md")
    record(target)
    print(f"wrote {target}")
