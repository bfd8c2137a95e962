"""The OpenAI Chat Completions wire format, against httpx.MockTransport (the network edge only)."""

import json

import httpx
import pytest

from heavy.errors import (ProviderConnectionError, ProviderHTTPError, ProviderResponseError, ProviderTimeout,
                          ProviderError)
from heavy.providers.base import Completion, CompletionRequest, Delta
from heavy.providers.openai import OpenAIProvider
from heavy.types import Message, SamplingParams

pytestmark = pytest.mark.anyio
KEY = "sk-test-SECRET-0123456789"


def completion_body(text="The answer is 4.", **extra):
    body = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16,
                  "completion_tokens_details": {"reasoning_tokens": 3},
                  "prompt_tokens_details": {"cached_tokens": 2}},
    }
    body.update(extra)
    return body


def provider(handler, **kw):
    return OpenAIProvider("http://test.local/v1", KEY, transport=httpx.MockTransport(handler), **kw)


def request(**params):
    return CompletionRequest(model="m", messages=[Message(role="user", content="2+2?")],
                             params=SamplingParams(**params))


async def test_request_body_headers_and_response():
    seen = {}

    def handler(req: httpx.Request) -> httpx.Response:
        seen["url"] = str(req.url)
        seen["auth"] = req.headers.get("authorization")
        seen["body"] = json.loads(req.content)
        return httpx.Response(200, json=completion_body(), headers={"x-request-id": "req-42"})

    p = provider(handler)
    c = await p.complete(request(temperature=0.7, max_tokens=64, seed=3, stop=["\n\n"], top_p=0.9))
    assert seen["url"] == "http://test.local/v1/chat/completions"
    assert seen["auth"] == f"Bearer {KEY}"
    body = seen["body"]
    assert body["model"] == "m" and body["messages"] == [{"role": "user", "content": "2+2?"}]
    # OpenAI's models take their token limit as max_completion_tokens (max_tokens is refused by its reasoning models).
    assert (body["temperature"], body["max_completion_tokens"], body["seed"], body["stop"], body["top_p"]) == \
        (0.7, 64, 3, ["\n\n"], 0.9)
    assert "n" not in body and "stream" not in body and "logprobs" not in body
    assert c.text == "The answer is 4." and c.finish_reason == "stop" and c.request_id == "req-42"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.reasoning_tokens, c.usage.cached_tokens) == (11, 5, 3, 2)
    await p.aclose()


async def test_max_tokens_field_is_configurable_and_no_key_means_no_auth():
    seen = {}

    def handler(req):
        seen["body"], seen["auth"] = json.loads(req.content), req.headers.get("authorization")
        return httpx.Response(200, json=completion_body())

    p = OpenAIProvider("http://test.local/v1", None, max_tokens_field="max_tokens",
                       transport=httpx.MockTransport(handler))
    await p.complete(request(max_tokens=10))
    assert seen["body"]["max_tokens"] == 10 and "max_completion_tokens" not in seen["body"]
    assert seen["auth"] is None
    await p.aclose()
    # Without an override, the preset's profile says: vLLM takes max_tokens.
    p = OpenAIProvider("http://test.local/v1", None, name="vllm", transport=httpx.MockTransport(handler))
    await p.complete(request(max_tokens=10))
    assert seen["body"]["max_tokens"] == 10 and "max_completion_tokens" not in seen["body"]


async def test_image_content_parts_pass_through_untouched():
    parts = [{"type": "text", "text": "what is this?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]
    seen = {}

    def handler(req):
        seen["body"] = json.loads(req.content)
        return httpx.Response(200, json=completion_body())

    await provider(handler).complete(CompletionRequest(model="m", messages=[Message(role="user", content=parts)]))
    assert seen["body"]["messages"][0]["content"] == parts


async def test_logprobs_requested_and_parsed():
    lp = {"content": [{"token": "4", "logprob": -0.1, "bytes": [52],
                       "top_logprobs": [{"token": "4", "logprob": -0.1}, {"token": "5", "logprob": -2.5}]}]}
    seen = {}

    def handler(req):
        seen["body"] = json.loads(req.content)
        body = completion_body("4")
        body["choices"][0]["logprobs"] = lp
        return httpx.Response(200, json=body)

    c = await provider(handler).complete(request(logprobs=True, top_logprobs=2))
    assert seen["body"]["logprobs"] is True and seen["body"]["top_logprobs"] == 2
    assert c.logprobs[0].token == "4" and c.logprobs[0].logprob == -0.1
    assert c.logprobs[0].top == {"4": -0.1, "5": -2.5}


def sse(*chunks):
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


async def test_streaming_deltas_reasoning_and_usage():
    def chunk(delta, finish=None):
        return {"id": "c", "object": "chat.completion.chunk", "model": "m-1",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    stream = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "thinking"}),
        chunk({"content": "The answer "}),
        chunk({"content": "is 4."}),
        chunk({}, "stop"),
        {"id": "c", "object": "chat.completion.chunk", "choices": [],
         "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    )
    seen = {}

    def handler(req):
        seen["body"] = json.loads(req.content)
        return httpx.Response(200, text=stream, headers={"content-type": "text/event-stream", "x-request-id": "r9"})

    items = [i async for i in provider(handler).stream(request())]
    assert seen["body"]["stream"] is True and seen["body"]["stream_options"] == {"include_usage": True}
    deltas = [i for i in items if isinstance(i, Delta)]
    assert [d.text for d in deltas] == ["", "The answer ", "is 4."]
    assert deltas[0].reasoning == "thinking"
    final = items[-1]
    assert isinstance(final, Completion)
    assert final.text == "The answer is 4." and final.reasoning == "thinking"
    assert final.finish_reason == "stop" and final.usage.completion_tokens == 4 and final.request_id == "r9"


async def test_error_inside_stream_is_a_provider_error():
    body = 'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: {"error": {"message": "overloaded"}}\n\n'
    p = provider(lambda req: httpx.Response(200, text=body, headers={"content-type": "text/event-stream"}))
    with pytest.raises(ProviderError, match="overloaded"):
        [i async for i in p.stream(request())]


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 503])
async def test_http_errors_map_to_the_error_tree_without_the_key(status):
    err = {"error": {"message": f"bad thing (key {KEY})", "type": "invalid_request_error", "code": None}}

    def handler(req):
        return httpx.Response(status, json=err, headers={"x-request-id": "req-err"})

    with pytest.raises(ProviderHTTPError) as info:
        await provider(handler).complete(request())
    e = info.value
    assert (e.status, e.request_id, e.provider, e.model) == (status, "req-err", "openai", "m")
    assert "bad thing" in str(e)
    assert KEY not in str(e) and KEY not in (e.body or "")
    assert e.retryable == (status in (429, 500, 503))


async def test_http_error_on_stream():
    p = provider(lambda req: httpx.Response(401, json={"error": {"message": "no auth"}}))
    with pytest.raises(ProviderHTTPError, match="no auth") as info:
        [i async for i in p.stream(request())]
    assert info.value.status == 401


async def test_connection_and_timeout_errors():
    def refuse(req):
        raise httpx.ConnectError("refused", request=req)

    def slow(req):
        raise httpx.ReadTimeout("slow", request=req)

    with pytest.raises(ProviderConnectionError):
        await provider(refuse).complete(request())
    with pytest.raises(ProviderTimeout):
        await provider(slow).complete(request())


async def test_non_json_and_shapeless_bodies():
    with pytest.raises(ProviderResponseError, match="not JSON"):
        await provider(lambda r: httpx.Response(200, text="<html>gateway</html>")).complete(request())
    with pytest.raises(ProviderResponseError, match="choices"):
        await provider(lambda r: httpx.Response(200, json={"object": "x"})).complete(request())
