"""Native tool calling in each wire format, against httpx.MockTransport with hand-written answers.

The bodies and streams follow the documented shapes (OpenAI ``tool_calls`` with JSON-string arguments
and indexed stream fragments; Anthropic ``tool_use`` blocks with ``input_json_delta`` pieces; Gemini
``functionCall`` parts, a ``thoughtSignature`` beside them), independently of heavy's simulator, so the
providers and the simulator cannot agree on a shared mistake.
"""

from __future__ import annotations

import json

import httpx
import pytest

from heavy.providers.anthropic import AnthropicProvider
from heavy.providers.base import Completion, CompletionRequest
from heavy.providers.gemini import GeminiProvider
from heavy.providers.openai import OpenAIProvider
from heavy.tools.python import PythonTool
from heavy.tools.web_search import WebSearchArgs
from heavy.types import Message, ToolCall, ToolChoice, ToolSpec

pytestmark = pytest.mark.anyio

SPECS = [PythonTool().spec()]
CALL = ToolCall(id="call_1", name="python", arguments={"code": "print(6 * 7)"})
HISTORY = [Message(role="user", content="What is 6 * 7?"),
           Message(role="assistant", content="", tool_calls=[CALL]),
           Message(role="tool", content="42", tool_call_id="call_1", name="python")]


def sse(*events: dict | str, named: bool = False) -> bytes:
    out = []
    for e in events:
        data = e if isinstance(e, str) else json.dumps(e)
        name = f"event: {e['type']}\n" if named and isinstance(e, dict) else ""
        out.append(f"{name}data: {data}\n\n")
    return "".join(out).encode()


def capture(body: bytes | dict, stream: bool = False):
    seen: dict = {}

    def handler(req: httpx.Request) -> httpx.Response:
        seen["body"] = json.loads(req.content)
        if stream:
            return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=body)

    return seen, httpx.MockTransport(handler)


async def collect(provider, request) -> Completion:
    final = None
    async for item in provider.stream(request):
        if isinstance(item, Completion):
            final = item
    assert final is not None
    return final


def test_a_tools_spec_is_the_json_schema_of_its_arguments():
    spec = PythonTool().spec()
    assert spec.name == "python" and "sandbox" in spec.description
    assert spec.parameters["type"] == "object" and spec.parameters["required"] == ["code"]
    assert spec.parameters["properties"]["code"]["type"] == "string" and "title" not in spec.parameters
    assert ToolSpec(name="web_search", parameters=WebSearchArgs.model_json_schema()).parameters["properties"]["max_results"]


# --- OpenAI ---------------------------------------------------------------------------------------


async def test_openai_offers_tools_and_reads_tool_calls():
    answer = {"id": "c1", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "python", "arguments": "{\"code\": \"print(1)\"}"}},
            {"id": "call_b", "type": "function", "function": {"name": "python", "arguments": "{not json"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7}}
    seen, transport = capture(answer)
    p = OpenAIProvider("http://oai.test/v1", "k", transport=transport)
    c = await p.complete(CompletionRequest(model="m", messages=HISTORY, tools=SPECS))
    body = seen["body"]
    assert body["tools"] == [{"type": "function", "function": {"name": "python", "description": SPECS[0].description,
                                                               "parameters": SPECS[0].parameters}}]
    assert body["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "python", "arguments": "{\"code\": \"print(6 * 7)\"}"}}]}
    assert body["messages"][2] == {"role": "tool", "content": "42", "tool_call_id": "call_1"}
    assert c.finish_reason == "tool_calls" and c.text == ""
    first, second = c.tool_calls
    assert (first.id, first.name, first.arguments) == ("call_a", "python", {"code": "print(1)"})
    assert second.arguments == {} and "not valid JSON" in second.arguments_error
    await p.aclose()


async def test_openai_assembles_streamed_tool_call_fragments():
    def chunk(delta, finish=None):
        return {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    stream = sse(chunk({"role": "assistant", "content": None, "tool_calls": [
                     {"index": 0, "id": "call_a", "type": "function", "function": {"name": "python", "arguments": ""}}]}),
                 chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"code\": \"pri"}}]}),
                 chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                        "function": {"name": "web_search", "arguments": "{\"query\": \"x\"}"}}]}),
                 chunk({"tool_calls": [{"index": 0, "function": {"arguments": "nt(1)\"}"}}]}),
                 chunk({}, "tool_calls"), "[DONE]")
    seen, transport = capture(stream, stream=True)
    p = OpenAIProvider("http://oai.test/v1", "k", transport=transport)
    c = await collect(p, CompletionRequest(model="m", messages=HISTORY[:1], tools=SPECS))
    assert seen["body"]["stream"] is True and seen["body"]["tools"][0]["function"]["name"] == "python"
    assert [(t.id, t.name, t.arguments) for t in c.tool_calls] == [
        ("call_a", "python", {"code": "print(1)"}), ("call_b", "web_search", {"query": "x"})]
    assert c.finish_reason == "tool_calls"
    await p.aclose()


# --- Anthropic ------------------------------------------------------------------------------------


async def test_anthropic_offers_tools_and_reads_tool_use_blocks():
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "tool_use",
              "content": [{"type": "text", "text": "I will compute it."},
                          {"type": "tool_use", "id": "toolu_01", "name": "python", "input": {"code": "print(1)"}}],
              "usage": {"input_tokens": 10, "output_tokens": 20}}
    seen, transport = capture(answer)
    p = AnthropicProvider("http://ant.test", "k", transport=transport)
    c = await p.complete(CompletionRequest(model="claude", messages=HISTORY, tools=SPECS))
    body = seen["body"]
    assert body["tools"] == [{"name": "python", "description": SPECS[0].description, "input_schema": SPECS[0].parameters}]
    assert body["messages"] == [
        {"role": "user", "content": "What is 6 * 7?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "python",
                                           "input": {"code": "print(6 * 7)"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "42"}]}]
    assert c.text == "I will compute it." and c.finish_reason == "tool_calls"
    assert [(t.id, t.name, t.arguments) for t in c.tool_calls] == [("toolu_01", "python", {"code": "print(1)"})]
    await p.aclose()


async def test_anthropic_assembles_input_json_deltas():
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 9}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Computing."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_01", "name": "python", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"code\": \"pr"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "int(2)\"}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2,
         "content_block": {"type": "tool_use", "id": "toolu_02", "name": "python", "input": {}}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 15}},
        {"type": "message_stop"},
    ]
    _, transport = capture(sse(*events, named=True), stream=True)
    p = AnthropicProvider("http://ant.test", "k", transport=transport)
    c = await collect(p, CompletionRequest(model="claude", messages=HISTORY[:1], tools=SPECS))
    assert c.text == "Computing." and c.finish_reason == "tool_calls"
    assert [(t.id, t.arguments) for t in c.tool_calls] == [("toolu_01", {"code": "print(2)"}), ("toolu_02", {})]
    await p.aclose()


# --- Gemini ---------------------------------------------------------------------------------------


GEMINI_PART = {"functionCall": {"name": "python", "args": {"code": "print(3)"}}, "thoughtSignature": "c2lnbmF0dXJl"}


async def test_gemini_offers_function_declarations_and_sends_calls_back_verbatim():
    answer = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Running it."}, GEMINI_PART]},
                              "finishReason": "STOP"}],
              "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6}}
    seen, transport = capture(answer)
    p = GeminiProvider("http://gem.test", "k", transport=transport)
    c = await p.complete(CompletionRequest(model="gemini-x", messages=HISTORY[:1], tools=SPECS))
    decl = seen["body"]["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "python" and decl["parameters"]["properties"]["code"]["type"] == "string"
    assert "additionalProperties" not in json.dumps(decl) and "title" not in decl["parameters"]
    assert c.text == "Running it." and c.finish_reason == "tool_calls"
    [call] = c.tool_calls
    assert call.name == "python" and call.arguments == {"code": "print(3)"}
    # The next turn sends the call back as it came (thoughtSignature included) and the result by name.
    history = [HISTORY[0], Message(role="assistant", content=c.text, tool_calls=c.tool_calls),
               Message(role="tool", content="3", tool_call_id=call.id, name="python")]
    body = p.build_body(CompletionRequest(model="gemini-x", messages=history, tools=SPECS))
    assert body["contents"][1] == {"role": "model", "parts": [{"text": "Running it."}, GEMINI_PART]}
    assert body["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "python", "response": {"result": "3"}}}]}
    await p.aclose()


async def test_gemini_streams_function_calls_and_keeps_their_ids():
    chunks = [{"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me check."}]}}]},
              {"candidates": [{"content": {"role": "model", "parts": [
                  {"functionCall": {"name": "python", "args": {"code": "print(4)"}, "id": "fc-1"}},
                  {"functionCall": {"name": "python", "args": {"code": "print(5)"}}}]}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 8}}]
    _, transport = capture(sse(*chunks), stream=True)
    p = GeminiProvider("http://gem.test", "k", transport=transport)
    c = await collect(p, CompletionRequest(model="gemini-x", messages=HISTORY[:1], tools=SPECS))
    assert c.text == "Let me check." and c.finish_reason == "tool_calls"
    assert [(t.id, t.arguments) for t in c.tool_calls] == [("fc-1", {"code": "print(4)"}), ("call_1", {"code": "print(5)"})]
    reply = p.build_body(CompletionRequest(model="gemini-x", messages=[
        HISTORY[0], Message(role="assistant", content="", tool_calls=c.tool_calls),
        Message(role="tool", content="4", tool_call_id="fc-1", name="python")]))
    assert reply["contents"][2]["parts"] == [{"functionResponse": {"name": "python", "response": {"result": "4"},
                                                                  "id": "fc-1"}}]
    await p.aclose()


def test_legacy_tool_messages_without_a_call_id_stay_plain_text():
    legacy = [Message(role="user", content="a"), Message(role="tool", content="b")]
    assert OpenAIProvider("http://x/v1").build_body(CompletionRequest(model="m", messages=legacy), stream=False)[
        "messages"][1] == {"role": "tool", "content": "b"}
    assert AnthropicProvider("http://x").build_body(CompletionRequest(model="m", messages=legacy), stream=False)[
        "messages"] == [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]


# --- tool_choice and parallel calls, each wire in its own words -------------------------------------------


def _bodies(choice, parallel=None) -> dict[str, dict]:
    request = CompletionRequest(model="m", messages=HISTORY[:1], tools=SPECS,
                                tool_choice=ToolChoice.parse(choice) if choice is not None else None,
                                parallel_tool_calls=parallel)
    return {"openai": OpenAIProvider("http://oai.test/v1", "k").build_body(request, stream=False),
            "anthropic": AnthropicProvider("http://ant.test", "k").build_body(request, stream=False),
            "gemini": GeminiProvider("http://gem.test", "k").build_body(request)}


@pytest.mark.parametrize("choice,parallel,openai,anthropic,gemini", [
    (None, None, None, None, None),
    ("auto", None, "auto", {"type": "auto"}, {"mode": "AUTO"}),
    ("none", None, "none", {"type": "none"}, {"mode": "NONE"}),
    ("required", None, "required", {"type": "any"}, {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "python"}}, None, {"type": "function", "function": {"name": "python"}},
     {"type": "tool", "name": "python"}, {"mode": "ANY", "allowedFunctionNames": ["python"]}),
    (None, False, None, {"type": "auto", "disable_parallel_tool_use": True}, None),
    ("required", False, "required", {"type": "any", "disable_parallel_tool_use": True}, {"mode": "ANY"}),
])
def test_tool_choice_maps_to_each_wire(choice, parallel, openai, anthropic, gemini):
    bodies = _bodies(choice, parallel)
    assert bodies["openai"].get("tool_choice") == openai
    assert bodies["openai"].get("parallel_tool_calls") == parallel
    assert bodies["anthropic"].get("tool_choice") == anthropic
    assert (bodies["gemini"].get("toolConfig") or {}).get("functionCallingConfig") == gemini
    assert "parallel_tool_calls" not in bodies["gemini"], "Gemini has no such switch"
