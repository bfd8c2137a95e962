"""Overhead benchmark: heavy's sampler vs what a user would write vs a hand-written lower bound.

Runs, in one process and one run, against heavy's simulated server on 127.0.0.1 with a fixed latency:

  (a) heavy end to end (Heavy.sample over Q questions x N hypotheses), with each HTTP transport,
  (b) a hand-written ``asyncio.gather`` over raw httpx (default transport and the aiohttp transport),
  (c) a hand-written HTTP/1.1 client over asyncio streams with keep-alive: the lower bound,

at C = 100, 500 and 1,000 calls in flight, and prints wall time, the ideal ceil(QN/C) x latency,
efficiency (ideal / actual), throughput relative to the lower bound, and client CPU per call.
A second table: vote@8 under heavy-tailed latency, with and without early stop.

    python bench/overhead.py [--latency 1.0] [--calls 1000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heavy import Heavy  # noqa: E402
from heavy.http import transport_names  # noqa: E402

BODY = {"model": "heavy-simulated", "messages": [{"role": "user", "content": "What is 17 * 24 + 3?"}],
        "temperature": 0.7}


def start_sim(port: int, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "heavy.cli", "sim", "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("simulated server did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- (c) the lower bound: HTTP/1.1 keep-alive over raw asyncio streams -------------------------------

async def raw_client(port: int, calls: int, concurrency: int) -> int:
    payload = json.dumps(BODY).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
    remaining = [calls]
    ok = [0]

    async def worker() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                writer.write(request)
                status = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                if status.split()[1] == b"200" and b"choices" in body:
                    ok[0] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, calls))))
    return ok[0]


# --- (b) what a user would write: asyncio.gather over httpx ------------------------------------------

async def httpx_gather(port: int, calls: int, concurrency: int, transport: str) -> int:
    kwargs = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        kwargs["transport"] = AiohttpTransport(limits=limits)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=600, **kwargs) as client:
        async def one() -> bool:
            async with sem:
                try:
                    r = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY)
                except httpx.HTTPError:
                    return False  # counted in the "ok" column, never fatal to the benchmark
                return r.status_code == 200 and "choices" in r.json()

        return sum(await asyncio.gather(*(one() for _ in range(calls))))


# --- (a) heavy end to end ------------------------------------------------------------------------------

async def heavy_sampler(port: int, calls: int, concurrency: int, transport: str, n: int = 8) -> int:
    os.environ["HEAVY_HTTP_TRANSPORT"] = transport
    h = Heavy(model="openai:heavy-simulated", base_url=f"http://127.0.0.1:{port}/v1", n=n, concurrency=concurrency)
    questions = math.ceil(calls / n)
    try:
        results = await asyncio.gather(*(h.sample("What is 17 * 24 + 3?") for _ in range(questions)))
    finally:
        await h.aclose()
    return sum(x.ok for hyps in results for x in hyps)


def measure(fn, *args) -> tuple[float, float, int]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    ok = asyncio.run(fn(*args))
    return time.perf_counter() - t0, time.process_time() - cpu0, ok


def overhead_table(latency: float, levels: list[int], total: int) -> None:
    port = free_port()
    server = start_sim(port, "--latency", str(latency), "--accuracy", "1")
    try:
        clients = [("lower bound: asyncio streams", lambda c: measure(raw_client, port, total, c))]
        for t in transport_names():
            clients.append((f"raw httpx gather ({t})", lambda c, t=t: measure(httpx_gather, port, total, c, t)))
        for t in transport_names():
            clients.append((f"heavy sampler ({t})", lambda c, t=t: measure(heavy_sampler, port, total, c, t)))
        print(f"\n## Overhead: {total} calls of {latency:g} s latency against the simulated server on 127.0.0.1\n")
        print("| client | in flight | wall s | ideal s | efficiency | throughput vs lower bound | CPU ms/call | ok |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for c in levels:
            ideal = math.ceil(total / c) * latency
            base_wall = None
            for name, run in clients:
                wall, cpu, ok = run(c)
                base_wall = base_wall or wall
                print(f"| {name} | {c} | {wall:.2f} | {ideal:.2f} | {ideal / wall:.2f} | {base_wall / wall:.2f}x "
                      f"| {1000 * cpu / total:.2f} | {ok}/{total} |", flush=True)
    finally:
        server.terminate()
        server.wait()


def early_stop_table(median: float, sigma: float, questions: int) -> None:
    port = free_port()
    server = start_sim(port, "--latency", str(median), "--latency-sigma", str(sigma), "--accuracy", "0.9")
    try:
        print(f"\n## vote@8 under heavy-tailed latency (lognormal, median {median:g} s, sigma {sigma:g}), "
              f"{questions} questions\n")
        print("| early stop | median wall / median single-call latency | p90 ratio | samples used per question |")
        print("|---|---:|---:|---:|")
        for early in (False, True):
            async def go() -> list[tuple[float, int]]:
                h = Heavy(model="openai:heavy-simulated", base_url=f"http://127.0.0.1:{port}/v1", n=8,
                          strategy="vote", early_stop=early)
                out = []
                try:
                    for i in range(questions):
                        t0 = time.perf_counter()
                        r = await h.ask(f"What is {i} + 17?", seed=i)
                        out.append((time.perf_counter() - t0, sum(x.ok for x in r.hypotheses)))
                finally:
                    await h.aclose()
                return out

            rows = asyncio.run(go())
            ratios = sorted(w / median for w, _ in rows)
            print(f"| {'yes' if early else 'no'} | {statistics.median(ratios):.2f}x | "
                  f"{ratios[int(0.9 * (len(ratios) - 1))]:.2f}x | {statistics.mean(u for _, u in rows):.1f} |",
                  flush=True)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="fewer levels and questions (a smoke run)")
    args = ap.parse_args()
    levels = [100] if args.quick else [100, 500, 1000]
    overhead_table(args.latency, levels, 200 if args.quick else args.calls)
    early_stop_table(0.5, 0.8, 10 if args.quick else 40)


if __name__ == "__main__":
    main()
