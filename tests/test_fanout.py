"""The fan-out modes end to end against the simulator: a real Heavy, the preset, the provider and both sides of
each wire format, the simulator's prompt cache playing each API's (heavy.sim.cache).

What is checked is what the bill would say: the prompt tokens each request paid uncached, read from the cache
or wrote to it (the simulator's counters and each hypothesis's usage), the number of requests, and the
hypotheses' own promises (one per index, its own text and events, failures recorded)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.cli import cli
from heavy.errors import OptionsError, QuorumError
from heavy.events import TokenDelta
from heavy.fanout import split_usage
from heavy.sim.transport import StreamingASGITransport
from heavy.providers.anthropic import AnthropicProvider
from heavy.providers.base import Completion, CompletionRequest
from heavy.providers.openai import OpenAIProvider
from heavy.providers.wrappers import RetryPolicy
from heavy.sim import SimConfig, SimulatedLLM
from heavy.types import Message, Usage
from helpers import arithmetic_questions, running_sim

pytestmark = pytest.mark.anyio

QUESTION = "What is 17 * 24 + 3?"
# 2,000 words: long enough for every API's cache
CONTEXT = " ".join(f"Clause {i} of the shared contract says nothing about arithmetic." for i in range(200))
ROOTS = {"anthropic": "http://sim.test", "gemini": "http://sim.test", "openai": "http://sim.test/v1"}


def wire_heavy(wire: str, model: str, config: SimConfig | None = None, **kw) -> tuple[Heavy, SimulatedLLM]:
    app = SimulatedLLM(config or SimConfig(accuracy=1.0, latency=0.05))
    # Streamed as over a socket (httpx's ASGITransport would hold a stream back until it ends).
    h = Heavy(model=f"{wire}:{model}", base_url=ROOTS[wire], transport=StreamingASGITransport(app), strategy="vote",
              **kw)
    return h, app


def prompt_words() -> int:
    return len(CONTEXT.split()) + len(QUESTION.split())


# --- stagger: one request first, the others read what it cached ---------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_anthropic_stagger_writes_once_and_the_others_read(stream):
    h, app = wire_heavy("anthropic", "claude-sonnet-4-5", n=4, fanout="stagger", stream=stream)
    r = await h.ask(QUESTION, system=CONTEXT, seed=1)
    await h.aclose()
    words = prompt_words()
    assert r.answer == "411" and len(r.successes) == 4
    assert (app.stats.cache_write_tokens, app.stats.cache_read_tokens) == (words, 3 * words)
    writers = [x for x in r.hypotheses if x.usage.cache_write_tokens]
    assert len(writers) == 1 and writers[0].usage.cache_write_tokens == words
    for x in r.hypotheses:
        assert x.usage.prompt_tokens == words and x.usage.uncached_tokens == 0
        if x is not writers[0]:
            assert x.usage.cache_read_tokens == words
            assert any("staggered fan-out: waited" in t for t in x.trace or [])
    assert (r.usage.cache_write_tokens, r.usage.cache_read_tokens) == (words, 3 * words)
    # 1.25 + 3 * 0.1 prompts instead of 4 at $3/M: saved = (4 - 1.55) * words * 3e-6
    assert r.saved_usd == pytest.approx((4 - 1.25 - 0.3) * words * 3.0 / 1e6)
    assert r.cost_usd == pytest.approx((1.25 + 0.3) * words * 3.0 / 1e6 + r.usage.completion_tokens * 15.0 / 1e6)


async def test_anthropic_parallel_marks_nothing_and_pays_every_prompt():
    h, app = wire_heavy("anthropic", "claude-sonnet-4-5", n=4, fanout="parallel")
    r = await h.ask(QUESTION, system=CONTEXT, seed=1)
    await h.aclose()
    assert (app.stats.cache_write_tokens, app.stats.cache_read_tokens) == (0, 0)
    assert r.usage.prompt_tokens == 4 * prompt_words() and r.saved_usd == pytest.approx(0.0)


async def test_anthropic_marked_requests_sent_together_all_write():
    """Why staggering is needed: marked requests at the same moment each miss and each pay a write."""
    app = SimulatedLLM(SimConfig(accuracy=1.0, latency=0.05))
    p = AnthropicProvider("http://sim.test", transport=httpx.ASGITransport(app=app))
    request = CompletionRequest(model="claude-sonnet-4-5", cache_prefix=2,
                                messages=[Message(role="system", content=CONTEXT),
                                          Message(role="user", content=QUESTION)])
    body = p.build_body(request, stream=False)
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    together = await asyncio.gather(*(p.complete(request) for _ in range(3)))
    later = await p.complete(request)
    await p.aclose()
    assert [c.usage.cache_write_tokens for c in together] == [prompt_words()] * 3
    assert (later.usage.cache_read_tokens, later.usage.cache_write_tokens) == (prompt_words(), 0)


async def test_stagger_holds_the_others_until_the_first_answers():
    """The others start when the first one's first token arrives, not when it ends: one latency is added."""
    config = SimConfig(accuracy=1.0, latency=0.3, tokens_per_second=100)  # answers take ~1 s to generate
    h, app = wire_heavy("anthropic", "claude-sonnet-4-5", config, n=3, fanout="stagger", stream=True)
    started = time.monotonic()
    r = await h.ask(QUESTION, system=CONTEXT, seed=1)
    wall = time.monotonic() - started
    await h.aclose()
    assert app.stats.max_in_flight == 3  # the leader was still generating when the two others started
    leader = max(r.hypotheses, key=lambda x: x.usage.cache_write_tokens)
    longest = max(x.usage.completion_tokens for x in r.hypotheses) / 100
    assert wall < 0.3 + 0.3 + longest + 0.4  # two latencies and the longest answer, not two answers
    for x in r.hypotheses:
        if x is not leader:
            waited = float(x.trace[0].split("waited ")[1].split("s ")[0])
            assert 0.25 < waited < 0.5


@pytest.mark.parametrize("wire,model", [("anthropic", "claude-sonnet-4-5"), ("gemini", "gemini-2.5-flash")])
async def test_auto_staggers_a_paid_api_only_when_its_cache_fits_the_prompt(wire, model):
    h, app = wire_heavy(wire, model, n=3)
    long = await h.ask(QUESTION, system=CONTEXT, seed=1)
    assert app.stats.cache_read_tokens == 2 * prompt_words() - (2 * (prompt_words() % 128) if wire == "gemini" else 0)
    assert long.usage.cache_read_tokens == app.stats.cache_read_tokens
    app.stats.reset()
    short = await h.ask(QUESTION, seed=2)
    await h.aclose()
    assert app.stats.cache_read_tokens == app.stats.cache_write_tokens == 0 and short.answer == "411"
    assert not any("staggered" in t for x in short.hypotheses for t in x.trace or [])


async def test_auto_does_not_mark_a_single_request():
    h, app = wire_heavy("anthropic", "claude-sonnet-4-5", n=1)
    await h.ask(QUESTION, system=CONTEXT, seed=1)
    await h.aclose()
    assert app.stats.cache_write_tokens == 0  # a write costs 1.25x and nobody would read it


async def test_openai_caches_in_128_token_steps_only_when_staggered():
    cached = 1024 + (prompt_words() - 1024) // 128 * 128
    for mode, reads in (("parallel", 0), ("stagger", 3 * cached)):
        app = SimulatedLLM(SimConfig(accuracy=1.0, latency=0.05))
        h = Heavy(model="mine:heavy-simulated", n=4, fanout=mode, strategy="vote",
                  providers={"mine": OpenAIProvider("http://sim.test/v1", transport=httpx.ASGITransport(app=app))})
        r = await h.ask(QUESTION, system=CONTEXT, seed=1)
        assert app.stats.cache_read_tokens == reads == r.usage.cache_read_tokens, mode
        assert app.stats.chat_requests == 4


# --- native n: the prompt sent once per request ---------------------------------------------------------------


async def test_openai_auto_asks_for_n_choices_and_shares_the_usage_out(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    app = SimulatedLLM(SimConfig(accuracy=0.5, latency=0.05))
    events = []
    h = Heavy(model="openai:gpt-4.1-mini", n=8, strategy="vote", transport=httpx.ASGITransport(app=app), stream=True,
              on_event=events.append)
    r = await h.ask(QUESTION, system=CONTEXT, seed=1)
    await h.aclose()
    words = prompt_words()
    assert app.stats.chat_requests == 1 and app.stats.prompt_tokens == words
    assert list(app.stats.cache_keys.values()) == [1]
    assert [x.index for x in r.hypotheses] == list(range(8)) and all(x.ok for x in r.hypotheses)
    assert len({x.text for x in r.hypotheses}) > 1, "the choices are samples of their own"
    assert r.usage.prompt_tokens == words and r.usage.shared_prompt_tokens == 7 * words
    assert sum(x.usage.completion_tokens for x in r.hypotheses) == r.usage.completion_tokens > 0
    for x in r.hypotheses:
        assert x.usage.prompt_tokens + x.usage.shared_prompt_tokens == words
        assert "".join(e.text for e in events if isinstance(e, TokenDelta) and e.index == x.index) == x.text
        assert any("choices of one request (n=8)" in t for t in x.trace or [])
    assert r.saved_usd == pytest.approx(7 * words * 0.40 / 1e6)


async def test_n_is_split_to_the_endpoints_limit():
    app = SimulatedLLM(SimConfig(accuracy=1.0))
    provider = OpenAIProvider("http://sim.test/v1", transport=httpx.ASGITransport(app=app), max_choices=3)
    h = Heavy(model="mine:heavy-simulated", n=8, strategy="vote", fanout="n", providers={"mine": provider})
    r = await h.ask(QUESTION, seed=1)
    await provider.aclose()
    assert app.stats.chat_requests == 3 and len(r.successes) == 8  # 3 + 3 + 2 choices
    assert r.usage.prompt_tokens == 3 * len(QUESTION.split())


async def test_a_refused_n_falls_back_to_one_request_each():
    app = SimulatedLLM(SimConfig(accuracy=1.0))  # its OpenAI wire refuses n > 128, as OpenAI does
    provider = OpenAIProvider("http://sim.test/v1", transport=httpx.ASGITransport(app=app), max_choices=500)
    h = Heavy(model="mine:heavy-simulated", n=130, strategy="vote", fanout="n", providers={"mine": provider})
    r = await h.ask(QUESTION, seed=1)
    await provider.aclose()
    assert len(r.successes) == 130 and app.stats.chat_requests == 1 + 130
    assert r.usage.shared_prompt_tokens == 0


async def test_an_endpoint_that_ignores_n_is_asked_once_per_hypothesis():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:  # answers one choice whatever n says (Ollama does)
        body = json.loads(request.content)
        calls.append(body.get("n", 1))
        return httpx.Response(200, json={"id": "x", "model": body["model"], "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "The answer is 411."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}})

    provider = OpenAIProvider("http://one.test/v1", transport=httpx.MockTransport(handler), max_choices=8)
    h = Heavy(model="mine:m", n=4, strategy="vote", fanout="n", providers={"mine": provider})
    r = await h.ask(QUESTION, seed=1)
    again = await h.ask(QUESTION, seed=2)
    await provider.aclose()
    assert calls == [4, 1, 1, 1] + [1] * 4  # n once; then, for the rest of its life, one request each
    assert len(r.successes) == len(again.successes) == 4 and r.answer == "411"


async def test_one_failure_fails_every_choice_of_its_request():
    app = SimulatedLLM(SimConfig(accuracy=1.0, fail_rate=1.0, fail_status=500))
    provider = OpenAIProvider("http://sim.test/v1", transport=httpx.ASGITransport(app=app), max_choices=8)
    h = Heavy(model="mine:heavy-simulated", n=4, strategy="vote", fanout="n", providers={"mine": provider},
              retry=RetryPolicy(max_attempts=1))
    with pytest.raises(QuorumError):
        await h.ask(QUESTION, seed=1)
    await provider.aclose()
    assert app.stats.chat_requests == 1


async def test_n_leaves_agent_turns_after_the_first_to_each_hypothesis():
    app = SimulatedLLM(SimConfig(accuracy=1.0))
    provider = OpenAIProvider("http://sim.test/v1", transport=httpx.ASGITransport(app=app), max_choices=8)
    h = Heavy(model="mine:heavy-simulated", n=3, strategy="vote", fanout="n", providers={"mine": provider},
              tools=["python"], tool_protocol="native")
    r = await h.ask(QUESTION, seed=1)
    await h.aclose()
    await provider.aclose()
    assert r.answer == "411" and len(r.successes) == 3
    steps = sum(len(x.steps or []) for x in r.hypotheses)
    assert app.stats.chat_requests == 1 + steps  # the first turns as one request, each later turn on its own


# --- accounting ----------------------------------------------------------------------------------------------


def test_split_usage_adds_up_and_follows_the_text():
    total = Usage(prompt_tokens=1001, completion_tokens=300, reasoning_tokens=7, cache_read_tokens=512)
    choices = [Completion(text="a" * 100), Completion(text="b" * 300, reasoning="r" * 20), Completion(text="")]
    parts = split_usage(total, choices)
    assert Usage.sum(parts) - Usage(shared_prompt_tokens=2 * 1001) == total
    assert [p.prompt_tokens for p in parts] == [334, 334, 333]
    assert parts[1].completion_tokens > parts[0].completion_tokens > parts[2].completion_tokens
    assert [p.prompt_tokens + p.shared_prompt_tokens for p in parts] == [1001] * 3


def test_an_unknown_fanout_is_refused_naming_the_choices():
    with pytest.raises(OptionsError, match="fanout"):
        Heavy(model="sim", fanout="sometimes")
    assert Heavy(model="sim", fanout="n").settings.fanout == "n"


def test_eval_rows_and_summary_say_what_caching_saved(tmp_path):
    """`heavy eval` against a real `heavy sim` process speaking Anthropic's API: each row and the --json summary
    carry saved_usd (what the staggered fan-out's cache reads saved against paying every prompt)."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in arithmetic_questions(2)))
    out = tmp_path / "out.jsonl"
    with running_sim("--accuracy", "1") as base:
        r = CliRunner().invoke(cli, ["eval", str(data), "-m", "anthropic:claude-sonnet-4-5", "--base-url", base,
                                     "-s", "vote", "-n", "4", "--system", CONTEXT, "--fanout", "stagger",
                                     "--results", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.splitlines()[0])[0]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    words = len(CONTEXT.split())
    assert all(row["correct"] and row["usage"]["cache_read_tokens"] > 3 * words for row in rows)
    assert all(row["saved_usd"] == pytest.approx((4 - 1.55) * row["usage"]["prompt_tokens"] / 4 * 3.0 / 1e6)
               for row in rows)
    assert summary["saved_usd"] == pytest.approx(sum(row["saved_usd"] for row in rows)) and summary["saved_usd"] > 0


async def test_n_asked_of_an_api_without_it_caches_instead():
    h, app = wire_heavy("anthropic", "claude-sonnet-4-5", n=3, fanout="n")
    r = await h.ask(QUESTION, system=CONTEXT, seed=1)
    await h.aclose()
    assert app.stats.chat_requests == 3 and app.stats.cache_read_tokens == 2 * prompt_words()
    assert len(r.successes) == 3


async def test_auto_staggers_a_long_prompt_on_heavys_local_server():
    """heavy's llama-server shares a prefix across its slots (bench/cache.py measured it): a long prompt goes
    to one slot first. Here the simulator stands in for the server at the local preset's address."""
    app = SimulatedLLM(SimConfig(accuracy=1.0, latency=0.05))
    h = Heavy(model="local", n=3, strategy="vote", transport=StreamingASGITransport(app))
    r = await h.ask(QUESTION, system=CONTEXT, seed=1)
    short = await h.ask(QUESTION, seed=2)
    await h.aclose()
    assert sum(any("staggered" in t for t in x.trace or []) for x in r.hypotheses) == 2
    assert r.usage.cache_read_tokens == 2 * (1024 + (prompt_words() - 1024) // 128 * 128)
    assert not any(x.trace for x in short.hypotheses)
