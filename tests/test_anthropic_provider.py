"""The Anthropic Messages wire format, against httpx.MockTransport (the network edge only).

The response bodies and event streams below follow the shapes documented for the Messages API
(content blocks, usage with cache counters, named SSE events, ``{"type": "error", ...}`` bodies).
"""

import json

import httpx
import pytest

from heavy.errors import FatalRequestError, ProviderError, ProviderHTTPError, ProviderResponseError
from heavy.providers.anthropic import ANTHROPIC_VERSION, DEFAULT_MAX_TOKENS, AnthropicProvider
from heavy.providers.base import Completion, CompletionRequest, Delta
from heavy.types import Message, SamplingParams

pytestmark = pytest.mark.anyio
KEY = "sk-ant-test-SECRET-0123456789"
ROOT = "http://anthropic.test"


def message_body(text="The answer is 4.", **extra):
    body = {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test-1",
        "content": [{"type": "thinking", "thinking": "2 plus 2 is 4.", "signature": "sig"},
                    {"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 12, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 20,
                  "output_tokens": 30},
    }
    body.update(extra)
    return body


def provider(handler, **kw):
    return AnthropicProvider(ROOT, KEY, transport=httpx.MockTransport(handler), **kw)


def request(*messages, **params):
    msgs = list(messages) or [Message(role="user", content="2+2?")]
    return CompletionRequest(model="claude-test", messages=msgs, params=SamplingParams(**params))


def recorder(response):
    seen = {}

    def handler(req: httpx.Request) -> httpx.Response:
        seen["url"], seen["headers"], seen["body"] = str(req.url), req.headers, json.loads(req.content)
        return response() if callable(response) else response

    return seen, handler


async def test_request_url_headers_body_and_response():
    seen, handler = recorder(httpx.Response(200, json=message_body(), headers={"request-id": "req_abc"}))
    p = provider(handler)
    c = await p.complete(request(Message(role="system", content="Be brief."), Message(role="user", content="2+2?"),
                                 temperature=0.3, top_p=0.9, max_tokens=64, seed=3, stop="\n\n", logprobs=True))
    assert seen["url"] == f"{ROOT}/v1/messages"
    h = seen["headers"]
    assert h["x-api-key"] == KEY and h["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert "authorization" not in h
    assert seen["body"] == {"model": "claude-test", "max_tokens": 64, "system": "Be brief.",
                            "messages": [{"role": "user", "content": "2+2?"}],
                            "temperature": 0.3, "top_p": 0.9, "stop_sequences": ["\n\n"]}
    # seed and logprobs do not exist in this API: never sent
    assert c.text == "The answer is 4." and c.reasoning == "2 plus 2 is 4."
    assert c.finish_reason == "stop" and c.model == "claude-test-1" and c.request_id == "req_abc"
    # prompt = input + cache writes + cache reads (input_tokens excludes both); thinking is inside output
    u = c.usage
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens) == (37, 30, 20, 0)
    assert c.logprobs is None
    await p.aclose()


async def test_defaults_roles_and_merging():
    seen, handler = recorder(httpx.Response(200, json=message_body()))
    msgs = [Message(role="developer", content="Rule one."), Message(role="system", content="Rule two."),
            Message(role="user", content="a"), Message(role="tool", content="b"),
            Message(role="assistant", content="c"), Message(role="user", content="d")]
    await provider(handler, default_max_tokens=123).complete(request(*msgs))
    body = seen["body"]
    assert body["max_tokens"] == 123 and body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c"}, {"role": "user", "content": "d"}]
    assert "stream" not in body and "temperature" not in body
    seen2, handler2 = recorder(httpx.Response(200, json=message_body()))
    await provider(handler2).complete(request())
    assert seen2["body"]["max_tokens"] == DEFAULT_MAX_TOKENS and "system" not in seen2["body"]


async def test_images_become_image_blocks_and_native_blocks_pass_through():
    native = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hi"}}
    parts = [{"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
             {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
             native]
    seen, handler = recorder(httpx.Response(200, json=message_body()))
    await provider(handler).complete(request(Message(role="user", content=parts)))
    assert seen["body"]["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        native]


async def test_system_blocks_and_extra_body():
    seen, handler = recorder(httpx.Response(200, json=message_body()))
    system = Message(role="system", content=[{"type": "text", "text": "Long context.", "cache_control": {"type": "ephemeral"}}])
    req = request(system, Message(role="system", content="Short."), Message(role="user", content="q"))
    req.extra_body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    await provider(handler).complete(req)
    assert seen["body"]["system"] == [{"type": "text", "text": "Long context.", "cache_control": {"type": "ephemeral"}},
                                      {"type": "text", "text": "Short."}]
    assert seen["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_thinking_drops_sampling_modifiers_and_makes_room_for_its_budget():
    p = AnthropicProvider(ROOT, KEY, default_max_tokens=1000)
    req = request(temperature=0.7, top_p=0.9)
    req.extra_body["thinking"] = {"type": "enabled", "budget_tokens": 2048}
    body = p.build_body(req, stream=False)
    assert "temperature" not in body and "top_p" not in body and body["max_tokens"] == 3048
    req = request(temperature=0.7, max_tokens=4000)
    req.extra_body["thinking"] = {"type": "enabled", "budget_tokens": 2048}
    assert p.build_body(req, stream=True)["max_tokens"] == 4000  # the caller's own limit is kept
    req = request(temperature=0.7)
    req.extra_body["thinking"] = {"type": "disabled"}
    assert p.build_body(req, stream=False)["temperature"] == 0.7
    await p.aclose()


def sse(*events):
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)


def stream_events(stop_reason="max_tokens"):
    start = {"type": "message_start", "message": {
        "id": "msg_02", "type": "message", "role": "assistant", "model": "claude-test-1", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4, "output_tokens": 1}}}
    return [
        ("message_start", start),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Two and "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "two."}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "The answer "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "is 4."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                           "usage": {"output_tokens": 25}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def streaming(text, status=200, **headers):
    return httpx.Response(status, text=text, headers={"content-type": "text/event-stream", **headers})


async def test_streaming_keeps_thinking_apart_and_reports_usage():
    seen, handler = recorder(streaming(sse(*stream_events()), **{"request-id": "req_s"}))
    items = [i async for i in provider(handler).stream(request(max_tokens=25))]
    assert seen["body"]["stream"] is True
    deltas = [i for i in items if isinstance(i, Delta)]
    assert [d.reasoning for d in deltas if d.reasoning] == ["Two and ", "two."]
    assert [d.text for d in deltas if d.text] == ["The answer ", "is 4."]
    assert all(not (d.text and d.reasoning) for d in deltas)
    final = items[-1]
    assert isinstance(final, Completion) and sum(isinstance(i, Completion) for i in items) == 1
    assert final.text == "The answer is 4." and final.reasoning == "Two and two."
    assert final.finish_reason == "length" and final.model == "claude-test-1" and final.request_id == "req_s"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.cached_tokens) == (13, 25, 4)


async def test_stream_without_request_id_header_uses_the_message_id():
    _, handler = recorder(streaming(sse(*stream_events("end_turn"))))
    final = [i async for i in provider(handler).stream(request())][-1]
    assert final.request_id == "msg_02" and final.finish_reason == "stop"


@pytest.mark.parametrize("kind,status,retryable", [("overloaded_error", 529, True), ("api_error", 500, True),
                                                    ("invalid_request_error", 400, False)])
async def test_error_event_inside_a_200_stream(kind, status, retryable):
    events = stream_events()[:9] + [("error", {"type": "error", "error": {"type": kind, "message": "Overloaded"}})]
    _, handler = recorder(streaming(sse(*events), **{"request-id": "req_e"}))
    got = []
    with pytest.raises(ProviderError) as info:
        async for item in provider(handler).stream(request()):
            got.append(item)
    e = info.value
    assert not isinstance(e, ProviderHTTPError)
    assert (e.status, e.retryable, e.request_id, e.provider, e.model) == (status, retryable, "req_e", "anthropic", "claude-test")
    assert kind in str(e) and "Overloaded" in str(e)
    assert "".join(d.text for d in got) == "The answer "  # what arrived before the error was delivered


async def test_truncated_stream_is_an_error():
    _, handler = recorder(streaming(sse(*stream_events()[:9])))
    with pytest.raises(ProviderResponseError, match="message_stop") as info:
        [i async for i in provider(handler).stream(request())]
    assert info.value.retryable


@pytest.mark.parametrize("status,kind", [(400, "invalid_request_error"), (401, "authentication_error"),
                                         (403, "permission_error"), (404, "not_found_error"),
                                         (429, "rate_limit_error"), (500, "api_error"), (529, "overloaded_error")])
async def test_http_errors_map_to_the_error_tree_without_the_key(status, kind):
    err = {"type": "error", "error": {"type": kind, "message": f"bad thing (key {KEY})"}, "request_id": "req_err"}
    _, handler = recorder(httpx.Response(status, json=err, headers={"request-id": "req_err"}))
    with pytest.raises(ProviderHTTPError) as info:
        await provider(handler).complete(request())
    e = info.value
    assert (e.status, e.request_id, e.provider, e.model) == (status, "req_err", "anthropic", "claude-test")
    assert "bad thing" in str(e) and KEY not in str(e) and KEY not in (e.body or "")
    assert e.retryable == (status in (429, 500, 529))
    assert isinstance(e, FatalRequestError) == (status in (400, 401, 403, 404))


async def test_http_error_before_a_stream_starts():
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    _, handler = recorder(httpx.Response(529, json=err))
    with pytest.raises(ProviderHTTPError, match="Overloaded") as info:
        [i async for i in provider(handler).stream(request())]
    assert info.value.status == 529 and info.value.retryable


async def test_non_json_shapeless_and_error_bodies_with_200():
    _, garbage = recorder(httpx.Response(200, text="<html>gateway</html>"))
    with pytest.raises(ProviderResponseError, match="not JSON"):
        await provider(garbage).complete(request())
    _, shapeless = recorder(httpx.Response(200, json={"type": "message"}))
    with pytest.raises(ProviderResponseError, match="content"):
        await provider(shapeless).complete(request())
    _, error_200 = recorder(httpx.Response(200, json={"type": "error", "error": {"type": "overloaded_error",
                                                                                   "message": "Overloaded"}}))
    with pytest.raises(ProviderError, match="Overloaded") as info:
        await provider(error_200).complete(request())
    assert info.value.retryable and info.value.status == 529


async def test_no_key_sends_no_key_header():
    seen, handler = recorder(httpx.Response(200, json=message_body()))
    await AnthropicProvider(ROOT + "/", None, transport=httpx.MockTransport(handler)).complete(request())
    assert "x-api-key" not in seen["headers"] and seen["url"] == f"{ROOT}/v1/messages"
