"""Prompt caching and several choices per request, piece by piece: each provider's request and usage fields,
the simulator's cache rules (minimum lengths, steps, marks, lifetimes, when an entry becomes readable), and
the price of cache reads and writes."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from heavy import pricing
from heavy.caching import cache_rules
from heavy.models import parse_spec
from heavy.providers.anthropic import AnthropicProvider
from heavy.providers.base import CompletionRequest
from heavy.providers.factory import build_provider
from heavy.providers.gemini import _usage as gemini_usage
from heavy.providers.openai import OpenAIProvider
from heavy.providers.openai import _usage as openai_usage
from heavy.sim import SimConfig, SimulatedLLM
from heavy.sim.anthropic_wire import AnthropicWire
from heavy.sim.cache import PromptCache
from heavy.sim.openai_wire import OpenAIWire
from heavy.sim.wire import SimHTTPError
from heavy.types import Message, Usage

pytestmark = pytest.mark.anyio

LONG = " ".join(["token"] * 3000)


def messages(system: str = LONG, question: str = "What is 2 + 2?") -> list[Message]:
    return [Message(role="system", content=system), Message(role="user", content=question)]


# --- providers: what goes out, what is read back --------------------------------------------------------------


def test_anthropic_marks_the_end_of_the_shared_prefix():
    p = AnthropicProvider("http://x.test")
    convo = [*messages(), Message(role="assistant", content="Let me think."), Message(role="user", content="Go on.")]
    body = p.build_body(CompletionRequest(model="m", messages=convo, cache_prefix=2), stream=False)
    assert body["system"] == LONG  # the mark is on the user turn that ends the prefix
    assert body["messages"][0]["content"] == [{"type": "text", "text": "What is 2 + 2?",
                                               "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][2]["content"] == "Go on."
    system_only = p.build_body(CompletionRequest(model="m", messages=convo, cache_prefix=1), stream=False)
    assert system_only["system"] == [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    assert p.build_body(CompletionRequest(model="m", messages=convo), stream=False)["messages"][0]["content"] == \
        "What is 2 + 2?"


def test_anthropic_leaves_a_prefix_unmarked_when_the_callers_marks_use_all_four():
    own = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(4)]
    p = AnthropicProvider("http://x.test")
    body = p.build_body(CompletionRequest(model="m", messages=[Message(role="user", content=own)], cache_prefix=1),
                        stream=False)
    assert sum("cache_control" in b for b in body["messages"][0]["content"]) == 4


def test_anthropic_reads_cache_reads_and_writes_apart():
    p = AnthropicProvider("http://x.test")
    c = p.parse_message({"content": [{"type": "text", "text": "4"}], "usage": {
        "input_tokens": 10, "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 0, "output_tokens": 3}},
        model="m")
    assert (c.usage.prompt_tokens, c.usage.cache_write_tokens, c.usage.cache_read_tokens, c.usage.uncached_tokens) == \
        (2010, 2000, 0, 10)


def test_openai_sends_n_and_the_cache_key_only_where_they_are_known():
    request = CompletionRequest(model="m", messages=messages(), n=4, cache_key="heavy-abc")
    body = OpenAIProvider("http://x.test/v1", cache_key_field="prompt_cache_key").build_body(request, stream=True)
    assert (body["n"], body["prompt_cache_key"]) == (4, "heavy-abc")
    assert "prompt_cache_key" not in OpenAIProvider("http://x.test/v1").build_body(request, stream=False)
    own = build_provider(parse_spec("openai:gpt-4.1", api_key="sk-x"))
    elsewhere = build_provider(parse_spec("openai:gpt-4.1", base_url="http://127.0.0.1:9/v1"))
    assert (own.max_choices, own.profiles("gpt-4.1").cache_key_field) == (128, "prompt_cache_key")
    assert (elsewhere.max_choices, elsewhere.profiles("gpt-4.1").cache_key_field) == (1, None)
    assert "prompt_cache_key" not in elsewhere.inner.wires["openai"].build_body(request, stream=False)
    assert build_provider(parse_spec("llamacpp:any", base_url="http://127.0.0.1:9/v1")).max_choices == 0


async def test_openai_reads_every_choice_streamed_or_not():
    app = SimulatedLLM(SimConfig(accuracy=1.0, seed=3))
    p = OpenAIProvider("http://sim.test/v1", transport=httpx.ASGITransport(app=app))
    request = CompletionRequest(model="heavy-simulated", messages=messages(LONG, "What is 6 * 7?"), n=3)
    whole = await p.complete(request)
    pieces: dict[int, str] = {}
    final = None
    async for item in p.stream(request):
        if hasattr(item, "choice"):
            pieces[item.choice] = pieces.get(item.choice, "") + item.text
        else:
            final = item
    await p.aclose()
    for c in (whole, final):
        assert c is not None and len(c.choices) == 3 and c.text == c.choices[0].text
        assert c.usage.prompt_tokens == 3005 and all(x.finish_reason == "stop" for x in c.choices)
    assert [pieces[i] for i in range(3)] == [x.text for x in final.choices]
    assert whole.usage.cache_read_tokens == 0 and final.usage.cache_read_tokens == 1024 + 15 * 128


async def test_openai_counts_a_prompt_once_when_usage_comes_per_choice():
    """llama-server streams a usage chunk after each choice of an n-request, each with the whole prompt."""
    chunks = [{"choices": [{"index": i, "delta": {"content": t}, "finish_reason": "stop"}]} for i, t in enumerate("ab")]
    chunks += [{"choices": [], "usage": {"prompt_tokens": 31, "completion_tokens": 3,
                                         "prompt_tokens_details": {"cached_tokens": 30}}}] * 2
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"}))
    p = OpenAIProvider("http://llama.test/v1", transport=transport)
    items = [x async for x in p.stream(CompletionRequest(model="m", messages=messages(), n=2))]
    await p.aclose()
    final = items[-1]
    assert [c.text for c in final.choices] == ["a", "b"]
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.cache_read_tokens) == (31, 6, 30)


async def test_llama_server_says_how_many_choices_it_serves():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/props"
        return httpx.Response(200, json={"total_slots": 4})

    p = OpenAIProvider("http://llama.test/v1", transport=httpx.MockTransport(handler), max_choices=0)
    assert await p.choice_limit() == 4 and await p.choice_limit() == 4
    await p.aclose()
    other = OpenAIProvider("http://other.test/v1", transport=httpx.MockTransport(lambda r: httpx.Response(404)),
                           max_choices=0)
    assert await other.choice_limit() == 1
    await other.aclose()


def test_gemini_and_openai_usage_name_cache_reads():
    assert gemini_usage({"promptTokenCount": 5000, "cachedContentTokenCount": 4096,
                         "candidatesTokenCount": 7}).cache_read_tokens == 4096
    assert openai_usage({"prompt_tokens": 10, "prompt_cache_hit_tokens": 8}).cache_read_tokens == 8  # DeepSeek


# --- the simulator's cache rules --------------------------------------------------------------------------------


def parsed(wire, body: dict):
    return wire.parse(json.dumps(body).encode())


def anthropic_body(words: int, model: str = "claude-sonnet-4-5", control: dict | None = None) -> dict:
    block = {"type": "text", "text": " ".join(["w"] * words), "cache_control": control or {"type": "ephemeral"}}
    return {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": [block]}]}


def test_anthropic_caches_marked_prefixes_from_the_models_minimum():
    cache = PromptCache()
    short = parsed(AnthropicWire(), anthropic_body(1000))
    assert cache.account("anthropic", "claude-sonnet-4-5", short, now=0, first_token=lambda r: 1.0).write == 0
    haiku = parsed(AnthropicWire(), anthropic_body(3000, "claude-haiku-4-5"))
    assert cache.account("anthropic", "claude-haiku-4-5", haiku, now=0, first_token=lambda r: 1.0).write == 0
    sonnet = parsed(AnthropicWire(), anthropic_body(3000))
    first = cache.account("anthropic", "claude-sonnet-4-5", sonnet, now=0, first_token=lambda r: 1.0)
    early = cache.account("anthropic", "claude-sonnet-4-5", sonnet, now=0.5, first_token=lambda r: 1.5)
    late = cache.account("anthropic", "claude-sonnet-4-5", sonnet, now=1.0, first_token=lambda r: 1.2)
    expired = cache.account("anthropic", "claude-sonnet-4-5", sonnet, now=1.0 + 301, first_token=lambda r: 302)
    assert (first.write, early.write, late.read, expired.write) == (3000, 3000, 3000, 3000)
    unmarked = parsed(AnthropicWire(), {"model": "claude-sonnet-4-5", "max_tokens": 5,
                                         "messages": [{"role": "user", "content": " ".join(["w"] * 3000)}]})
    assert cache.account("anthropic", "claude-sonnet-4-5", unmarked, now=2, first_token=lambda r: 3) == \
        type(first)(0, 0)


def test_anthropic_refuses_what_the_api_refuses():
    with pytest.raises(SimHTTPError, match="ephemeral"):
        parsed(AnthropicWire(), anthropic_body(5, control={"type": "forever"}))
    with pytest.raises(SimHTTPError, match="empty text"):
        parsed(AnthropicWire(), {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}]}]})
    five = [{"type": "text", "text": f"p{i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(SimHTTPError, match="maximum of 4"):
        parsed(AnthropicWire(), {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": five}]})
    hour = parsed(AnthropicWire(), anthropic_body(2000, control={"type": "ephemeral", "ttl": "1h"}))
    assert hour.cache_marks == {2000: 3600.0}


def test_openai_caches_every_long_prompt_in_128_token_steps():
    cache = PromptCache()
    request = parsed(OpenAIWire(), {"model": "m", "messages": [{"role": "user", "content": " ".join(["w"] * 1500)}]})
    assert cache.account("openai", "m", request, now=0, first_token=lambda r: 1).read == 0
    assert cache.account("openai", "m", request, now=2, first_token=lambda r: 3) == type(
        cache.account("openai", "m", request, now=4, first_token=lambda r: 5))(read=1408, write=0)
    longer = parsed(OpenAIWire(), {"model": "m", "messages": [{"role": "user", "content": " ".join(["w"] * 2000)}]})
    assert cache.account("openai", "m", longer, now=6, first_token=lambda r: 7).read == 1408  # the shared prefix
    other_role = parsed(OpenAIWire(), {"model": "m", "messages": [{"role": "system",
                                                                    "content": " ".join(["w"] * 1500)}]})
    assert cache.account("openai", "m", other_role, now=8, first_token=lambda r: 9).read == 0


def test_cache_rules_follow_the_documentation():
    assert cache_rules("anthropic", "claude-3-5-haiku-latest").min_tokens == 2048
    assert cache_rules("anthropic", "claude-opus-4-5-20251101").min_tokens == 4096
    assert cache_rules("anthropic", "claude-sonnet-4-5@latency=1").min_tokens == 1024
    assert cache_rules("gemini", "gemini-2.5-pro").min_tokens == 2048
    assert cache_rules("gemini", "gemini-2.5-flash-lite").min_tokens == 2048
    assert (cache_rules("openai", "gpt-4.1").min_tokens, cache_rules("openai", "gpt-4.1").step) == (1024, 128)
    assert cache_rules("custom", "x") is None


async def test_a_cached_prefix_shortens_the_time_to_first_token():
    app = SimulatedLLM(SimConfig(accuracy=1.0, prefill_tokens_per_second=10_000))
    p = OpenAIProvider("http://sim.test/v1", transport=httpx.ASGITransport(app=app))
    request = CompletionRequest(model="heavy-simulated", messages=messages(" ".join(["w"] * 4000)))
    times = []
    for _ in range(2):
        started = time.monotonic()
        await p.complete(request)
        times.append(time.monotonic() - started)
    await p.aclose()
    assert times[0] > 0.35 and times[1] < 0.15  # 4000 tokens at 10k/s, then 96 uncached


# --- prices ----------------------------------------------------------------------------------------------------


def test_cache_reads_and_writes_are_priced_at_their_rates():
    price = pricing.price_for("anthropic", "claude-sonnet-4-5")
    assert (price.cached_input, price.cache_write) == (0.3, 3.75)
    u = Usage(prompt_tokens=1_000_000, cache_write_tokens=400_000, cache_read_tokens=500_000, completion_tokens=0)
    assert pricing.cost(u, price) == pytest.approx(0.1 * 3 + 0.4 * 3.75 + 0.5 * 0.3)
    assert pricing.list_cost(u, price) == pytest.approx(3.0)
    assert pricing.model_savings("anthropic:claude-sonnet-4-5", u) == pytest.approx(3.0 - 1.95)
    shared = Usage(prompt_tokens=1_000_000, shared_prompt_tokens=7_000_000)
    assert pricing.model_savings("openai:gpt-4.1", shared) == pytest.approx(7 * 2.0)
    assert pricing.saved_usd([("openai:gpt-4.1", shared), ("sim:x", shared)]) == pytest.approx(14.0)
    assert pricing.saved_usd([("mystery:model", shared)]) is None


def test_old_records_cached_tokens_are_cache_reads():
    u = Usage.model_validate({"prompt_tokens": 10, "cached_tokens": 4})
    assert u.cache_read_tokens == u.cached_tokens == 4 and "cached_tokens" not in u.model_dump()
