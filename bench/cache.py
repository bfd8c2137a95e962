"""What prompt caching and native ``n`` save, and what staggering costs in latency (issue 16).

**Simulated providers** (heavy's simulator, in-process: no network, no key). N = 8 hypotheses over one
~10k-token prompt (a 10,000-word shared context and a question; the simulator counts words as tokens), per
API and fan-out mode:

    parallel   8 requests at once (what heavy did before: every prompt paid in full)
    stagger    1 request, then the 7 others once it answers (they read the prefix it cached)
    n          1 request with n = 8 (OpenAI only: Anthropic and Gemini have no such parameter)
    auto       what heavy picks by itself (``fanout`` run option default)

The simulator plays each API's cache as documented (heavy/caching.py, heavy/sim/cache.py) and a server whose
first token comes after ``latency`` plus the uncached prompt at ``prefill`` tokens/s, then ``tps`` tokens/s.
Input cost is at heavy's price table (cache reads and writes at their own rates); "added latency" is the
sampling phase's wall time minus the parallel one's.

**The local llama-server** (``heavy local start``, 127.0.0.1:8377, when it runs): N = 8 over a ~2k-token
prompt, 8 output tokens each, through heavy with each fan-out mode; the server's own ``timings`` of every
answer (``prompt_n``: prompt tokens it evaluated; ``cache_n``: tokens it reused) are summed. The server may be
shared with other work, so wall times are only indicative; ``--local-n`` caps the choices per request (the
server admits an n-request only when that many slots are free at once).

    python bench/cache.py               # both parts: bench/results/cache-sim.md/.json, cache-local.md/.json
    python bench/cache.py --sim-only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from heavy import Heavy  # noqa: E402
from heavy.sim.transport import StreamingASGITransport  # noqa: E402
from heavy.pricing import cost, price_for  # noqa: E402
from heavy.providers.openai import OpenAIProvider  # noqa: E402
from heavy.sim import SimConfig, SimulatedLLM  # noqa: E402
from heavy.types import Usage  # noqa: E402

RESULTS = ROOT / "bench" / "results"
N = 8
QUESTION = "What is 17 * 24 + 3?"
MODELS = {"openai": "gpt-4.1", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
MODES = ("parallel", "stagger", "n", "auto")


def context(words: int) -> str:
    """A shared context of *words* words (sentences of ten) that says nothing the question needs."""
    return " ".join(f"Clause {i} of the shared contract says nothing about arithmetic." for i in range(words // 10))


# --- simulated providers -----------------------------------------------------------------------------------------


def sim_heavy(wire: str, mode: str, app: SimulatedLLM) -> Heavy:
    model = f"{wire}:{MODELS[wire]}"
    transport = StreamingASGITransport(app)  # streams as a socket would: the first token is seen when it is due
    if wire == "openai":  # OpenAI's own endpoint (where heavy knows n and prompt_cache_key), answered in-process
        os.environ["OPENAI_API_KEY"] = "sk-simulated-not-a-key"
        return Heavy(model=model, n=N, strategy="vote", fanout=mode, transport=transport, stream=True)
    return Heavy(model=model, n=N, strategy="vote", fanout=mode, transport=transport, stream=True,
                 base_url="http://sim.invalid")


def input_cost(label: str, usage: Usage) -> float:
    preset, _, model = label.partition(":")
    price = price_for(preset, model)
    assert price is not None
    return cost(usage.model_copy(update={"completion_tokens": 0}), price)


async def sim_row(wire: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    walls, costs, usages = [], [], []
    for trial in range(args.trials):
        app = SimulatedLLM(SimConfig(accuracy=1.0, latency=args.latency, prefill_tokens_per_second=args.prefill,
                                     tokens_per_second=args.tps, seed=trial))
        h = sim_heavy(wire, mode, app)
        r = await h.ask(QUESTION, system=context(args.words), seed=trial)
        walls.append(r.timings.sampling_s)
        await h.aclose()
        assert r.answer == "411" and len(r.successes) == N, (wire, mode, r.answer)
        usages.append(Usage.sum([x.usage for x in r.hypotheses]))
        costs.append(sum(input_cost(x.model, x.usage) for x in r.hypotheses))
        requests = app.stats.chat_requests
    u = usages[-1]
    return {"wire": wire, "model": MODELS[wire], "mode": mode, "requests": requests,
            "prompt_tokens": u.prompt_tokens, "uncached": u.uncached_tokens, "read": u.cache_read_tokens,
            "written": u.cache_write_tokens, "input_usd": statistics.mean(costs),
            "wall_s": statistics.median(walls)}


async def sim_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for wire in MODELS:
        for mode in MODES:
            if mode == "n" and wire != "openai":
                continue
            row = await sim_row(wire, mode, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def sim_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    naive = {r["wire"]: r for r in rows if r["mode"] == "parallel"}
    lines = [f"N = {N}, a {args.words:,}-token prompt; simulated server: first token after {args.latency:g} s + the "
             f"uncached prompt at {args.prefill:,.0f} tokens/s, then {args.tps:g} tokens/s; median of {args.trials} "
             "runs.", "",
             "| API (model) | fan-out | requests | prompt tokens: uncached / cache read / cache write | input $ | "
             "vs parallel | sampling wall s | added latency |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        base = naive[r["wire"]]
        lines.append(f"| {r['wire']} ({r['model']}) | {r['mode']} | {r['requests']} | "
                     f"{r['uncached']:,} / {r['read']:,} / {r['written']:,} | {r['input_usd']:.4f} | {r['input_usd'] / base['input_usd']:.0%} | "
                     f"{r['wall_s']:.2f} | {r['wall_s'] - base['wall_s']:+.2f} s |")
    return "\n".join(lines)


# --- the local llama-server -----------------------------------------------------------------------------------------


class TimingsTransport(httpx.AsyncBaseTransport):
    """An HTTP transport that keeps every ``timings`` object llama-server reports in its answers (streamed
    chunks included), so the server's own count of evaluated prompt tokens can be summed."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.timings: list[dict[str, Any]] = []
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += request.method == "POST"
        response = await self.inner.handle_async_request(request)
        body = b"".join([chunk async for chunk in response.stream])
        for line in body.decode("utf-8", "replace").splitlines():
            line = line.removeprefix("data: ").strip()
            if '"timings"' in line:
                try:
                    self.timings.append(json.loads(line)["timings"])
                except (ValueError, KeyError):
                    pass
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def local_row(mode: str, args: argparse.Namespace, prompt: str) -> dict[str, Any]:
    transport = TimingsTransport()
    provider = OpenAIProvider(args.local_url, transport=transport, max_choices=args.local_n)
    h = Heavy(model="mine:local", n=N, strategy="vote", fanout=mode, providers={"mine": provider}, stream=True,
              max_tokens=8, temperature=0.7)
    started = time.monotonic()
    r = await h.ask("Summarise the contract in one word.", system=prompt, seed=1)
    wall = time.monotonic() - started
    await provider.aclose()
    t = transport.timings
    return {"mode": mode, "answers": len(r.successes), "requests": transport.requests,
            "prompt_tokens": r.hypotheses[0].usage.prompt_tokens + r.hypotheses[0].usage.shared_prompt_tokens,
            "evaluated": sum(x.get("prompt_n", 0) for x in t), "reused": sum(x.get("cache_n", 0) for x in t),
            "prompt_ms": sum(x.get("prompt_ms", 0.0) for x in t), "wall_s": wall}


async def local_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    try:
        httpx.get(args.local_url.removesuffix("/v1") + "/health", timeout=5).raise_for_status()
    except httpx.HTTPError:
        print(f"no llama-server at {args.local_url}: skipping the local part (heavy local start)", file=sys.stderr)
        return []
    rows = []
    # Each run opens with a prompt of its own (a different first clause), so no run reads what another left.
    for i, mode in enumerate(args.local_modes.split(",")):
        prompt = f"Contract {i} of this benchmark. " + context(args.local_words)
        row = await local_row(mode, args, prompt)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def local_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"N = {N} over a {rows[0]['prompt_tokens']:,}-token prompt, 8 output tokens each; the server's own "
             "timings summed over every answer.", "",
             "| fan-out | requests | prompt tokens evaluated | reused from cache | prompt eval ms | wall s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['requests']} | {r['evaluated']:,} | {r['reused']:,} | "
                     f"{r['prompt_ms']:,.0f} | {r['wall_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sim-only", action="store_true")
    ap.add_argument("--local-only", action="store_true")
    ap.add_argument("--words", type=int, default=10_000, help="prompt size of the simulated part")
    ap.add_argument("--latency", type=float, default=0.4, help="simulated seconds before the first token")
    ap.add_argument("--prefill", type=float, default=20_000.0, help="simulated prompt tokens per second")
    ap.add_argument("--tps", type=float, default=60.0, help="simulated output tokens per second")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--local-url", default="http://127.0.0.1:8377/v1")
    ap.add_argument("--local-words", type=int, default=1500, help="words of the local prompt (~2k tokens)")
    ap.add_argument("--local-n", type=int, default=0, help="choices per request on the local server (0: its slots)")
    ap.add_argument("--local-modes", default="parallel,stagger,n")
    ap.add_argument("--out", default=str(RESULTS), help="directory of cache-sim.md/.json and cache-local.md/.json")
    args = ap.parse_args()
    out = Path(args.out)
    parts = [] if args.local_only else [("sim", "Simulated providers", sim_part, sim_table)]
    parts += [] if args.sim_only else [("local", "The local llama-server", local_part, local_table)]
    for name, title, run, table in parts:
        rows = asyncio.run(run(args))
        if not rows:
            continue
        text = f"# Prompt caching and native n: {title.lower()} (bench/cache.py)\n\n{table(rows, args)}\n"
        print(text)
        (out / f"cache-{name}.md").write_text(text)
        (out / f"cache-{name}.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
