"""The tool-call vote (heavy.toolvote): canonical signatures, calling vs answering, ties and split calls.

Runs go through a real :class:`heavy.Heavy` whose network edge is an httpx.MockTransport answering in OpenAI's
shape from a script: hypothesis i (seed i) gives the i-th scripted reply, and an aggregator request (the
tool-vote prompt) gets a scripted verdict.
"""

from __future__ import annotations

import json

import httpx
import pytest

from heavy import Heavy
from heavy.errors import OptionsError
from heavy.providers.wrappers import RetryPolicy
from heavy.toolvote import ANSWER_CANDIDATE, TOOL_VOTE_INSTRUCTION, canonical, signature
from heavy.types import ToolCall

pytestmark = pytest.mark.anyio

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                     "request_id": {"type": "string"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "search", "parameters": {
             "type": "object", "properties": {"query": {"type": "string"}}}}}]
Q = [{"role": "user", "content": "What is the weather in Paris?"}]


def call(name: str, arguments: str) -> tuple[str, str, str]:
    return ("call", name, arguments)


def answer(text: str) -> tuple[str, str]:
    return ("answer", text)


class Script:
    """An OpenAI-compatible endpoint answering hypothesis i (its seed) with ``replies[i]``; the tool-vote prompt
    gets ``VERDICT: <verdict>`` (or the status ``verdict`` when it is a number)."""

    def __init__(self, replies: list, verdict: str | int = "A") -> None:
        self.replies, self.verdict = replies, verdict
        self.bodies: list[dict] = []
        self.prompts: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        last = body["messages"][-1]["content"]
        if TOOL_VOTE_INSTRUCTION in last:
            self.prompts.append(last)
            if isinstance(self.verdict, int):
                return httpx.Response(self.verdict, json={"error": {"message": "refused", "type": "x"}})
            return self._reply(f"Candidate {self.verdict} fits best.\n\nVERDICT: {self.verdict}")
        self.bodies.append(body)
        reply = self.replies[body["seed"]]
        if reply[0] == "answer":
            return self._reply(reply[1])
        return self._reply(None, [{"id": f"call_up{body['seed']}", "type": "function",
                                   "function": {"name": reply[1], "arguments": reply[2]}}])

    @staticmethod
    def _reply(text: str | None, calls: list | None = None) -> httpx.Response:
        message = {"role": "assistant", "content": text, **({"tool_calls": calls} if calls else {})}
        return httpx.Response(200, json={"id": "chatcmpl-x", "model": "m", "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}})


async def run(script: Script, **kw):
    opts = {"n": len(script.replies), "strategy": "vote", **kw}
    h = Heavy(model="openai:m", base_url="http://mock.test/v1", transport=httpx.MockTransport(script),
              retry=RetryPolicy(max_attempts=1), **opts)
    try:
        return await h.ask(Q, tools=TOOLS, seed=0)
    finally:
        await h.aclose()


# --- signatures ---------------------------------------------------------------------------------------


def test_canonical_form_ignores_key_order_whitespace_and_number_spelling():
    assert canonical({"b": 1.0, "a": [" x ", {"d": 2, "c": 3.5}]}) == {"a": ["x", {"c": 3.5, "d": 2}], "b": 1}
    assert canonical(True) is True and canonical(1.0) == 1 and isinstance(canonical(1.0), int)
    one = ToolCall(id="1", name="get_weather", arguments=json.loads('{ "city" : "Paris",\n "days": 3 }'))
    two = ToolCall(id="2", name="get_weather", arguments={"days": 3.0, "city": "Paris "})
    assert signature([one]) == signature([two]) == 'get_weather({"city":"Paris","days":3})'
    assert signature([ToolCall(id="3", name="get_weather", arguments={"city": "Paris", "days": True})]) \
        != signature([one]), "true is not 1"
    other = ToolCall(id="4", name="search", arguments={"query": "x"})
    assert signature([one, other]) == signature([other, two]), "several calls: one signature, in any order"


def test_ignored_arguments_for_every_tool_or_one():
    a = ToolCall(id="1", name="get_weather", arguments={"city": "Paris", "request_id": "r1"})
    b = ToolCall(id="2", name="get_weather", arguments={"city": "Paris", "request_id": "r2"})
    assert signature([a]) != signature([b])
    assert signature([a], {"request_id"}) == signature([b], {"request_id"}) == 'get_weather({"city":"Paris"})'
    assert signature([a], {"get_weather.request_id"}) == signature([b], {"get_weather.request_id"})
    assert signature([a], {"search.request_id"}) != signature([b], {"search.request_id"})
    broken = ToolCall(id="3", name="get_weather", arguments={}, arguments_error="not JSON")
    assert "not a JSON object" in signature([broken])


# --- calling or answering -------------------------------------------------------------------------------


async def test_the_calls_win_by_majority_whatever_their_spelling():
    script = Script([call("get_weather", '{"city": "Paris", "days": 1}'), answer("It is sunny, I think."),
                     call("get_weather", '{"days":1.0,"city":" Paris"}'), call("get_weather", '{ "city":"Paris" }')])
    r = await run(script)
    sig = 'get_weather({"city":"Paris","days":1})'
    assert r.decision.method == "tool-vote" and r.decision.path == ["sample", "tool-vote"]
    assert r.decision.votes == {sig: 2, 'get_weather({"city":"Paris"})': 1} and r.decision.winner == 0
    assert r.decision.details["tool_vote"] == {"calls": 3, "answers": 1, "votes": r.decision.votes,
                                               "decided": "call"}
    [c] = r.tool_calls
    assert c.name == "get_weather" and c.arguments == {"city": "Paris", "days": 1} and c.id.startswith("call_")
    assert c.id != "call_up0", "fresh ids, not the upstream's"
    assert r.answer == sig and r.text == "" and "3 of 4" in r.decision.rationale and "2 of 3" in r.decision.rationale
    assert len(r.hypotheses) == 4 and [h.tool_calls is not None for h in r.hypotheses] == [True, False, True, True]
    assert r.usage.completion_tokens == 20
    for body in script.bodies:  # every hypothesis was offered the tools, as OpenAI takes them
        assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "search"]
        assert body["tool_choice"] == "auto" and "parallel_tool_calls" not in body


async def test_the_answers_win_by_majority_and_the_strategy_decides_among_them():
    script = Script([answer("The answer is 42."), call("get_weather", '{"city": "Paris"}'),
                     answer("The answer is 41."), answer("So the answer is 42.")])
    r = await run(script)
    assert r.tool_calls is None and r.answer == "42"
    assert r.decision.method == "vote" and r.decision.path == ["sample", "tool-vote", "vote"]
    assert r.decision.votes == {"42": 2, "41": 1} and r.decision.details["tool_vote"]["decided"] == "answer"
    assert len(script.bodies) == 4, "the answers were replayed to the strategy, not sampled again"
    assert sorted(h.index for h in r.hypotheses) == [0, 1, 2, 3]
    caller = next(h for h in r.hypotheses if h.tool_calls)
    assert caller.index == 3, "the caller is numbered after the hypotheses the strategy saw"
    assert r.hypotheses[r.decision.winner].answer == "42"
    assert r.usage.completion_tokens == 20


async def test_a_tie_calls_by_the_rule_without_an_aggregator():
    script = Script([answer("The answer is 7."), call("search", '{"query": "paris weather"}'),
                     call("get_weather", '{"city": "Paris"}'), answer("The answer is 7.")])
    r = await run(script)
    assert r.decision.path == ["sample", "tool-vote", "rule"] and not script.prompts
    [c] = r.tool_calls
    assert c.name == "search" and r.decision.winner == 1, "the most voted call, ties to the earliest hypothesis"
    assert "tie" in r.decision.rationale


async def test_a_tie_goes_to_the_aggregator_when_one_is_configured():
    script = Script([answer("The answer is 7."), call("search", '{"query": "paris weather"}'),
                     call("get_weather", '{"city": "Paris"}'), answer("The answer is 7.")], verdict="C")
    r = await run(script, aggregator_model="openai:judge")
    [prompt] = script.prompts
    assert '<candidate id="A">\nCALL\nsearch {"query": "paris weather"}' in prompt
    assert '<candidate id="B">\nCALL\nget_weather {"city": "Paris"}' in prompt
    assert f'<candidate id="C">\n{ANSWER_CANDIDATE}\nThe answer is 7.' in prompt
    assert "get_weather: Weather in a city." in prompt and "What is the weather in Paris?" in prompt
    assert r.tool_calls is None and r.answer == "7", "the aggregator chose to answer"
    assert r.decision.path == ["sample", "tool-vote", "aggregator", "vote"]
    [agg] = r.aggregator_calls
    assert agg.purpose == "tool-vote" and agg.model == "openai:judge" and r.usage.completion_tokens == 25


async def test_split_calls_go_to_the_aggregator_or_else_to_the_plurality():
    replies = [call("search", '{"query": "weather in Paris"}'), call("search", '{"query": "Paris weather"}'),
               call("search", '{"query": "Paris weather today"}'), call("search", '{"query": "Paris weather"}'),
               call("get_weather", '{"city": "Paris"}')]
    r = await run(Script(replies))
    assert r.decision.path == ["sample", "tool-vote", "rule"]
    assert r.tool_calls[0].arguments == {"query": "Paris weather"} and r.decision.winner == 1
    script = Script(replies, verdict="D")
    r = await run(script, aggregator_model="openai:judge")
    assert ANSWER_CANDIDATE not in script.prompts[0], "no answer to offer: every hypothesis called"
    assert r.decision.path == ["sample", "tool-vote", "aggregator"]
    assert r.tool_calls[0].name == "get_weather" and r.decision.winner == 4
    script = Script(replies, verdict=400)  # the aggregator fails: the rule decides
    r = await run(script, aggregator_model="openai:judge")
    assert r.decision.path == ["sample", "tool-vote", "fallback:rule"] and r.decision.winner == 1
    assert r.aggregator_calls[0].error


async def test_ignore_args_merges_calls_that_differ_only_there():
    replies = [call("get_weather", '{"city": "Paris", "request_id": "a"}'),
               call("get_weather", '{"city": "Paris", "request_id": "b"}'), answer("The answer is 3.")]
    r = await run(Script(replies))
    assert r.decision.path[-1] == "rule", "without it, two calls of one vote each"
    r = await run(Script(replies), ignore_args=["get_weather.request_id"])
    assert r.decision.votes == {'get_weather({"city":"Paris"})': 2} and r.decision.path == ["sample", "tool-vote"]
    assert r.tool_calls[0].arguments["request_id"] == "a", "the winner's own arguments are returned"


async def test_tool_choice_and_parallel_calls_reach_every_hypothesis():
    script = Script([call("get_weather", '{"city": "Paris"}')] * 2)
    h = Heavy(model="openai:m", base_url="http://mock.test/v1", transport=httpx.MockTransport(script), n=2,
              strategy="vote")
    r = await h.ask(Q, tools=TOOLS, seed=0, parallel_tool_calls=False,
                    tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert r.tool_calls[0].name == "get_weather"
    for body in script.bodies:
        assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert body["parallel_tool_calls"] is False
    await h.aclose()
    script = Script([answer("The answer is 42.")] * 2)
    h = Heavy(model="openai:m", base_url="http://mock.test/v1", transport=httpx.MockTransport(script), n=2,
              strategy="vote")
    r = await h.ask([{"role": "user", "content": "What is 6 * 7?"}], tools=TOOLS, tool_choice="none", seed=0)
    assert [b["tool_choice"] for b in script.bodies] == ["none", "none"], "offered, not to be called"
    assert r.decision.path == ["sample", "vote"] and r.answer == "42", "no tool vote when no call may be made"
    await h.aclose()


async def test_bad_tools_are_one_line_errors():
    h = Heavy(model="sim", n=2, strategy="vote", tools=["python"])
    with pytest.raises(OptionsError, match="Heavy\\(tools="):
        await h.ask("q", tools=["get_weather"])
    with pytest.raises(OptionsError, match="'python' has the name of a tool heavy runs itself"):
        await h.ask("q", tools=[{"type": "function", "function": {"name": "python"}}])
    with pytest.raises(OptionsError, match="not among the tools"):
        await h.ask("q", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(OptionsError, match="needs tools"):
        await h.ask("q", tool_choice="required")
    with pytest.raises(OptionsError, match="tool_choice 'sometimes'"):
        await h.ask("q", tools=TOOLS, tool_choice="sometimes")
    await h.aclose()
