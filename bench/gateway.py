"""Gateway benchmark: what `heavy serve` adds to a request, measured as LLM gateways are measured.

One run, one mock upstream (a raw asyncio server on 127.0.0.1 answering a canned chat completion in a fixed
--latency, 50 ms by default, as gateway benchmarks use a mock), one `heavy serve` in front of it. For each cell (hypotheses per request n, clients in flight C) the same client sends
--requests requests on keep-alive connections, directly to the upstream and through the proxy, interleaved in
rounds so that both see the same machine noise:

- n = 1 is pass-through: one upstream call per request (``heavy/vote`` with one hypothesis);
- n = 8 samples eight hypotheses and votes: "direct" is then what the fan-out costs at best, eight upstream calls
  at once per request, and the difference is what heavy's run adds above them.

The table gives p50 and p99 latency of each path and their difference ("added"), and the proxy process's CPU per
request (user + system time of `heavy serve` over the cell, from /proc). Clients: wrk (a C load generator, when
installed: `apt-get install wrk`; the rows the targets are read from, since a Python client saturates first), httpx
(`AsyncClient`) and, when installed, the openai SDK (`AsyncOpenAI`); at 64 clients the Python clients measure
themselves more than the proxy. The proxy's per-client cap is raised for the run (one client above 32
requests in flight gets 429 by design). Targets (the project's issue): added p50 <= 1 ms and p99 <= 3 ms at C = 1
and 16, p99 <= 10 ms at C = 64. Run it on a quiet machine (a model server beside it triples every number):

    python bench/gateway.py [--requests 400] [--latency 0.05] [--clients 1,16,64] [--n 1,8] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import running_heavy, wait_healthy  # noqa: E402

QUESTION = [{"role": "user", "content": "What is 17 * 24 + 3?"}]
TARGETS = {1: (1.0, 3.0), 16: (1.0, 3.0), 64: (None, 10.0)}  # clients -> (added p50, added p99) in ms


MOCK = r"""
import asyncio, json, sys
LATENCY = float(sys.argv[2])
BODY = json.dumps({"id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": "mock",
                   "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                "content": "17 * 24 = 408, and 408 + 3 = 411. The answer is 411."}}],
                   "usage": {"prompt_tokens": 20, "completion_tokens": 20, "total_tokens": 40}}).encode()
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY)

class Mock(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(self.buffer) < head_end + 4 + length:
                return
            path = head.split(b" ")[1]
            self.buffer = self.buffer[head_end + 4 + length:]
            reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok" if path == b"/health" else HEAD + BODY
            asyncio.get_running_loop().call_later(0 if path == b"/health" else LATENCY, self.reply, reply)
    def reply(self, data):
        if not self.transport.is_closing():
            self.transport.write(data)

async def main():
    server = await asyncio.get_running_loop().create_server(Mock, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    await server.serve_forever()
asyncio.run(main())
"""


def mock_upstream(port: int, latency: float) -> subprocess.Popen:
    """A fixed-latency mock of an OpenAI-compatible upstream: raw asyncio, a canned answer, thousands of requests a
    second (heavy's simulator, a whole model in Python, tops out near 300 on 2 cores and would be the bottleneck)."""
    proc = subprocess.Popen([sys.executable, "-c", MOCK, str(port), str(latency)])
    return wait_healthy(f"http://127.0.0.1:{port}/health", proc, "the mock upstream")


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
        self.errors: list[str] = []
        # Idle connections expire before the servers' own 5 s keep-alive timeout closes them under a request.
        limits = httpx.Limits(max_connections=clients * 8, max_keepalive_connections=clients * 8, keepalive_expiry=4)
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
            try:
                if fan > 1:
                    await asyncio.gather(*(client.post(base, model, 1) for _ in range(fan)))
                else:
                    await client.post(base, model, n)
            except Exception as exc:  # counted, not timed: a table with failed requests says so
                client.errors.append(f"{type(exc).__name__}: {exc}"[:120])
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


def wrk_cell(url: str, body: dict, clients: int, seconds: float) -> tuple[dict, int]:
    """wrk's latency percentiles (ms) and request count for *clients* keep-alive connections over *seconds*."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                     f"wrk.body = {json.dumps(json.dumps(body))}\n")
    try:
        out = subprocess.run(["wrk", "-t", "1", "-c", str(clients), "-d", f"{seconds:g}s", "--latency", "-s",
                              script.name, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script.name)
    pct = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].endswith("%") and parts[0][:-1].replace(".", "").isdigit():
            value = parts[1]
            unit = 1000.0 if value.endswith("us") else 1.0 if value.endswith("ms") else 0.001 if value.endswith("s") \
                else 1.0
            pct[float(parts[0][:-1])] = float(value.rstrip("usm")) / unit if value.endswith("us") else \
                float(value.rstrip("ms")) if value.endswith("ms") else float(value.rstrip("s")) * 1000
    count = next((int(line.split()[0]) for line in out.splitlines() if "requests in" in line), 0)
    errors = sum(int(x) for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line
                 for x in line.replace(",", " ").split() if x.isdigit())
    return {"p50": pct.get(50.0, float("nan")), "p99": pct.get(99.0, float("nan")), "requests": count}, errors


def measure_wrk(args: argparse.Namespace, upstream: str, proxy: str, pid: int) -> list[dict]:
    """The same cells with wrk as the client (a C load generator: never the bottleneck at 64 connections). For
    n = 8 the direct path is n = 1's (wrk cannot fan out): eight calls at once take at least one call's time."""
    rows = []
    seconds = max(3.0, args.requests * args.latency / 16)
    for n in args.n:
        for clients in args.clients:
            direct_body = {"model": "mock", "messages": QUESTION}
            proxy_body = {"model": "heavy/vote", "messages": QUESTION, "heavy": {"n": n}}
            wrk_cell(f"{upstream}/v1/chat/completions", direct_body, clients, 1)  # warm-up
            wrk_cell(f"{proxy}/v1/chat/completions", proxy_body, clients, 1)
            direct, errors = wrk_cell(f"{upstream}/v1/chat/completions", direct_body, clients, seconds)
            before = cpu_seconds(pid)
            through, proxy_errors = wrk_cell(f"{proxy}/v1/chat/completions", proxy_body, clients, seconds)
            cpu = cpu_seconds(pid) - before
            row = {"client": "wrk", "n": n, "clients": clients, "requests": through["requests"],
                   "errors": errors + proxy_errors, "direct_p50": direct["p50"], "direct_p99": direct["p99"],
                   "proxy_p50": through["p50"], "proxy_p99": through["p99"],
                   "cpu_ms": cpu / max(1, through["requests"]) * 1000}
            row["added_p50"], row["added_p99"] = row["proxy_p50"] - row["direct_p50"], row["proxy_p99"] - row["direct_p99"]
            rows.append(row)
            print(f"wrk    n={n} C={clients:<3} direct p50 {row['direct_p50']:6.1f} p99 {row['direct_p99']:6.1f} | "
                  f"proxy p50 {row['proxy_p50']:6.1f} p99 {row['proxy_p99']:6.1f} | added {row['added_p50']:+5.2f} / "
                  f"{row['added_p99']:+5.2f} ms | {row['cpu_ms']:.2f} ms CPU | {through['requests']} requests", flush=True)
    return rows


async def measure(args: argparse.Namespace, sim: str, proxy: str, pid: int) -> list[dict]:
    rows = []
    kinds = ["httpx"] + (["openai"] if importlib.util.find_spec("openai") else [])
    for kind in kinds:
        for n in args.n:
            for clients in args.clients:
                client = Client(kind, clients)
                await cell(client, sim, "mock", 1, clients, clients * 2, fan=n)  # warm both paths
                await cell(client, proxy, "heavy/vote", n, clients, clients * 2)
                direct: list[float] = []
                through: list[float] = []
                cpu = 0.0
                per_round = max(clients, args.requests // args.rounds)
                for _ in range(args.rounds):  # interleaved, so both paths share the machine's moments
                    direct += await cell(client, sim, "mock", 1, clients, per_round, fan=n)
                    before = cpu_seconds(pid)
                    through += await cell(client, proxy, "heavy/vote", n, clients, per_round)
                    cpu += cpu_seconds(pid) - before
                await client.aclose()
                row = {"client": kind, "n": n, "clients": clients, "requests": len(through),
                       "errors": len(client.errors),
                       "direct_p50": percentile(direct, 0.5), "direct_p99": percentile(direct, 0.99),
                       "proxy_p50": percentile(through, 0.5), "proxy_p99": percentile(through, 0.99),
                       "cpu_ms": cpu / len(through) * 1000}
                row["added_p50"] = row["proxy_p50"] - row["direct_p50"]
                row["added_p99"] = row["proxy_p99"] - row["direct_p99"]
                rows.append(row)
                print(f"{kind:6} n={n} C={clients:<3} direct p50 {row['direct_p50']:6.1f} p99 {row['direct_p99']:6.1f} | "
                      f"proxy p50 {row['proxy_p50']:6.1f} p99 {row['proxy_p99']:6.1f} | added "
                      f"{row['added_p50']:+5.2f} / {row['added_p99']:+5.2f} ms | {row['cpu_ms']:.2f} ms CPU"
                      + (f" | {len(client.errors)} failed, e.g. {client.errors[0]}" if client.errors else ""), flush=True)
    return rows


def verdict(row: dict) -> str:
    p50_target, p99_target = TARGETS.get(row["clients"], (None, None))
    parts = []
    if p50_target is not None:
        parts.append(f"p50 {'met' if row['added_p50'] <= p50_target else 'not met'}")
    if p99_target is not None:
        parts.append(f"p99 {'met' if row['added_p99'] <= p99_target else 'not met'}")
    return ", ".join(parts)


def target(row: dict, rows: list[dict]) -> str:
    """The verdict of a pass-through row, read from the load generator's rows when wrk ran (a Python client at 64
    connections is slower than the proxy it measures)."""
    if row["n"] != 1:
        return "—"
    if row["client"] != "wrk" and any(r["client"] == "wrk" for r in rows):
        return "(see wrk)"
    return verdict(row)


def table(rows: list[dict], args: argparse.Namespace, load: tuple[float, float]) -> str:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = [f"# heavy serve vs direct: {args.latency * 1000:.0f} ms upstream, {args.requests} requests per cell",
             "", f"Commit {commit}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
             f"{load[0]:.2f} before / {load[1]:.2f} after; upstream a mock answering in {args.latency * 1000:.0f} ms, proxy "
             "`heavy serve -s vote` (n = 1 pass-through; n = 8: direct is 8 upstream calls at once per request).", "",
             "| client | n | clients | direct p50 | direct p99 | proxy p50 | proxy p99 | added p50 | added p99 | "
             "proxy CPU / request | failed | target |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['client']} | {r['n']} | {r['clients']} | {r['direct_p50']:.1f} ms | {r['direct_p99']:.1f} ms "
                     f"| {r['proxy_p50']:.1f} ms | {r['proxy_p99']:.1f} ms | {r['added_p50']:+.2f} ms | "
                     f"{r['added_p99']:+.2f} ms | {r['cpu_ms']:.2f} ms | {r['errors']} | {target(r, rows)} |")
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
        from helpers import free_port

        port = free_port()
        upstream = mock_upstream(port, args.latency)
        sim = f"http://127.0.0.1:{port}"
        try:
            env = {**os.environ, "HEAVY_CONFIG": str(config), "OPENAI_BASE_URL": f"{sim}/v1",
                   "OPENAI_API_KEY": "sk-bench"}
            with running_heavy("serve", "-m", "openai:mock", "-s", "vote", "-n", "1", "--max-n", "64",
                               "--max-concurrent", "100000", "--log-level", "warning", env=env) as proxy:
                pid = serve_pid(int(proxy.rsplit(":", 1)[1]))
                rows = measure_wrk(args, sim, proxy, pid) if shutil.which("wrk") else []
                rows += asyncio.run(measure(args, sim, proxy, pid))
        finally:
            upstream.kill()
            upstream.wait()
    text = table(rows, args, (load_before, os.getloadavg()[0]))
    print("\n" + text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
