"""Reasoning-model controls: ``reasoning_effort`` and ``thinking_budget`` are run options (every surface), mapped
to each provider's own field, and reasoning tokens are counted.

Every request goes through a real :class:`heavy.Heavy` (or the ``heavy serve`` app) whose network edge is an
httpx.MockTransport that records the body and answers in the provider's shape, usage included.
"""

from __future__ import annotations

import functools
import json

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.cli import cli
from heavy.settings import RunSettings, env_layer, plugin_fields
from heavy.types import EFFORT_BUDGETS, SamplingParams

BASE = {"openai": "http://api.test/v1", "xai": "http://api.test/v1", "anthropic": "http://api.test",
        "gemini": "http://api.test"}

ANSWERS = {
    "openai": {"id": "c", "model": "o4-mini", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "The answer is 4."}}], "usage": {
        "prompt_tokens": 12, "completion_tokens": 300, "completion_tokens_details": {"reasoning_tokens": 256}}},
    "anthropic": {"id": "msg", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "end_turn",
                  "content": [{"type": "thinking", "thinking": "2 and 2 make 4.", "signature": "s"},
                              {"type": "text", "text": "The answer is 4."}],
                  "usage": {"input_tokens": 12, "output_tokens": 300}},
    "gemini": {"candidates": [{"content": {"role": "model", "parts": [{"text": "2 and 2.", "thought": True},
                                                                      {"text": "The answer is 4."}]},
                               "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 44, "thoughtsTokenCount": 256}},
}
ANSWERS["xai"] = ANSWERS["openai"]


def recorded(wire: str):
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=ANSWERS[wire])

    return bodies, httpx.MockTransport(handler)


async def ask(wire: str, **options):
    bodies, transport = recorded(wire)
    h = Heavy(model=f"{wire}:m", base_url=BASE[wire], api_key="k", transport=transport, n=2, strategy="vote",
              **options)
    result = await h.ask("What is 2 + 2?", seed=1)
    await h.aclose()
    return result, bodies


@pytest.mark.anyio
@pytest.mark.parametrize("options,openai,anthropic,gemini", [
    ({"reasoning_effort": "high"}, "high", 24576, 24576),
    ({"reasoning_effort": "low"}, "low", 1024, 1024),
    ({"thinking_budget": 5000}, "medium", 5000, 5000),
    ({"thinking_budget": 512}, "low", 1024, 512),  # Anthropic's minimum budget is 1024
    ({"thinking_budget": 30000}, "high", 30000, 30000),
    ({"reasoning_effort": "low", "thinking_budget": 4096}, "low", 4096, 4096),  # each provider its own field
    ({"thinking_budget": 0}, "none", None, 0),  # 0: no thinking (effort "none"; nothing for Anthropic)
    ({}, None, None, None),
])
async def test_each_provider_gets_its_own_field(options, openai, anthropic, gemini):
    for wire in ("openai", "xai"):
        result, bodies = await ask(wire, **options)
        assert [b.get("reasoning_effort") for b in bodies] == [openai] * 2
        assert "thinking" not in bodies[0] and "thinkingConfig" not in bodies[0]
    result, bodies = await ask("anthropic", **options)
    thinking = bodies[0].get("thinking")
    assert thinking == ({"type": "enabled", "budget_tokens": anthropic} if anthropic else None)
    assert "reasoning_effort" not in bodies[0]
    if anthropic:  # thinking takes no temperature, and its budget counts against max_tokens
        assert "temperature" not in bodies[0] and bodies[0]["max_tokens"] > anthropic
    result, bodies = await ask("gemini", **options)
    config = bodies[0].get("generationConfig", {})
    assert config.get("thinkingConfig") == ({"thinkingBudget": gemini} if gemini is not None else None)


@pytest.mark.anyio
async def test_a_max_tokens_at_or_under_the_budget_makes_room_for_the_answer():
    _, bodies = await ask("anthropic", thinking_budget=2048, max_tokens=1000)
    assert bodies[0]["max_tokens"] == 3048 and bodies[0]["thinking"]["budget_tokens"] == 2048
    _, bodies = await ask("anthropic", thinking_budget=2048, max_tokens=8000)
    assert bodies[0]["max_tokens"] == 8000, "a limit above the budget is the caller's"


@pytest.mark.anyio
async def test_reasoning_tokens_are_counted():
    result, _ = await ask("openai", reasoning_effort="high")
    assert [h.usage.reasoning_tokens for h in result.hypotheses] == [256, 256]
    assert result.usage.reasoning_tokens == 512 and result.usage.completion_tokens == 600
    result, _ = await ask("gemini", thinking_budget=1000)
    h = result.hypotheses[0]
    assert (h.usage.completion_tokens, h.usage.reasoning_tokens) == (300, 256), "candidates + thoughts"
    assert h.reasoning == "2 and 2." and h.text == "The answer is 4."
    result, _ = await ask("anthropic", thinking_budget=1000)
    h = result.hypotheses[0]
    assert h.usage.completion_tokens == 300 and h.usage.reasoning_tokens == 0, "inside output_tokens, not apart"
    assert h.reasoning == "2 and 2 make 4." and result.answer == "4"


def test_the_effort_budget_mapping():
    assert EFFORT_BUDGETS == {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576,
                              "xhigh": 32768, "max": 65536}
    efforts = {b: SamplingParams(thinking_budget=b).effort() for b in (0, 1024, 1025, 8192, 8193, 100000)}
    assert efforts == {0: "none", 1024: "low", 1025: "medium", 8192: "medium", 8193: "high", 100000: "high"}
    assert SamplingParams(reasoning_effort="medium").thinking_tokens() == 8192
    assert SamplingParams().effort() is None and SamplingParams().thinking_tokens() is None


def test_every_surface_has_them():
    for command in ("ask", "eval", "serve", "mcp"):
        out = CliRunner().invoke(cli, [command, "--help"], terminal_width=200).stdout
        assert "--reasoning-effort [none|minimal|low|medium|high|xhigh|max]" in out, command
        assert "--thinking-budget TOKENS" in out, command
    assert env_layer({"HEAVY_THINKING_BUDGET": "2048", "HEAVY_REASONING_EFFORT": "low"}) == {
        "reasoning_effort": "low", "thinking_budget": 2048}
    assert {"reasoning_effort", "thinking_budget"} <= set(plugin_fields())
    with pytest.raises(Exception, match="reasoning_effort"):
        RunSettings.build(reasoning_effort="extreme")
    with pytest.raises(Exception, match="thinking_budget"):
        RunSettings.build(thinking_budget=-1)


@pytest.mark.anyio
async def test_the_proxy_body_sets_them(monkeypatch):
    from heavy.serve import create_app
    from heavy.serve.app import ServeSettings
    from heavy.sim.transport import StreamingASGITransport

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-reasoning-0123456789")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://api.test")
    bodies, transport = recorded("anthropic")
    app = create_app({"model": "anthropic:m", "strategy": "vote"}, settings=ServeSettings(),
                     heavy_factory=functools.partial(Heavy, transport=transport))
    client = httpx.AsyncClient(transport=StreamingASGITransport(app), base_url="http://heavy.test/v1")
    try:
        msgs = [{"role": "user", "content": "What is 2 + 2?"}]
        r = await client.post("/chat/completions", json={"model": "heavy", "messages": msgs, "n": 2,
                                                          "reasoning_effort": "medium"})
        assert r.status_code == 200, r.text
        assert [b["thinking"] for b in bodies] == [{"type": "enabled", "budget_tokens": 8192}] * 2
        bodies.clear()
        r = await client.post("/chat/completions", json={"model": "heavy", "messages": msgs, "n": 2,
                                                          "heavy": {"thinking_budget": 3000}})
        assert r.status_code == 200 and bodies[0]["thinking"]["budget_tokens"] == 3000
        r = await client.post("/chat/completions", json={"model": "heavy", "messages": msgs,
                                                          "heavy": {"thinking_budget": 10 ** 6}})
        assert r.status_code == 400 and r.json()["error"]["param"] == "heavy.thinking_budget"
        assert "--option-limit thinking_budget=" in r.json()["error"]["message"]
    finally:
        await client.aclose()
        await app.state.heavy.aclose()
