"""The Gemini generateContent wire format, against httpx.MockTransport (the network edge only).

The bodies below follow the documented GenerateContentResponse shape (candidates with content parts,
``thought`` parts, ``finishReason``, ``promptFeedback``, ``usageMetadata``, ``logprobsResult``) and
the google.rpc error body ``{"error": {"code", "message", "status"}}``.
"""

import json

import httpx
import pytest

from heavy.errors import FatalRequestError, ProviderError, ProviderHTTPError, ProviderResponseError
from heavy.providers.base import Completion, CompletionRequest, Delta
from heavy.providers.gemini import GeminiProvider
from heavy.types import Message, SamplingParams

pytestmark = pytest.mark.anyio
KEY = "AIzaSyTEST-secret-0123456789abcdefghijk"
ROOT = "http://gemini.test"


def response_body(text="The answer is 4.", finish="STOP", **extra):
    body = {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Adding two and two.", "thought": True},
            {"text": text}]}, "finishReason": finish, "index": 0}],
        "usageMetadata": {"promptTokenCount": 14, "candidatesTokenCount": 6, "thoughtsTokenCount": 40,
                          "cachedContentTokenCount": 8, "totalTokenCount": 60},
        "modelVersion": "gemini-test-001", "responseId": "resp-1",
    }
    body.update(extra)
    return body


def provider(handler, **kw):
    return GeminiProvider(ROOT, KEY, transport=httpx.MockTransport(handler), **kw)


def request(*messages, model="gemini-test", **params):
    msgs = list(messages) or [Message(role="user", content="2+2?")]
    return CompletionRequest(model=model, messages=msgs, params=SamplingParams(**params))


def recorder(response):
    seen = {}

    def handler(req: httpx.Request) -> httpx.Response:
        seen["url"], seen["headers"], seen["body"] = str(req.url), req.headers, json.loads(req.content)
        return response

    return seen, handler


async def test_request_url_headers_body_and_response():
    seen, handler = recorder(httpx.Response(200, json=response_body()))
    msgs = [Message(role="system", content="Be brief."), Message(role="user", content="hi"),
            Message(role="assistant", content="Hello."), Message(role="user", content="2+2?"),
            Message(role="tool", content="(tool output)")]
    c = await provider(handler).complete(request(*msgs, temperature=0.3, top_p=0.9, max_tokens=64, seed=3,
                                                 stop=["\n\n"]))
    assert seen["url"] == f"{ROOT}/v1beta/models/gemini-test:generateContent"
    assert seen["headers"]["x-goog-api-key"] == KEY and KEY not in seen["url"]
    assert "authorization" not in seen["headers"]
    assert seen["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "Hello."}]},
                     {"role": "user", "parts": [{"text": "2+2?"}, {"text": "(tool output)"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.3, "topP": 0.9, "maxOutputTokens": 64, "seed": 3,
                             "stopSequences": ["\n\n"]},
    }
    assert c.text == "The answer is 4." and c.reasoning == "Adding two and two."
    assert c.finish_reason == "stop" and c.model == "gemini-test-001"
    assert c.request_id == "resp-1"  # no request-id header: the responseId identifies the call
    # candidatesTokenCount excludes thoughts: completion = candidates + thoughts, as OpenAI counts it
    u = c.usage
    assert (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens, u.cached_tokens) == (14, 46, 40, 8)
    assert c.logprobs is None


async def test_minimal_body_and_model_paths():
    seen, handler = recorder(httpx.Response(200, json=response_body(), headers={"x-request-id": "hdr-1"}))
    p = provider(handler)
    c = await p.complete(request())
    assert seen["body"] == {"contents": [{"role": "user", "parts": [{"text": "2+2?"}]}]}
    assert c.request_id == "hdr-1"
    await p.complete(request(model="tunedModels/my-tune"))
    assert seen["url"] == f"{ROOT}/v1beta/tunedModels/my-tune:generateContent"
    await p.complete(request(model="sim@accuracy=0.6,latency=0"))
    assert seen["url"] == f"{ROOT}/v1beta/models/sim@accuracy=0.6,latency=0:generateContent"
    assert p.path("a b", stream=True) == "v1beta/models/a%20b:streamGenerateContent?alt=sse"


async def test_extra_body_merges_into_generation_config():
    seen, handler = recorder(httpx.Response(200, json=response_body()))
    req = request(temperature=0.5)
    req.extra_body.update(generationConfig={"thinkingConfig": {"includeThoughts": True}},
                          safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}])
    await provider(handler).complete(req)
    assert seen["body"]["generationConfig"] == {"temperature": 0.5, "thinkingConfig": {"includeThoughts": True}}
    assert seen["body"]["safetySettings"][0]["threshold"] == "BLOCK_NONE"


async def test_images_and_audio_become_parts():
    parts = [{"type": "text", "text": "what is this?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
             {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg?x=1"}},
             {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGR"}},
             {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "mp3"}},
             {"type": "fileData", "fileData": {"mimeType": "application/pdf", "fileUri": "files/abc"}}]
    seen, handler = recorder(httpx.Response(200, json=response_body()))
    await provider(handler).complete(request(Message(role="user", content=parts)))
    assert seen["body"]["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "https://example.com/cat.jpg?x=1", "mimeType": "image/jpeg"}},
        {"inlineData": {"mimeType": "image/webp", "data": "UklGR"}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "UklGRg=="}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "files/abc"}}]


async def test_logprobs_requested_and_mapped():
    lp = {"topCandidates": [{"candidates": [{"token": "4", "logProbability": -0.1},
                                            {"token": "5", "logProbability": -2.5}]},
                            {"candidates": [{"token": ".", "logProbability": -0.01}]}],
          "chosenCandidates": [{"token": "4", "logProbability": -0.1}, {"token": ".", "logProbability": -0.01}]}
    body = response_body("4.")
    body["candidates"][0]["logprobsResult"] = lp
    seen, handler = recorder(httpx.Response(200, json=body))
    c = await provider(handler).complete(request(logprobs=True, top_logprobs=2))
    assert seen["body"]["generationConfig"] == {"responseLogprobs": True, "logprobs": 2}
    assert [(t.token, t.logprob, t.top) for t in c.logprobs] == [("4", -0.1, {"4": -0.1, "5": -2.5}),
                                                                 (".", -0.01, {".": -0.01})]
    seen, handler = recorder(httpx.Response(200, json=body))
    assert (await provider(handler).complete(request(logprobs=True))).logprobs[0].top == {"4": -0.1, "5": -2.5}
    assert seen["body"]["generationConfig"] == {"responseLogprobs": True}


def sse(*chunks):
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)


def chunk(*parts, finish=None, usage=None, logprobs=None):
    cand = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    if logprobs:
        cand["logprobsResult"] = {"chosenCandidates": logprobs}
    out = {"candidates": [cand], "modelVersion": "gemini-test-001", "responseId": "resp-s"}
    if usage:
        out["usageMetadata"] = usage
    return out


def streaming(text, status=200, **headers):
    return httpx.Response(status, text=text, headers={"content-type": "text/event-stream", **headers})


async def test_streaming_keeps_thoughts_apart_and_takes_the_last_usage():
    stream = sse(
        chunk({"text": "Adding ", "thought": True}, usage={"promptTokenCount": 9, "totalTokenCount": 9}),
        chunk({"text": "two and two.", "thought": True}),
        chunk({"text": "The answer "}, logprobs=[{"token": "The", "logProbability": -0.2}]),
        chunk({"text": "is 4."}, finish="MAX_TOKENS", logprobs=[{"token": " is", "logProbability": -0.3}],
              usage={"promptTokenCount": 9, "candidatesTokenCount": 5, "thoughtsTokenCount": 7, "totalTokenCount": 21}),
    )
    seen, handler = recorder(streaming(stream))
    items = [i async for i in provider(handler).stream(request(logprobs=True))]
    assert seen["url"] == f"{ROOT}/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
    assert "stream" not in seen["body"]
    deltas = [i for i in items if isinstance(i, Delta)]
    assert [d.reasoning for d in deltas if d.reasoning] == ["Adding ", "two and two."]
    assert [d.text for d in deltas if d.text] == ["The answer ", "is 4."]
    final = items[-1]
    assert isinstance(final, Completion) and sum(isinstance(i, Completion) for i in items) == 1
    assert final.text == "The answer is 4." and final.reasoning == "Adding two and two."
    assert final.finish_reason == "length" and final.request_id == "resp-s" and final.model == "gemini-test-001"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.reasoning_tokens) == (9, 12, 7)
    assert [t.token for t in final.logprobs] == ["The", " is"]


async def test_max_tokens_spent_thinking_is_an_empty_answer_not_an_error():
    body = {"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}],
            "usageMetadata": {"promptTokenCount": 5, "thoughtsTokenCount": 64, "totalTokenCount": 69}}
    _, handler = recorder(httpx.Response(200, json=body))
    c = await provider(handler).complete(request(max_tokens=64))
    assert (c.text, c.reasoning, c.finish_reason, c.usage.completion_tokens) == ("", None, "length", 64)


BLOCKED_PROMPT = {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]},
    "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}, "responseId": "resp-b"}
BLOCKED_ANSWER = {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "MEDIUM", "blocked": True}]}], "responseId": "resp-b"}


@pytest.mark.parametrize("body,needle", [
    (BLOCKED_PROMPT, "blockReason SAFETY"),
    (BLOCKED_ANSWER, "finishReason SAFETY"),
    ({**response_body(), "candidates": [{**response_body()["candidates"][0], "finishReason": "RECITATION"}]},
     "finishReason RECITATION"),
    ({"usageMetadata": {"promptTokenCount": 3}}, "no candidates"),
    ({"candidates": []}, "no candidates"),
])
@pytest.mark.parametrize("streamed", [False, True])
async def test_blocks_and_empty_candidates_are_clear_failures(body, needle, streamed):
    resp = streaming(sse(body)) if streamed else httpx.Response(200, json=body)
    _, handler = recorder(resp)
    p = provider(handler)
    with pytest.raises(ProviderResponseError, match=needle) as info:
        if streamed:
            [i async for i in p.stream(request())]
        else:
            await p.complete(request())
    e = info.value
    assert not e.retryable and (e.provider, e.model) == ("gemini", "gemini-test")
    if "resp-b" in json.dumps(body):
        assert e.request_id == "resp-b"


async def test_safety_stop_after_some_streamed_text_fails_the_call():
    stream = sse(chunk({"text": "Here is how "}), {"candidates": [{"finishReason": "SAFETY", "index": 0}]})
    _, handler = recorder(streaming(stream))
    with pytest.raises(ProviderResponseError, match="SAFETY"):
        [i async for i in provider(handler).stream(request())]


@pytest.mark.parametrize("status,code,retryable", [(400, "INVALID_ARGUMENT", False), (403, "PERMISSION_DENIED", False),
                                                   (404, "NOT_FOUND", False), (429, "RESOURCE_EXHAUSTED", True),
                                                   (500, "INTERNAL", True), (503, "UNAVAILABLE", True)])
async def test_http_errors_map_to_the_error_tree_without_the_key(status, code, retryable):
    err = {"error": {"code": status, "message": f"bad thing (key {KEY})", "status": code}}
    _, handler = recorder(httpx.Response(status, json=err, headers={"x-request-id": "req-err"}))
    with pytest.raises(ProviderHTTPError) as info:
        await provider(handler).complete(request())
    e = info.value
    assert (e.status, e.request_id, e.provider, e.model, e.retryable) == (status, "req-err", "gemini", "gemini-test", retryable)
    assert "bad thing" in str(e) and KEY not in str(e) and KEY not in (e.body or "")
    assert isinstance(e, FatalRequestError) == (status in (400, 403, 404))


async def test_http_error_before_a_stream_starts():
    err = {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}
    _, handler = recorder(httpx.Response(429, json=err))
    with pytest.raises(ProviderHTTPError, match="Resource has been exhausted") as info:
        [i async for i in provider(handler).stream(request())]
    assert info.value.status == 429 and info.value.retryable


async def test_error_chunk_inside_a_200_stream():
    stream = sse(chunk({"text": "The answer "}),
                 {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
    _, handler = recorder(streaming(stream))
    with pytest.raises(ProviderError, match="overloaded") as info:
        [i async for i in provider(handler).stream(request())]
    e = info.value
    assert not isinstance(e, ProviderHTTPError) and e.status == 503 and e.retryable and "UNAVAILABLE" in str(e)


async def test_truncated_stream_and_garbage():
    _, handler = recorder(streaming(sse(chunk({"text": "The answer "}))))
    with pytest.raises(ProviderResponseError, match="finishReason") as info:
        [i async for i in provider(handler).stream(request())]
    assert info.value.retryable
    _, handler = recorder(httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(ProviderResponseError, match="not JSON"):
        await provider(handler).complete(request())
    _, handler = recorder(streaming("data: {not json\n\n"))
    with pytest.raises(ProviderResponseError, match="not JSON"):
        [i async for i in provider(handler).stream(request())]
