"""Load: 200 concurrent requests × N=8 hypotheses through the proxy, in-process, upstream simulated.

A quarter of the clients disconnect mid-stream. Everything else must complete; afterwards no asyncio task
of the run may be left behind, and memory stays bounded. Figures are printed (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time

import pytest

from heavy import Heavy
from heavy.sim.transport import StreamingASGITransport
from heavy.serve import create_app
from heavy.sim import SimConfig, SimulatedLLM

from test_serve import MODEL, AsgiCall, user

CLIENTS = 200
N = 8
RSS_BOUND_MB = 400  # generous: measured around 40-60 MB above the baseline


def rss_mb() -> float | None:
    """Current resident set size of this process (Linux /proc), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@pytest.mark.anyio
async def test_200_concurrent_requests_of_8_hypotheses(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://sim.test/v1")
    llm = SimulatedLLM(SimConfig(accuracy=0.7, latency=0.1, latency_sigma=0.5, seed=9))
    app = create_app({"model": MODEL}, heavy_factory=functools.partial(Heavy, transport=StreamingASGITransport(llm)))
    server = app.state.heavy
    baseline_tasks = set(asyncio.all_tasks())
    base_rss = rss_mb()
    peak = [base_rss or 0.0]
    sampling = True

    async def sample_rss() -> None:
        while sampling:
            now = rss_mb()
            if now is not None:
                peak[0] = max(peak[0], now)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample_rss())
    calls: list[tuple[str, AsgiCall]] = []
    for i in range(CLIENTS):
        kind = ("stream", "json", "stream", "leave")[i % 4]
        body = {"model": f"heavy/{('vote', 'heavy', 'judge', 'synthesize')[(i // 4) % 4]}",
                "messages": user(f"What is {i + 11} * 7 + 3?"), "n": N, "seed": i,
                "stream": kind != "json", "stream_options": {"include_usage": True}}
        calls.append((kind, AsgiCall(app, body, client=(f"127.0.{i // 250}.{i % 250 + 1}", 40000 + i))))

    async def drive(kind: str, call: AsgiCall) -> None:
        run = asyncio.create_task(call.run())
        if kind == "leave":  # read until the first hypothesis is done, then hang up
            while b"done: answer" not in call.body and not run.done():
                await asyncio.sleep(0.01)
            call.disconnect()
        await run

    start = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(drive(k, c) for k, c in calls)), timeout=60)
    elapsed = time.monotonic() - start

    completed = 0
    for i, (kind, call) in enumerate(calls):
        text = call.body.decode()
        if kind == "leave":
            assert call.status in (200, None) and "[DONE]" not in text, f"client {i} left but got the end"
            continue
        assert call.status == 200, (i, text[:300])
        if kind == "json":
            data = json.loads(text)
            assert len(data["heavy"]["hypotheses"]) == N and data["choices"][0]["message"]["content"]
        else:
            assert text.rstrip().endswith("data: [DONE]") and '"finish_reason":"stop"' in text, (i, text[-300:])
            assert f"hypothesis {N}/{N} done" in text or "failed" in text
        completed += 1

    # Every run is over and every task it started is gone (orphans would pile up across disconnects).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leftover = set(asyncio.all_tasks()) - baseline_tasks - {asyncio.current_task(), sampler}
        if not leftover and llm.stats.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    sampling = False
    await sampler
    assert not leftover, f"{len(leftover)} tasks leaked, e.g. {sorted(map(repr, leftover))[:3]}"
    assert server.runs == 0 and not server.in_flight and llm.stats.in_flight == 0
    assert len(server.session._stacks) == 1, "all 200 requests shared the session's one provider stack"
    await server.aclose()

    upstream = llm.stats.chat_requests
    growth = peak[0] - (base_rss or 0.0)
    print(f"\nload: {CLIENTS} clients × N={N}: {completed} completed, {CLIENTS - completed} disconnected mid-stream, "
          f"{upstream} upstream calls ({llm.stats.judge_requests} judge, {llm.stats.synthesize_requests} synthesize) "
          f"in {elapsed:.2f} s = {CLIENTS / elapsed:.0f} requests/s, {upstream / elapsed:.0f} upstream calls/s; "
          f"max upstream in flight {llm.stats.max_in_flight}; "
          f"RSS baseline {base_rss or 0:.0f} MB, peak {peak[0]:.0f} MB (+{growth:.0f} MB)")
    assert completed == CLIENTS - CLIENTS // 4
    assert upstream >= completed * N
    if base_rss is not None:
        assert growth < RSS_BOUND_MB, f"RSS grew by {growth:.0f} MB"
    assert elapsed < 30
