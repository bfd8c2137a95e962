"""Gateway benchmark: what `heavy serve` adds to a request, measured as LLM gateways are measured.

One run, one mock upstream (`heavy sim` on 127.0.0.1 answering in a fixed --latency, 50 ms by default), one
`heavy serve` in front of it. For each cell (hypotheses per request n, clients in flight C) the same client sends
--requests requests on keep-alive connections, directly to the upstream and through the proxy, interleaved in
rounds so that both see the same machine noise:

- n = 1 is pass-through: one upstream call per request (``heavy/vote`` with one hypothesis);
- n = 8 samples eight hypotheses and votes: "direct" is then what the fan-out costs at best, eight upstream calls
  at once per request, and the difference is what heavy's run adds above them.

The table gives p50 and p99 latency of each path and their difference ("added"), and the proxy process's CPU per
request (user + system time of `heavy serve` over the cell, from /proc). Clients: httpx (`AsyncClient`) and, when
installed, the openai SDK (`AsyncOpenAI`). The proxy's per-client cap is raised for the run (one client above 32
requests in flight gets 429 by design). Targets (the project's issue): added p50 <= 1 ms and p99 <= 3 ms at C = 1
and 16, p99 <= 10 ms at C = 64. Run it on a quiet machine (a model server beside it triples every number):

    python bench/gateway.py [--requests 400] [--latency 0.05] [--clients 1,16,64] [--n 1,8] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import running_heavy  # noqa: E402

QUESTION = [{"role": "user", "content": "What is 17 * 24 + 3?"}]
TARGETS = {1: (1.0, 3.0), 16: (1.0, 3.0), 64: (None, 10.0)}  # clients -> (added p50, added p99) in ms


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process *pid* so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_pid(port: int) -> int:
    """The pid of the `heavy serve` listening on *port* (its command line names the port)."""
    out = subprocess.run(["pgrep", "-f", f"heavy.cli serve --port {port}"], capture_output=True, text=True).stdout
    return int(out.split()[0])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Client:
    """One benchmark client: ``post(url, body)`` over keep-alive connections, for *clients* in flight."""

    def __init__(self, kind: str, clients: int) -> None:
        self.kind = kind
        limits = httpx.Limits(max_connections=clients * 8, max_keepalive_connections=clients * 8)
        self.http = httpx.AsyncClient(limits=limits, timeout=60)
        self.sdk: dict[str, object] = {}

    async def post(self, base: str, model: str, n: int) -> None:
        if self.kind == "openai":
            from openai import AsyncOpenAI

            client = self.sdk.get(base)
            if client is None:
                client = self.sdk[base] = AsyncOpenAI(base_url=f"{base}/v1", api_key="sk-bench", http_client=self.http,
                                                      max_retries=0)
            extra = {"extra_body": {"heavy": {"n": n}}} if model.startswith("heavy") else {}
            await client.chat.completions.create(model=model, messages=QUESTION, **extra)  # type: ignore[attr-defined]
            return
        body = {"model": model, "messages": QUESTION, **({"heavy": {"n": n}} if model.startswith("heavy") else {})}
        r = await self.http.post(f"{base}/v1/chat/completions", json=body)
        r.raise_for_status()

    async def aclose(self) -> None:
        await self.http.aclose()


async def cell(client: Client, base: str, model: str, n: int, clients: int, requests: int, *,
               fan: int = 1) -> list[float]:
    """Latencies (ms) of *requests* requests with *clients* in flight; each request is *fan* upstream calls at once
    when going direct (the n = 8 lower bound)."""
    todo = list(range(requests))
    latencies: list[float] = []

    async def worker() -> None:
        while todo:
            todo.pop()
            started = time.perf_counter()
            if fan > 1:
                await asyncio.gather(*(client.post(base, model, 1) for _ in range(fan)))
            else:
                await client.post(base, model, n)
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


async def measure(args: argparse.Namespace, sim: str, proxy: str, pid: int) -> list[dict]:
    rows = []
    kinds = ["httpx"] + (["openai"] if importlib.util.find_spec("openai") else [])
    for kind in kinds:
        for n in args.n:
            for clients in args.clients:
                client = Client(kind, clients)
                await cell(client, sim, "heavy-simulated", 1, clients, clients * 2, fan=n)  # warm both paths
                await cell(client, proxy, "heavy/vote", n, clients, clients * 2)
                direct: list[float] = []
                through: list[float] = []
                cpu = 0.0
                per_round = max(clients, args.requests // args.rounds)
                for _ in range(args.rounds):  # interleaved, so both paths share the machine's moments
                    direct += await cell(client, sim, "heavy-simulated", 1, clients, per_round, fan=n)
                    before = cpu_seconds(pid)
                    through += await cell(client, proxy, "heavy/vote", n, clients, per_round)
                    cpu += cpu_seconds(pid) - before
                await client.aclose()
                row = {"client": kind, "n": n, "clients": clients, "requests": len(through),
                       "direct_p50": percentile(direct, 0.5), "direct_p99": percentile(direct, 0.99),
                       "proxy_p50": percentile(through, 0.5), "proxy_p99": percentile(through, 0.99),
                       "cpu_ms": cpu / len(through) * 1000}
                row["added_p50"] = row["proxy_p50"] - row["direct_p50"]
                row["added_p99"] = row["proxy_p99"] - row["direct_p99"]
                rows.append(row)
                print(f"{kind:6} n={n} C={clients:<3} direct p50 {row['direct_p50']:6.1f} p99 {row['direct_p99']:6.1f} | "
                      f"proxy p50 {row['proxy_p50']:6.1f} p99 {row['proxy_p99']:6.1f} | added "
                      f"{row['added_p50']:+5.2f} / {row['added_p99']:+5.2f} ms | {row['cpu_ms']:.2f} ms CPU", flush=True)
    return rows


def verdict(row: dict) -> str:
    p50_target, p99_target = TARGETS.get(row["clients"], (None, None))
    parts = []
    if p50_target is not None:
        parts.append(f"p50 {'met' if row['added_p50'] <= p50_target else 'not met'}")
    if p99_target is not None:
        parts.append(f"p99 {'met' if row['added_p99'] <= p99_target else 'not met'}")
    return ", ".join(parts)


def table(rows: list[dict], args: argparse.Namespace, load: tuple[float, float]) -> str:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = [f"# heavy serve vs direct: {args.latency * 1000:.0f} ms upstream, {args.requests} requests per cell",
             "", f"Commit {commit}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
             f"{load[0]:.2f} before / {load[1]:.2f} after; upstream `heavy sim --latency {args.latency}`, proxy "
             "`heavy serve -s vote` (n = 1 pass-through; n = 8: direct is 8 upstream calls at once per request).", "",
             "| client | n | clients | direct p50 | direct p99 | proxy p50 | proxy p99 | added p50 | added p99 | "
             "proxy CPU / request | target |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['client']} | {r['n']} | {r['clients']} | {r['direct_p50']:.1f} ms | {r['direct_p99']:.1f} ms "
                     f"| {r['proxy_p50']:.1f} ms | {r['proxy_p99']:.1f} ms | {r['added_p50']:+.2f} ms | "
                     f"{r['added_p99']:+.2f} ms | {r['cpu_ms']:.2f} ms | {verdict(r) if r['n'] == 1 else '—'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per cell")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    parser.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="40 requests per cell, C = 1 and 16 (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.clients, args.rounds = 40, [1, 16], 2
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "config.toml"
        config.write_text("")
        with running_heavy("sim", "--accuracy", "1", "--latency", str(args.latency), "--tokens-per-second",
                           "1000000") as sim:
            env = {**os.environ, "HEAVY_CONFIG": str(config), "OPENAI_BASE_URL": f"{sim}/v1",
                   "OPENAI_API_KEY": "sk-bench"}
            with running_heavy("serve", "-m", "openai:heavy-simulated", "-s", "vote", "-n", "1", "--max-n", "64",
                               "--max-concurrent", "100000", "--log-level", "warning", env=env) as proxy:
                pid = serve_pid(int(proxy.rsplit(":", 1)[1]))
                rows = asyncio.run(measure(args, sim, proxy, pid))
    text = table(rows, args, (load_before, os.getloadavg()[0]))
    print("\n" + text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
