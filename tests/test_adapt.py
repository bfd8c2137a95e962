"""Refusals learned from endpoints (heavy/providers/adapt.py): every API's error shape is read, the refused field
is dropped for that (endpoint, model) for the rest of the process, the request is sent again at once (outside
the retry budget, never in a loop), and the Result's notes say so. Only the network edge is faked
(httpx.MockTransport answering with the APIs' verbatim error bodies)."""

from __future__ import annotations

import json

import httpx
import pytest

from heavy import Heavy
from heavy.errors import ProviderHTTPError
from heavy.profiles import learned
from heavy.providers.adapt import lesson_of

pytestmark = pytest.mark.anyio

OPENAI_TEMPERATURE = {"error": {"message": "Unsupported value: 'temperature' does not support 0.7 with this model. Only "
                                "the default (1) value is supported.", "type": "invalid_request_error",
                                "param": "temperature", "code": "unsupported_value"}}
OPENAI_MAX_TOKENS = {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                               "'max_completion_tokens' instead.", "type": "invalid_request_error",
                               "param": "max_tokens", "code": "unsupported_parameter"}}
RESPONSES_ONLY = {"error": {"message": "This model is only supported in v1/responses and not in v1/chat/completions.",
                            "type": "invalid_request_error", "param": "model", "code": None}}
EFFORT_VALUES = {"error": {"message": "Unsupported value: 'reasoning_effort' does not support 'high' with this model. "
                           "Supported values are: 'medium'.", "type": "invalid_request_error",
                           "param": "reasoning_effort", "code": "unsupported_value"}}
XAI_EFFORT = {"code": "Client specified an invalid argument",
              "error": "Model grok-4-latest does not support parameter reasoningEffort."}
XAI_STOP = {"code": "invalid-argument", "error": "Model grok-4.6 does not support parameter stop."}
ANTHROPIC_TEMPERATURE = {"type": "error", "error": {"type": "invalid_request_error", "message": (
    "`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at "
    "https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking")}}
ANTHROPIC_BOTH = {"type": "error", "error": {"type": "invalid_request_error", "message": (
    "`temperature` and `top_p` cannot both be specified for this model. Please use only one.")},
    "request_id": "req_011CTfrnTsra8hsUuM24BzEC"}
ANTHROPIC_ADAPTIVE = {"type": "error", "error": {"type": "invalid_request_error", "message": (
    '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and '
    '"output_config.effort" to control thinking behavior.')}}
ANTHROPIC_LEVELS = {"error": {"message": "This model does not support effort level 'xhigh'. Supported levels: high, low, "
                              "max, medium.", "type": "invalid_request_error"}, "type": "error"}
GEMINI_BUDGET_0 = {"error": {"code": 400, "message": "Budget 0 is invalid. This model only works in thinking mode.",
                             "status": "INVALID_ARGUMENT"}}
GEMINI_UNKNOWN = {"error": {"code": 400, "message": "Invalid JSON payload received. Unknown name \"seed\" at "
                            "'generation_config': Cannot find field.", "status": "INVALID_ARGUMENT"}}
GROQ_LOGPROBS = {"error": {"message": "`logprobs` is not supported with this model", "type": "invalid_request_error"}}
MISTRAL_422 = {"object": "error", "message": {"detail": [{"type": "extra_forbidden", "loc": ["body",
               "max_completion_tokens"], "msg": "Extra inputs are not permitted", "input": 32000}]},
               "type": "invalid_request_error", "param": None, "code": None}
DEEPSEEK = {"error": {"message": "deepseek-reasoner does not support the parameter `presence_penalty`",
                      "type": "invalid_request_error", "param": None, "code": "invalid_request_error"}}
NOT_A_FIELD = {"error": {"message": "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
                         "type": "invalid_request_error", "param": "messages[0].role", "code": "unsupported_value"}}


def error(body: dict, status: int = 400) -> ProviderHTTPError:
    return ProviderHTTPError("refused", status=status, body=json.dumps(body))


@pytest.mark.parametrize("body,status,field,value", [
    (OPENAI_TEMPERATURE, 400, "temperature", None),
    (OPENAI_MAX_TOKENS, 400, "max_tokens", "max_completion_tokens"),
    (RESPONSES_ONLY, 404, "wire", "responses"),
    (EFFORT_VALUES, 400, "efforts", ("medium",)),
    (XAI_EFFORT, 400, "reasoning", None),
    (XAI_STOP, 400, "stop", None),
    (ANTHROPIC_TEMPERATURE, 400, "temperature", None),
    (ANTHROPIC_BOTH, 400, "top_p", None),
    (ANTHROPIC_ADAPTIVE, 400, "control", "adaptive"),
    (ANTHROPIC_LEVELS, 400, "efforts", ("high", "low", "max", "medium")),
    (GEMINI_BUDGET_0, 400, "no_off", None),
    (GEMINI_UNKNOWN, 400, "seed", None),
    (GROQ_LOGPROBS, 400, "logprobs", None),
    (MISTRAL_422, 422, "max_tokens", "max_tokens"),
])
def test_every_apis_refusal_shape_is_read(body, status, field, value):
    lesson = lesson_of(error(body, status))
    assert lesson is not None and (lesson.field, lesson.value) == (field, value)


def test_what_is_asked_is_never_a_lesson():
    assert lesson_of(error(NOT_A_FIELD)) is None, "the messages are never dropped"
    assert lesson_of(error(DEEPSEEK)) is None, "heavy never sends penalties: nothing to drop"
    assert lesson_of(error({"error": {"message": "Invalid 'tools[0].function.name'", "param": "tools"}})) is None
    assert lesson_of(error(OPENAI_TEMPERATURE, 500)) is None and lesson_of(error(OPENAI_TEMPERATURE, 429)) is None


def answer(model: str) -> dict:
    return {"id": "c", "model": model, "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "The answer is 4."}}], "usage": {"prompt_tokens": 5, "completion_tokens": 5}}


class Endpoint:
    """An OpenAI-compatible endpoint refusing what *refuse* names (field -> the verbatim error body)."""

    def __init__(self, refuse: dict[str, dict]) -> None:
        self.refuse, self.bodies = refuse, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append((request.url.path, body))
        for field, error_body in self.refuse.items():
            if field in body:
                return httpx.Response(400, json=error_body)
        return httpx.Response(200, json=answer(body["model"]))


async def run(endpoint: Endpoint, model: str = "openai:new-model", n: int = 2, **options):
    h = Heavy(model=model, base_url="http://api.test/v1", api_key="sk-test", transport=httpx.MockTransport(endpoint),
              strategy="vote", n=n, **options)
    try:
        return await h.ask("What is 2 + 2?")
    finally:
        await h.aclose()


async def test_a_refused_field_is_dropped_resent_at_once_and_remembered():
    endpoint = Endpoint({"temperature": OPENAI_TEMPERATURE})
    result = await run(endpoint, temperature=0.9)
    assert result.answer == "4" and result.retries == 0, "the resend is not a retry"
    sent = [("temperature" in b) for _, b in endpoint.bodies]
    assert sent[0] and sent[-2:] == [False, False] and sent.count(True) <= 2, "each hypothesis resends once at most"
    assert any("temperature not sent for the rest of this process" in n for n in result.notes)
    assert "temperature" in learned("openai", "http://api.test/v1", "new-model")
    endpoint.bodies.clear()
    again = await run(endpoint, temperature=0.9)
    assert [("temperature" in b) for _, b in endpoint.bodies] == [False, False], "learned for the process"
    assert any("temperature=0.9 not sent" in n for n in again.notes), "later runs still say so"


async def test_a_call_never_loops_and_each_resend_must_learn_something_new():
    endpoint = Endpoint({"temperature": OPENAI_TEMPERATURE, "seed": {"error": {
        "message": "Unsupported parameter: 'seed' is not supported with this model.", "param": "seed",
        "code": "unsupported_parameter", "type": "invalid_request_error"}}})
    result = await run(endpoint, n=1, temperature=0.9, seed=3)
    assert result.answer == "4" and len(endpoint.bodies) == 3, "two lessons, two resends"
    stubborn = Endpoint({"messages": NOT_A_FIELD})
    with pytest.raises(Exception):
        await run(stubborn, n=1)
    assert len(stubborn.bodies) == 1, "nothing to learn: the error is the caller's"


async def test_an_endpoint_saying_a_model_lives_on_the_responses_api_moves_it_there():
    seen = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(404, json=RESPONSES_ONLY)
        body = json.loads(request.content)
        return httpx.Response(200, json={"id": "resp_1", "object": "response", "status": "completed",
                                         "model": body["model"], "output": [{"type": "message", "role": "assistant",
                                         "content": [{"type": "output_text", "text": "The answer is 4."}]}],
                                         "usage": {"input_tokens": 5, "output_tokens": 9,
                                                   "output_tokens_details": {"reasoning_tokens": 4}}})

    h = Heavy(model="openai:gpt-9-deep", base_url="http://api.test/v1", api_key="sk-test", n=1, strategy="vote",
              transport=httpx.MockTransport(endpoint))
    result = await h.ask("What is 2 + 2?")
    await h.aclose()
    assert seen == ["/v1/chat/completions", "/v1/responses"] and result.answer == "4"
    assert result.usage.reasoning_tokens == 4
    assert any("served by the Responses API" in n for n in result.notes)


async def test_a_token_limit_field_refused_is_renamed_not_dropped():
    endpoint = Endpoint({"max_tokens": OPENAI_MAX_TOKENS})
    h = Heavy(model="vllm:some-reasoner", base_url="http://api.test/v1", transport=httpx.MockTransport(endpoint),
              n=1, strategy="vote", max_tokens=300)
    result = await h.ask("What is 2 + 2?")
    await h.aclose()
    assert result.answer == "4"
    assert endpoint.bodies[-1][1]["max_completion_tokens"] == 300 and "max_tokens" not in endpoint.bodies[-1][1]


async def test_efforts_listed_by_a_refusal_are_used_from_then_on():
    endpoint = Endpoint({})

    def refusing(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("reasoning_effort") not in (None, "medium"):
            endpoint.bodies.append((request.url.path, body))
            return httpx.Response(400, json=EFFORT_VALUES)
        return endpoint(request)

    h = Heavy(model="openai:gpt-9-chat-latest", base_url="http://api.test/v1", api_key="sk-test", n=1,
              strategy="vote", transport=httpx.MockTransport(refusing), reasoning_effort="high")
    result = await h.ask("What is 2 + 2?")
    await h.aclose()
    assert [b.get("reasoning_effort") for _, b in endpoint.bodies] == ["high", "medium"] and result.answer == "4"
