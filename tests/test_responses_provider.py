"""The OpenAI Responses API wire format, against httpx.MockTransport (the network edge only).

Bodies and event sequences are the verbatim shapes of /work/research/openai.md §2 (recorded api.openai.com
traffic from pydantic-ai's cassettes, vercel/ai's fixtures and the OpenAPI spec), long strings shortened."""

import asyncio
import json

import httpx
import pytest

from heavy.errors import (FatalRequestError, OptionsError, ProviderError, ProviderHTTPError, ProviderResponseError)
from heavy.providers.base import Completion, CompletionRequest, Delta
from heavy.providers.openai import OpenAIProvider
from heavy.providers.responses import ResponsesProvider
from heavy.types import Message, SamplingParams, ToolCall, ToolChoice, ToolSpec

pytestmark = pytest.mark.anyio
KEY = "sk-test-SECRET-0123456789"
BASE = "http://test.local/v1"

USAGE = {"input_tokens": 53, "input_tokens_details": {"cached_tokens": 32}, "output_tokens": 469,
         "output_tokens_details": {"reasoning_tokens": 448}, "total_tokens": 522}
REASONING_ITEM = {"id": "rs_68c42d1d", "type": "reasoning", "encrypted_content": "gAAAA",
                  "summary": [{"type": "summary_text", "text": "**Providing street crossing instructions**\n\nThe user "
                                                                "is asking how to cross."},
                              {"type": "summary_text", "text": "**Safety first**"}]}
MESSAGE_ITEM = {"id": "msg_68c42d26", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                             "text": "I'm not a road safety professional, but look both ways."}]}
CALL_ITEM = {"id": "fc_0050471a", "type": "function_call", "status": "completed", "arguments": "{\"result\":6666}",
             "call_id": "call_CWXgs68YprAjp6t0371hiPOI", "name": "final_result"}


def response_body(output, *, status="completed", usage=USAGE, **extra):
    """A Response object as the AZDOC/PAI captures show it (required keys all present)."""
    body = {"id": "resp_682f7eb5", "object": "response", "created_at": 1747943093.0, "status": status,
            "background": False, "error": None, "incomplete_details": None, "instructions": None,
            "max_output_tokens": None, "model": "gpt-5-2025-08-07", "output": output, "parallel_tool_calls": True,
            "previous_response_id": None, "reasoning": {"effort": None, "summary": None}, "store": False,
            "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
            "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None, "metadata": {}}
    body.update(extra)
    return body


def provider(handler, **kw):
    return ResponsesProvider(BASE, KEY, transport=httpx.MockTransport(handler), **kw)


def recorder(*responses):
    """A handler answering *responses* in turn (the last one repeats), recording every request."""
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return responses[min(len(seen), len(responses)) - 1]

    return seen, handler


def body_of(req: httpx.Request):
    return json.loads(req.content)


def request(messages=None, **params):
    return CompletionRequest(model="gpt-5", messages=messages or [Message(role="user", content="2+2?")],
                             params=SamplingParams(**params))


def sse(*events):
    """Typed SSE as the Responses API sends it: an ``event:`` line naming each data line's type, no [DONE]."""
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


def streaming(text, status=200, **headers):
    return httpx.Response(status, text=text, headers={"content-type": "text/event-stream; charset=utf-8", **headers})


# --- request body -------------------------------------------------------------------------------------------------


async def test_url_auth_and_the_plain_body():
    seen, handler = recorder(httpx.Response(200, json=response_body([MESSAGE_ITEM])))
    await provider(handler).complete(request(temperature=0.7, top_p=0.9, max_tokens=64, seed=3, stop=["\n\n"]))
    (req,) = seen
    assert str(req.url) == f"{BASE}/responses" and req.method == "POST"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = body_of(req)
    assert body == {"model": "gpt-5", "input": [{"type": "message", "role": "user",
                                                 "content": [{"type": "input_text", "text": "2+2?"}]}],
                    "temperature": 0.7, "top_p": 0.9, "max_output_tokens": 64, "store": False}
    # seed and stop do not exist on this API; nothing Chat-only leaks in
    for key in ("seed", "stop", "n", "max_tokens", "messages", "stream", "reasoning", "include", "background"):
        assert key not in body


def test_system_and_developer_messages_become_instructions_and_later_ones_stay_in_place():
    p = ResponsesProvider(BASE, KEY, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    msgs = [Message(role="system", content="Be brief."), Message(role="developer", content="Answer in French."),
            Message(role="user", content="Hi"), Message(role="developer", content="Now in German.")]
    body = p.build_body(CompletionRequest(model="o3-pro", messages=msgs), stream=False)
    assert body["instructions"] == "Be brief.\n\nAnswer in French."
    assert body["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Now in German."}]},
    ]
    no_system = p.build_body(CompletionRequest(model="o3-pro", messages=msgs[2:3]), stream=False)
    assert "instructions" not in no_system


def test_images_become_input_image_parts_and_assistant_text_output_text():
    p = ResponsesProvider(BASE, KEY, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    parts = [{"type": "text", "text": "what is this?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
             {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
             {"type": "input_file", "file_id": "file-1"}]
    msgs = [Message(role="user", content=parts), Message(role="assistant", content="A cat."),
            Message(role="user", content="Sure?")]
    items = p.build_body(CompletionRequest(model="gpt-5", messages=msgs), stream=False)["input"]
    assert items[0]["content"] == [
        {"type": "input_text", "text": "what is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"},
        {"type": "input_file", "file_id": "file-1"},
    ]
    assert items[1] == {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A cat."}]}
    assert items[2]["content"] == [{"type": "input_text", "text": "Sure?"}]


def test_tools_round_trip_as_flat_functions_calls_and_outputs():
    p = ResponsesProvider(BASE, KEY, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    call = ToolCall(id="call_CWXgs68YprAjp6t0371hiPOI", name="weather", arguments={"city": "Paris"})
    msgs = [Message(role="user", content="Weather in Paris?"),
            Message(role="assistant", content="Let me look.", tool_calls=[call]),
            Message(role="tool", content="18C, sunny", tool_call_id=call.id, name="weather")]
    req = CompletionRequest(model="gpt-5-codex", messages=msgs, tools=[ToolSpec(name="weather", description="Now.",
                                                                                parameters=schema)],
                            tool_choice=ToolChoice(mode="required", name="weather"), parallel_tool_calls=False)
    body = p.build_body(req, stream=False)
    assert body["tools"] == [{"type": "function", "name": "weather", "description": "Now.", "parameters": schema,
                              "strict": False}]
    assert body["tool_choice"] == {"type": "function", "name": "weather"}
    assert body["parallel_tool_calls"] is False
    assert body["input"][1:] == [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "call_id": call.id, "name": "weather", "arguments": "{\"city\": \"Paris\"}"},
        {"type": "function_call_output", "call_id": call.id, "output": "18C, sunny"},
    ]
    # an assistant turn that only called: no empty message item
    only_call = Message(role="assistant", content="", tool_calls=[call])
    items = p.build_body(CompletionRequest(model="m", messages=[msgs[0], only_call]), stream=False)["input"]
    assert [i["type"] for i in items] == ["message", "function_call"]
    for mode in ("auto", "none", "required"):
        choice = p.build_body(req.model_copy(update={"tool_choice": ToolChoice(mode=mode)}), stream=False)
        assert choice["tool_choice"] == mode
    assert "tool_choice" not in p.build_body(req.model_copy(update={"tool_choice": None}), stream=False)


def test_reasoning_logprobs_cache_key_stream_and_extra_body():
    summaries = {"o3-pro"}
    p = ResponsesProvider(BASE, KEY, transport=httpx.MockTransport(lambda r: httpx.Response(500)),
                          summaries=lambda model: model in summaries)
    msgs = [Message(role="user", content="x")]
    effort = p.build_body(CompletionRequest(model="gpt-4.1", messages=msgs,
                                            params=SamplingParams(reasoning_effort="high")), stream=False)
    assert effort["reasoning"] == {"effort": "high", "summary": "auto"}
    budget = p.build_body(CompletionRequest(model="gpt-4.1", messages=msgs,
                                            params=SamplingParams(thinking_budget=2000)), stream=False)
    assert budget["reasoning"] == {"effort": "medium", "summary": "auto"}
    own = p.build_body(CompletionRequest(model="o3-pro", messages=msgs), stream=False)
    assert own["reasoning"] == {"summary": "auto"}
    assert "reasoning" not in p.build_body(CompletionRequest(model="gpt-4.1", messages=msgs), stream=False)
    assert "reasoning" not in ResponsesProvider(BASE, KEY).build_body(CompletionRequest(model="o3-pro", messages=msgs),
                                                                      stream=False)  # default: never
    lp = p.build_body(CompletionRequest(model="m", messages=msgs, params=SamplingParams(logprobs=True, top_logprobs=3)),
                      stream=True)
    assert lp["include"] == ["message.output_text.logprobs"] and lp["top_logprobs"] == 3 and lp["stream"] is True
    keyed = p.build_body(CompletionRequest(model="m", messages=msgs, cache_key="heavy-abc",
                                           extra_body={"store": True, "text": {"verbosity": "low"}}), stream=False)
    assert keyed["prompt_cache_key"] == "heavy-abc"
    assert keyed["store"] is True and keyed["text"] == {"verbosity": "low"}  # extra_body is merged last


async def test_one_choice_per_request():
    p = ResponsesProvider(BASE, KEY)
    assert p.max_choices == 1 and await p.choice_limit() == 1
    with pytest.raises(OptionsError, match="one answer per request"):
        p.build_body(CompletionRequest(model="m", messages=[Message(role="user", content="x")], n=4), stream=False)


# --- complete --------------------------------------------------------------------------------------------------------


async def test_reasoning_message_and_function_call_with_usage():
    seen, handler = recorder(httpx.Response(200, json=response_body([REASONING_ITEM, MESSAGE_ITEM, CALL_ITEM]),
                                            headers={"x-request-id": "req_123"}))
    c = await provider(handler).complete(request())
    assert c.text == "I'm not a road safety professional, but look both ways."
    assert c.reasoning == ("**Providing street crossing instructions**\n\nThe user is asking how to cross."
                           "\n\n**Safety first**")
    assert "Providing" not in c.text
    assert c.tool_calls == [ToolCall(id="call_CWXgs68YprAjp6t0371hiPOI", name="final_result",
                                     arguments={"result": 6666})]
    assert c.finish_reason == "tool_calls"
    u = c.usage
    assert (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens, u.cache_read_tokens) == (53, 469, 448, 32)
    assert (c.model, c.request_id, c.logprobs) == ("gpt-5-2025-08-07", "req_123", None)


async def test_plain_answer_stops_and_request_id_falls_back_to_the_response_id():
    _, handler = recorder(httpx.Response(200, json=response_body([REASONING_ITEM | {"summary": []}, MESSAGE_ITEM])))
    c = await provider(handler).complete(request())
    assert c.finish_reason == "stop" and c.reasoning is None and c.tool_calls is None
    assert c.request_id == "resp_682f7eb5"


@pytest.mark.parametrize("reason,finish", [("max_output_tokens", "length"), ("content_filter", "content_filter")])
async def test_incomplete_responses(reason, finish):
    body = response_body([REASONING_ITEM], status="incomplete", incomplete_details={"reason": reason})
    _, handler = recorder(httpx.Response(200, json=body))
    c = await provider(handler).complete(request(max_tokens=16))
    assert c.finish_reason == finish and c.text == "" and c.usage.reasoning_tokens == 448


async def test_a_refusal_is_its_text_with_finish_reason_refusal():
    refusal = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "refusal", "refusal": "I'm sorry, I can't help with that."}]}
    _, handler = recorder(httpx.Response(200, json=response_body([refusal])))
    c = await provider(handler).complete(request())
    assert c.text == "I'm sorry, I can't help with that." and c.finish_reason == "refusal"


async def test_logprobs_are_read_from_output_text_parts():
    lp = [{"token": "4", "logprob": -0.1, "bytes": [52],
           "top_logprobs": [{"token": "4", "logprob": -0.1, "bytes": [52]},
                            {"token": "5", "logprob": -2.5, "bytes": [53]}]}]
    item = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "logprobs": lp, "text": "4"}]}
    seen, handler = recorder(httpx.Response(200, json=response_body([item])))
    c = await provider(handler).complete(request(logprobs=True, top_logprobs=2))
    assert body_of(seen[0])["include"] == ["message.output_text.logprobs"]
    assert [(t.token, t.logprob, t.top) for t in c.logprobs] == [("4", -0.1, {"4": -0.1, "5": -2.5})]


@pytest.mark.parametrize("code,status,retryable", [("rate_limit_exceeded", 429, True), ("server_error", 500, True),
                                                   ("insufficient_quota", 429, False), ("invalid_prompt", 400, False),
                                                   ("invalid_image_url", 400, False)])
async def test_a_failed_response_raises_its_error(code, status, retryable):
    body = response_body([], status="failed", usage=None, error={"code": code, "message": f"it broke ({code})"})
    _, handler = recorder(httpx.Response(200, json=body, headers={"x-request-id": "req_f"}))
    with pytest.raises(ProviderError, match=f"it broke \\({code}\\)") as info:
        await provider(handler).complete(request())
    e = info.value
    assert not isinstance(e, ProviderResponseError)
    assert (e.status, e.retryable, e.request_id, e.provider, e.model) == (status, retryable, "req_f", "openai", "gpt-5")


async def test_garbage_is_a_response_error():
    for bad in (httpx.Response(200, text="<html>gateway</html>"), httpx.Response(200, json={"id": "resp_1"}),
                httpx.Response(200, json=[1, 2]), httpx.Response(200, json=response_body("nope"))):
        _, handler = recorder(bad)
        with pytest.raises(ProviderResponseError):
            await provider(handler).complete(request())


async def test_http_errors_keep_openai_behaviour_with_the_verbatim_temperature_refusal():
    refusal = {"error": {"message": "Unsupported parameter: 'temperature' is not supported with this model.",
                         "type": "invalid_request_error", "param": "temperature", "code": None}}
    _, handler = recorder(httpx.Response(400, json=refusal, headers={"x-request-id": "req_400"}))
    with pytest.raises(FatalRequestError, match="Unsupported parameter: 'temperature'") as info:
        await provider(handler).complete(request(temperature=0.7))
    e = info.value
    assert (e.status, e.retryable, e.request_id, e.model) == (400, False, "req_400", "gpt-5")
    assert KEY not in str(e)
    quota = {"error": {"message": "Request too large for gpt-4o in organization org-x on tokens per min (TPM)",
                       "type": "tokens", "param": None, "code": "rate_limit_exceeded"}}
    _, handler = recorder(httpx.Response(429, json=quota, headers={"retry-after": "3"}))
    with pytest.raises(ProviderHTTPError) as info:
        [i async for i in provider(handler).stream(request())]  # before the stream starts: a plain HTTP error
    assert info.value.status == 429 and info.value.retryable and info.value.retry_after == 3
    assert not isinstance(info.value, FatalRequestError)


# --- streaming -------------------------------------------------------------------------------------------------------


def created(seq=0, status="in_progress"):
    return {"type": "response.created", "sequence_number": seq,
            "response": response_body([], status=status, usage=None, id="resp_68c42d0f", model="o3-mini-2025-01-31")}


def reasoning_then_text_events():
    """o3-mini, 2025-09 (PAI cassette): reasoning summaries, then the message, then response.completed."""
    rs, msg = "rs_68c42d1d", "msg_68c42d26"
    final = response_body([REASONING_ITEM, MESSAGE_ITEM], id="resp_68c42d0f", model="o3-mini-2025-01-31",
                          usage={"input_tokens": 13, "input_tokens_details": {"cached_tokens": 0},
                                 "output_tokens": 1680, "output_tokens_details": {"reasoning_tokens": 1408},
                                 "total_tokens": 1693})
    summary_1, summary_2 = (s["text"] for s in REASONING_ITEM["summary"])
    text = MESSAGE_ITEM["content"][0]["text"]
    return [
        created(0),
        created(1) | {"type": "response.in_progress"},
        {"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
         "item": {"id": rs, "type": "reasoning", "encrypted_content": "gAAAA", "summary": []}},
        {"type": "response.reasoning_summary_part.added", "sequence_number": 3, "item_id": rs, "output_index": 0,
         "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
        {"type": "response.reasoning_summary_text.delta", "sequence_number": 4, "item_id": rs, "output_index": 0,
         "summary_index": 0, "delta": summary_1[:11], "obfuscation": "obWDa"},
        {"type": "response.reasoning_summary_text.delta", "sequence_number": 5, "item_id": rs, "output_index": 0,
         "summary_index": 0, "delta": summary_1[11:], "obfuscation": "obWDb"},
        {"type": "response.reasoning_summary_text.done", "sequence_number": 6, "item_id": rs, "output_index": 0,
         "summary_index": 0, "text": summary_1},
        {"type": "response.reasoning_summary_part.done", "sequence_number": 7, "item_id": rs, "output_index": 0,
         "summary_index": 0, "part": {"type": "summary_text", "text": summary_1}},
        {"type": "response.reasoning_summary_part.added", "sequence_number": 8, "item_id": rs, "output_index": 0,
         "summary_index": 1, "part": {"type": "summary_text", "text": ""}},
        {"type": "response.reasoning_summary_text.delta", "sequence_number": 9, "item_id": rs, "output_index": 0,
         "summary_index": 1, "delta": summary_2, "obfuscation": "x"},
        {"type": "response.output_item.done", "sequence_number": 10, "output_index": 0, "item": REASONING_ITEM},
        {"type": "response.output_item.added", "sequence_number": 11, "output_index": 1,
         "item": {"id": msg, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}},
        {"type": "response.content_part.added", "sequence_number": 12, "item_id": msg, "output_index": 1,
         "content_index": 0, "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}},
        {"type": "response.output_text.delta", "sequence_number": 13, "item_id": msg, "output_index": 1,
         "content_index": 0, "delta": "I'm", "logprobs": [], "obfuscation": "uGUWqgltWG6mc"},
        {"type": "response.output_text.delta", "sequence_number": 14, "item_id": msg, "output_index": 1,
         "content_index": 0, "delta": text[3:], "logprobs": [], "obfuscation": "uG"},
        {"type": "response.output_text.done", "sequence_number": 15, "item_id": msg, "output_index": 1,
         "content_index": 0, "text": text, "logprobs": []},
        {"type": "response.content_part.done", "sequence_number": 16, "item_id": msg, "output_index": 1,
         "content_index": 0, "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": text}},
        {"type": "response.output_item.done", "sequence_number": 17, "output_index": 1, "item": MESSAGE_ITEM},
        {"type": "response.completed", "sequence_number": 18, "response": final},
    ]


async def test_streaming_text_deltas_as_sent_reasoning_apart_and_usage_from_completed():
    seen, handler = recorder(streaming(sse(*reasoning_then_text_events()), **{"x-request-id": "req_s"}))
    items = [i async for i in provider(handler).stream(request())]
    assert body_of(seen[0])["stream"] is True and seen[0].headers["accept"] == "text/event-stream"
    deltas, final = items[:-1], items[-1]
    assert all(isinstance(d, Delta) and not (d.text and d.reasoning) for d in deltas)
    text = MESSAGE_ITEM["content"][0]["text"]
    assert [d.text for d in deltas if d.text] == ["I'm", text[3:]]
    summary_1, summary_2 = (s["text"] for s in REASONING_ITEM["summary"])
    assert [d.reasoning for d in deltas if d.reasoning] == [summary_1[:11], summary_1[11:], "\n\n" + summary_2]
    assert isinstance(final, Completion)
    assert final.text == "".join(d.text for d in deltas) == text
    assert final.reasoning == "".join(d.reasoning for d in deltas) == f"{summary_1}\n\n{summary_2}"
    assert final.finish_reason == "stop" and final.request_id == "req_s" and final.model == "o3-mini-2025-01-31"
    u = final.usage
    assert (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens) == (13, 1680, 1408)


async def test_streamed_function_call_arguments_are_assembled_per_output_item():
    fc = "fc_0050471a"
    added = {"id": fc, "type": "function_call", "status": "in_progress", "arguments": "",
             "call_id": CALL_ITEM["call_id"], "name": "final_result"}
    pieces = ["{\"", "result", "\":", "66", "66", "}"]
    final = response_body([REASONING_ITEM | {"summary": []}, CALL_ITEM])
    events = [created(0),
              {"type": "response.output_item.added", "sequence_number": 4, "output_index": 1, "item": added}]
    events += [{"type": "response.function_call_arguments.delta", "sequence_number": 5 + i, "item_id": fc,
                "output_index": 1, "delta": p, "obfuscation": "tWyV55lwoZZb30"} for i, p in enumerate(pieces)]
    # the 2025-09 capture's .done carries no name (the spec says it should)
    events.append({"type": "response.function_call_arguments.done", "sequence_number": 11, "item_id": fc,
                   "output_index": 1, "arguments": "{\"result\":6666}"})
    events.append({"type": "response.output_item.done", "sequence_number": 12, "output_index": 1, "item": CALL_ITEM})
    events.append({"type": "response.completed", "sequence_number": 13, "response": final})
    _, handler = recorder(streaming(sse(*events)))
    items = [i async for i in provider(handler).stream(request())]
    assert [type(i) for i in items] == [Completion]  # no text: no deltas
    c = items[-1]
    assert c.tool_calls == [ToolCall(id=CALL_ITEM["call_id"], name="final_result", arguments={"result": 6666})]
    assert c.finish_reason == "tool_calls" and c.text == ""
    # a terminal response without its output: the assembled calls stand
    events[-1] = {"type": "response.completed", "sequence_number": 13, "response": response_body([])}
    _, handler = recorder(streaming(sse(*events[:-2], events[-1])))  # not even output_item.done
    c = [i async for i in provider(handler).stream(request())][-1]
    assert c.tool_calls == [ToolCall(id=CALL_ITEM["call_id"], name="final_result", arguments={"result": 6666})]
    assert c.finish_reason == "tool_calls"


async def test_stream_ending_incomplete_is_length():
    events = reasoning_then_text_events()[:-1]
    events.append({"type": "response.incomplete", "sequence_number": 18,
                   "response": response_body([REASONING_ITEM], status="incomplete",
                                             incomplete_details={"reason": "max_output_tokens"})})
    _, handler = recorder(streaming(sse(*events)))
    final = [i async for i in provider(handler).stream(request(max_tokens=32))][-1]
    assert final.finish_reason == "length" and final.usage.reasoning_tokens == 448
    assert final.text == MESSAGE_ITEM["content"][0]["text"]  # what the deltas showed


QUOTA = ("You exceeded your current quota, please check your plan and billing details. For more information on this "
         "error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.")


async def test_nested_error_event_then_failed_as_seen_live():
    """vercel/ai's openai-error.1.chunks.txt: an ``error`` event nesting ``error``, then response.failed."""
    events = [created(0), created(1) | {"type": "response.in_progress"},
              {"type": "error", "sequence_number": 2,
               "error": {"type": "insufficient_quota", "code": "insufficient_quota", "message": QUOTA, "param": None}},
              {"type": "response.failed", "sequence_number": 3,
               "response": response_body([], status="failed", usage=None, model="gpt-5-nano-2025-08-07",
                                         error={"code": "insufficient_quota", "message": QUOTA})}]
    _, handler = recorder(streaming(sse(*events)))
    with pytest.raises(ProviderError, match="insufficient_quota: You exceeded your current quota") as info:
        [i async for i in provider(handler).stream(request())]
    e = info.value
    assert not isinstance(e, ProviderHTTPError)
    assert (e.status, e.retryable, e.request_id) == (429, False, "resp_68c42d0f")


@pytest.mark.parametrize("code,status,retryable", [("rate_limit_exceeded", 429, True), ("server_error", 500, True),
                                                   ("invalid_prompt", 400, False), ("brand_new_code", None, False)])
async def test_flat_error_event_after_text(code, status, retryable):
    """The spec's flat ResponseErrorEvent: code, message, param at the top level."""
    events = reasoning_then_text_events()[:14]  # up to the first text delta
    events.append({"type": "error", "sequence_number": 14, "code": code, "message": "Try again later.", "param": None})
    _, handler = recorder(streaming(sse(*events), **{"x-request-id": "req_e"}))
    got = []
    with pytest.raises(ProviderError, match=f"error inside stream: {code}: Try again later.") as info:
        async for item in provider(handler).stream(request()):
            got.append(item)
    assert [d.text for d in got if d.text] == ["I'm"]
    assert (info.value.status, info.value.retryable, info.value.request_id) == (status, retryable, "req_e")


async def test_response_failed_without_error_event():
    failed = response_body([], status="failed", usage=None,
                           error={"code": "server_error", "message": "The server had an error"})
    events = [created(0), {"type": "response.failed", "sequence_number": 1, "response": failed}]
    _, handler = recorder(streaming(sse(*events)))
    with pytest.raises(ProviderError, match="server_error: The server had an error") as info:
        [i async for i in provider(handler).stream(request())]
    assert info.value.status == 500 and info.value.retryable


async def test_truncated_or_garbled_streams():
    _, handler = recorder(streaming(sse(*reasoning_then_text_events()[:-1])))
    with pytest.raises(ProviderResponseError, match="truncated") as info:
        [i async for i in provider(handler).stream(request())]
    assert info.value.retryable
    _, handler = recorder(streaming("event: response.created\ndata: {not json\n\n"))
    with pytest.raises(ProviderResponseError, match="not JSON"):
        [i async for i in provider(handler).stream(request())]


async def test_raw_reasoning_text_and_refusal_deltas():
    """gpt-oss-style servers stream ``reasoning_text`` (raw reasoning content); a refusal streams as text."""
    rs, msg = "rs_1", "msg_1"
    reasoning = {"id": rs, "type": "reasoning", "summary": [],
                 "content": [{"type": "reasoning_text", "text": "User wants harm. Refuse."}]}
    refusal = {"id": msg, "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    events = [created(0),
              {"type": "response.reasoning_text.delta", "sequence_number": 1, "item_id": rs, "output_index": 0,
               "content_index": 0, "delta": "User wants harm. "},
              {"type": "response.reasoning_text.delta", "sequence_number": 2, "item_id": rs, "output_index": 0,
               "content_index": 0, "delta": "Refuse."},
              {"type": "response.refusal.delta", "sequence_number": 3, "item_id": msg, "output_index": 1,
               "content_index": 0, "delta": "I can't help with that."},
              {"type": "response.refusal.done", "sequence_number": 4, "item_id": msg, "output_index": 1,
               "content_index": 0, "refusal": "I can't help with that."},
              {"type": "response.completed", "sequence_number": 5, "response": response_body([reasoning, refusal])}]
    _, handler = recorder(streaming(sse(*events)))
    items = [i async for i in provider(handler).stream(request())]
    assert [(d.reasoning, d.text) for d in items[:-1]] == [("User wants harm. ", ""), ("Refuse.", ""),
                                                           ("", "I can't help with that.")]
    final = items[-1]
    assert (final.reasoning, final.text, final.finish_reason) == ("User wants harm. Refuse.", "I can't help with that.",
                                                                  "refusal")


def test_effort_none_asks_for_no_summary():
    p = ResponsesProvider(BASE, KEY, summaries=lambda model: True)
    body = p.build_body(CompletionRequest(model="gpt-5.1", messages=[Message(role="user", content="x")],
                                          params=SamplingParams.model_construct(reasoning_effort="none")),
                        stream=False)
    assert body["reasoning"] == {"effort": "none"}


async def test_models_that_cannot_stream_are_asked_whole_and_yielded_as_deltas():
    seen, handler = recorder(httpx.Response(200, json=response_body([REASONING_ITEM, MESSAGE_ITEM])))
    p = provider(handler, streams=lambda model: model != "o1-pro")
    items = [i async for i in p.stream(request().model_copy(update={"model": "o1-pro"}))]
    assert "stream" not in body_of(seen[0])
    assert [type(i) for i in items] == [Delta, Delta, Completion]
    assert items[0].reasoning == items[2].reasoning
    assert items[1].text == items[2].text == MESSAGE_ITEM["content"][0]["text"]


# --- background mode -------------------------------------------------------------------------------------------------


def test_poll_interval_defaults_to_the_constant():
    from heavy import constants as C

    assert ResponsesProvider(BASE, KEY, background=True).poll_interval == C.RESPONSES_POLL_INTERVAL
    with pytest.raises(ValueError):
        ResponsesProvider(BASE, KEY, poll_interval=-1)


async def test_background_create_poll_until_completed():
    queued = response_body([], status="queued", usage=None, background=True, store=True, completed_at=None,
                           id="resp_bg1")
    in_progress = queued | {"status": "in_progress"}
    done = response_body([REASONING_ITEM, MESSAGE_ITEM], background=True, store=True, id="resp_bg1",
                         completed_at=1757687100, billing={"payer": "developer"})
    answers = {"POST": [queued], "GET": [in_progress, in_progress, done]}
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.path))
        return httpx.Response(200, json=answers[req.method].pop(0), headers={"x-request-id": f"req_{len(seen)}"})

    p = provider(handler, background=True, poll_interval=0)
    c = await p.complete(request())
    assert seen == [("POST", "/v1/responses")] + [("GET", "/v1/responses/resp_bg1")] * 3
    assert c.text == MESSAGE_ITEM["content"][0]["text"] and c.usage.reasoning_tokens == 448
    assert c.finish_reason == "stop" and c.request_id == "req_1"


async def test_background_body_and_stream_yields_the_final_text_as_one_delta():
    queued = response_body([], status="queued", usage=None, background=True, id="resp_bg2")
    done = response_body([MESSAGE_ITEM], background=True, id="resp_bg2")
    seen, handler = recorder(httpx.Response(200, json=queued), httpx.Response(200, json=done))
    items = [i async for i in provider(handler, background=True, poll_interval=0).stream(request())]
    body = body_of(seen[0])
    assert body["background"] is True and body["store"] is True and "stream" not in body
    assert [type(i) for i in items] == [Delta, Completion] and items[0].text == items[1].text


async def test_a_few_failed_polls_are_ridden_out_and_a_failed_job_raises():
    queued = response_body([], status="queued", usage=None, background=True, id="resp_bg3")
    failed = response_body([], status="failed", usage=None, id="resp_bg3",
                           error={"code": "server_error", "message": "The server had an error"})
    seen, handler = recorder(httpx.Response(200, json=queued), httpx.Response(503, json={"error": {"message": "busy"}}),
                             httpx.Response(200, json=failed))
    with pytest.raises(ProviderError, match="server_error") as info:
        await provider(handler, background=True, poll_interval=0).complete(request())
    assert info.value.status == 500 and info.value.retryable
    assert [r.method for r in seen] == ["POST", "GET", "GET"]  # the job ended on its own: no cancel


async def test_cancelling_a_background_call_cancels_the_response():
    queued = response_body([], status="queued", usage=None, background=True, id="resp_bg4")
    polled = asyncio.Event()
    seen = []

    async def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.path))
        if req.method == "POST" and req.url.path.endswith("/cancel"):
            return httpx.Response(200, json=queued | {"status": "cancelled"})
        if req.method == "GET":
            polled.set()
            await asyncio.Event().wait()  # the model thinks for ever
        return httpx.Response(200, json=queued)

    p = provider(handler, background=True, poll_interval=0)
    task = asyncio.create_task(p.complete(request()))
    await asyncio.wait_for(polled.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await p.aclose()
    assert seen == [("POST", "/v1/responses"), ("GET", "/v1/responses/resp_bg4"),
                    ("POST", "/v1/responses/resp_bg4/cancel")]


async def test_a_poll_that_fails_for_good_abandons_and_cancels_the_response():
    queued = response_body([], status="queued", usage=None, background=True, id="resp_bg5")
    seen, handler = recorder(httpx.Response(200, json=queued),
                             httpx.Response(404, json={"error": {"message": "No response found", "param": None,
                                                                 "type": "invalid_request_error", "code": None}}))
    with pytest.raises(FatalRequestError, match="No response found"):
        await provider(handler, background=True, poll_interval=0).complete(request())
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/v1/responses"), ("GET", "/v1/responses/resp_bg5"),
                                                      ("POST", "/v1/responses/resp_bg5/cancel")]


# --- ownership of a shared client ------------------------------------------------------------------------------------


class CountingTransport(httpx.MockTransport):
    def __init__(self, handler):
        super().__init__(handler)
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_a_shared_http_client_stays_its_owners():
    seen, handler = recorder(httpx.Response(200, json=response_body([MESSAGE_ITEM])))
    transport = CountingTransport(handler)
    chat = OpenAIProvider(BASE, KEY, transport=transport)
    responses = ResponsesProvider(BASE + "/", name="openai-responses", http=chat.http)
    assert responses.http is chat.http and responses.base_url == BASE
    c = await responses.complete(request())
    assert c.text.startswith("I'm not") and seen[0].headers["authorization"] == f"Bearer {KEY}"
    await responses.aclose()
    assert transport.closed == 0  # not its client: not closed
    await chat.aclose()
    assert transport.closed == 1
    with pytest.raises(ValueError, match="not of"):
        ResponsesProvider("http://elsewhere.local/v1", http=chat.http)
    own = CountingTransport(handler)
    await ResponsesProvider(BASE, KEY, transport=own).aclose()
    assert own.closed == 1
