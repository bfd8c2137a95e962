"""Overhead benchmark: heavy's sampler vs what a user would write vs a hand-written lower bound.

Runs, in one process and one run, against heavy's simulated server on 127.0.0.1 with a fixed latency:

  (a) heavy end to end (Heavy.sample over Q questions x N hypotheses, over aiohttp: heavy's default), and
      heavy's HTTP client alone (an ``asyncio.gather`` over HTTPClient.post_json: no sampler),
  (b) what users write by hand: an ``asyncio.gather`` over the openai SDK (skipped, with a note, when the
      ``openai`` package is not installed), over raw httpx, and over aiohttp's own ``ClientSession.post``
      (the library under heavy, with its defaults: what heavy adds is the difference),
  (c) a hand-written HTTP/1.1 client over asyncio streams with keep-alive: the lower bound,

at C = 100, 500 and 1,000 calls in flight. Each client is warmed up once (imports, first connections) and
then measured ``--repeat`` times, interleaved with the others so that they share the machine's noise; the
table gives medians of wall time, of throughput relative to the lower bound *of the same repetition*, and
of client CPU (process time) per call. The CPU column is the less load-sensitive one: the client shares
its cores with the server (and with whatever else runs), so the header records the machine's load.
A second table: vote@8 under heavy-tailed latency, with and without early stop.

    python bench/overhead.py [--latency 1.0] [--calls 1000] [--repeat 3] [--out FILE.md] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from heavy import Heavy  # noqa: E402
from helpers import wait_healthy  # noqa: E402
from heavy.http import HTTPClient  # noqa: E402

BODY = {"model": "heavy-simulated", "messages": [{"role": "user", "content": "What is 17 * 24 + 3?"}],
        "temperature": 0.7}
#: heavy's targets at 1,000 in flight: throughput vs the lower bound (goal, and the floor not to fall below),
#: at most this far below aiohttp's own gather (the library under heavy), and CPU per hypothesis.
TARGET_RATIO, TARGET_FLOOR, TARGET_GAP, TARGET_CPU_MS = 0.9, 0.83, 0.05, 0.5


def start_sim(port: int, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "heavy.cli", "sim", "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_healthy(f"http://127.0.0.1:{port}/health", proc, "the simulated server")


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


# --- (b) what a user would write: asyncio.gather over the openai SDK, or over httpx ---------------------

async def openai_gather(port: int, calls: int, concurrency: int) -> int:
    from openai import APIError, AsyncOpenAI

    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-unused-by-the-simulator")
    sem = asyncio.Semaphore(concurrency)

    async def one() -> bool:
        async with sem:
            try:
                r = await client.chat.completions.create(**BODY)
            except APIError:
                return False  # counted in the "ok" column, never fatal to the benchmark
            return bool(r.choices)

    try:
        return sum(await asyncio.gather(*(one() for _ in range(calls))))
    finally:
        await client.close()


async def httpx_gather(port: int, calls: int, concurrency: int) -> int:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:
        async def one() -> bool:
            async with sem:
                try:
                    r = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY)
                except httpx.HTTPError:
                    return False
                return r.status_code == 200 and "choices" in r.json()

        return sum(await asyncio.gather(*(one() for _ in range(calls))))


async def aiohttp_gather(port: int, calls: int, concurrency: int) -> int:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one() -> bool:
            async with sem:
                try:
                    async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY) as r:
                        return r.status == 200 and "choices" in await r.json()
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    return False

        return sum(await asyncio.gather(*(one() for _ in range(calls))))


# --- (a) heavy: its HTTP client alone, and end to end ----------------------------------------------------

async def heavy_client(port: int, calls: int, concurrency: int) -> int:
    http = HTTPClient(f"http://127.0.0.1:{port}/v1", max_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)

    async def one() -> bool:
        async with sem:
            r = await http.post_json("chat/completions", BODY)
            return r.status == 200 and "choices" in r.json()

    try:
        return sum(await asyncio.gather(*(one() for _ in range(calls))))
    finally:
        await http.aclose()


async def heavy_sampler(port: int, calls: int, concurrency: int, n: int = 8) -> int:
    h = Heavy(model="openai:heavy-simulated", base_url=f"http://127.0.0.1:{port}/v1", n=n, concurrency=concurrency)
    questions = math.ceil(calls / n)
    try:
        results = await asyncio.gather(*(h.sample("What is 17 * 24 + 3?") for _ in range(questions)))
    finally:
        await h.aclose()
    return sum(x.ok for hyps in results for x in hyps)


def measure(fn: Callable, *args: object) -> tuple[float, float, int]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    ok = asyncio.run(fn(*args))
    return time.perf_counter() - t0, time.process_time() - cpu0, ok


def machine_load(server_pid: int) -> str:
    """The load average and the busiest processes besides this benchmark and its server, for the header."""
    one, five, _ = os.getloadavg()
    try:
        ps = subprocess.run(["ps", "-eo", "pcpu,pid,comm", "--sort=-pcpu"], capture_output=True, text=True,
                            timeout=5).stdout.splitlines()[1:]
    except (OSError, subprocess.SubprocessError):
        ps = []
    busy = [line.split(None, 2) for line in ps]
    ours = {os.getpid(), server_pid}
    others = [f"{comm} {cpu}%" for cpu, pid, comm in busy if int(pid) not in ours and float(cpu) >= 20][:3]
    try:
        commit = subprocess.run(["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return (f"{os.cpu_count()} cores, load average {one:.2f} (5 min: {five:.2f}); "
            f"{'busy besides this run: ' + ', '.join(others) if others else 'nothing else busy'}"
            + (f"; code at {commit}" if commit else ""))


def clients(port: int, total: int) -> list[tuple[str, Callable[[int, int], tuple[float, float, int]] | None, str]]:
    """(name, run(calls, in_flight) or None when unavailable, why unavailable); the lower bound first."""
    rows: list[tuple[str, Callable | None, str]] = [
        ("lower bound: hand-written asyncio HTTP/1.1 client", lambda n, c: measure(raw_client, port, n, c), "")]
    if importlib.util.find_spec("openai") is not None:
        rows.append(("openai SDK, asyncio.gather", lambda n, c: measure(openai_gather, port, n, c), ""))
    else:
        rows.append(("openai SDK, asyncio.gather", None, "skipped: `pip install openai` to include it"))
    rows.append(("raw httpx gather", lambda n, c: measure(httpx_gather, port, n, c), ""))
    rows.append(("aiohttp's own gather (ClientSession.post)", lambda n, c: measure(aiohttp_gather, port, n, c), ""))
    rows.append(("heavy's HTTP client alone", lambda n, c: measure(heavy_client, port, n, c), ""))
    rows.append(("heavy sampler (over aiohttp, the default)", lambda n, c: measure(heavy_sampler, port, n, c), ""))
    return rows


def overhead_table(latency: float, levels: list[int], total: int, repeat: int, out: list[str]) -> None:
    port = free_port()
    server = start_sim(port, "--latency", str(latency), "--accuracy", "1")

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    try:
        rows = clients(port, total)
        say(f"## Overhead: {total} calls of {latency:g} s latency against the simulated server on 127.0.0.1\n")
        say(f"Machine: {machine_load(server.pid)}. Medians of {repeat} interleaved repetitions after one warm-up each; "
            "throughput vs lower bound is paired within each repetition.\n")
        say("| client | in flight | wall s | ideal s | efficiency | throughput vs lower bound | CPU ms/call | "
            "CPU vs lower bound | ok |")
        say("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        verdicts: list[str] = []
        for c in levels:
            ideal = math.ceil(total / c) * latency
            for _, run, _ in rows:
                if run is not None:
                    run(min(total, 100), min(c, 100))  # warm-up: imports, first connections, lazy set-up
            samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name, run, _ in rows if run}
            for _ in range(repeat):
                for name, run, _ in rows:
                    if run is not None:
                        samples[name].append(run(total, c))
            base = samples[rows[0][0]]
            summary = {}
            for name, run, why in rows:
                if run is None:
                    say(f"| {name} | {c} | {why} | | | | | | |")
                    continue
                got = samples[name]
                wall = statistics.median(w for w, _, _ in got)
                cpu_ms = 1000 * statistics.median(cpu for _, cpu, _ in got) / total
                base_cpu_ms = 1000 * statistics.median(cpu for _, cpu, _ in base) / total
                ratio = statistics.median(b[0] / g[0] for b, g in zip(base, got))
                summary[name] = (ratio, cpu_ms, base_cpu_ms)
                say(f"| {name} | {c} | {wall:.2f} | {ideal:.2f} | {ideal / wall:.2f} | {ratio:.2f}x | {cpu_ms:.2f} | "
                    f"{cpu_ms / base_cpu_ms:.1f}x | {min(ok for _, _, ok in got)}/{total} |")
            heavy = next(v for k, v in summary.items() if k.startswith("heavy sampler"))
            own = next(v for k, v in summary.items() if k.startswith("aiohttp's own"))
            sdk = next((v for k, v in summary.items() if k.startswith("openai SDK")), None)
            verdicts.append(
                f"- **{c} in flight: heavy {heavy[0]:.2f}x the lower bound's throughput (goal {TARGET_RATIO}x at "
                f"1,000, floor {TARGET_FLOOR}x), aiohttp's own gather {own[0]:.2f}x (heavy within {TARGET_GAP} of "
                f"it: {'yes' if heavy[0] >= own[0] - TARGET_GAP else 'no'}); {heavy[1]:.2f} ms CPU per hypothesis "
                f"(target < {TARGET_CPU_MS}; aiohttp's gather {own[1]:.2f} ms, lower bound {heavy[2]:.2f} ms)**"
                + (f"; the openai SDK gather {sdk[0]:.2f}x, {sdk[1]:.2f} ms" if sdk else ""))
        say()
        for line in verdicts:
            say(line)
    finally:
        server.terminate()
        server.wait()


def early_stop_table(median: float, sigma: float, questions: int, out: list[str]) -> None:
    port = free_port()
    server = start_sim(port, "--latency", str(median), "--latency-sigma", str(sigma), "--accuracy", "0.9")

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    try:
        say(f"\n## vote@8 under heavy-tailed latency (lognormal, median {median:g} s, sigma {sigma:g}), "
            f"{questions} questions\n")
        say("| early stop | median wall / median single-call latency | p90 ratio | samples used per question |")
        say("|---|---:|---:|---:|")
        for early in (False, True):
            async def go() -> list[tuple[float, int]]:
                h = Heavy(model="openai:heavy-simulated", base_url=f"http://127.0.0.1:{port}/v1", n=8,
                          strategy="vote", early_stop=early)
                rows = []
                try:
                    for i in range(questions):
                        t0 = time.perf_counter()
                        r = await h.ask(f"What is {i} + 17?", seed=i)
                        rows.append((time.perf_counter() - t0, sum(x.ok for x in r.hypotheses)))
                finally:
                    await h.aclose()
                return rows

            rows = asyncio.run(go())
            ratios = sorted(w / median for w, _ in rows)
            say(f"| {'yes' if early else 'no'} | {statistics.median(ratios):.2f}x | "
                f"{ratios[int(0.9 * (len(ratios) - 1))]:.2f}x | {statistics.mean(u for _, u in rows):.1f} |")
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="measured repetitions per client and level")
    ap.add_argument("--levels", default="100,500,1000", help="calls in flight, comma-separated")
    ap.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    ap.add_argument("--quick", action="store_true", help="fewer levels, calls and questions (a smoke run)")
    args = ap.parse_args()
    levels = [100] if args.quick else [int(x) for x in args.levels.split(",")]
    out: list[str] = []
    overhead_table(args.latency, levels, 200 if args.quick else args.calls, 1 if args.quick else args.repeat, out)
    if args.out:  # written now too, so a failure in the second table cannot lose the first
        args.out.write_text("\n".join(out) + "\n")
    early_stop_table(0.5, 0.8, 10 if args.quick else 40, out)
    if args.out:
        args.out.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
