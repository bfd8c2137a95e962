"""`heavy eval --batch` killed and resumed: 200 questions on heavy's simulated batch API, nothing lost or paid twice.

A `heavy sim` process (simulated, not a real model: its batch jobs follow OpenAI's documented lifecycle and take
``--batch-seconds``) serves the dataset's gold answers. The benchmark runs

    heavy eval DATA -m openai:gpt-4.1-mini -m openai:gpt-4.1-nano --base-url SIM/v1 --batch --results OUT.jsonl \
        -s vote -n 8 --seed 1

as a real subprocess, kills it (SIGKILL) just after its jobs are created, starts it again and kills that run
while the jobs run, kills a third run while it decides the questions, then lets a fourth run finish. The simulator counts every request submitted and every request billed, by
custom_id, so a resubmission or a second bill shows. The same command without ``--batch`` then samples the
same 1,600 requests interactively, for the interactive price and to check that the decisions are the same.

    python bench/batch.py [--questions 200] [--n 8] [--batch-seconds 8]

The report goes to stdout and to ``bench/results/batch.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "gsm8k-train-300.jsonl"
MODELS = ["openai:gpt-4.1-mini", "openai:gpt-4.1-nano"]


def rows(path: Path) -> list[dict]:
    """Every readable row (a kill may leave a torn last line, which heavy keeps and skips too)."""
    out = []
    if path.exists():
        for line in path.read_bytes().split(b"\n"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim(data: Path, batch_seconds: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "heavy.cli", "sim", "--port", str(port), "--dataset", str(data),
                             "--batch-seconds", str(batch_seconds), "--seed", "1", "--accuracy", "0.6"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(f"{base}/health", timeout=0.5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("heavy sim did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--batch-seconds", type=float, default=8.0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="heavy-batch-bench-"))
    data = work / "data.jsonl"
    data.write_text("".join(line + "\n" for line in DATA.read_text().splitlines()[:args.questions]))
    out, live_out = work / "out.jsonl", work / "live.jsonl"
    book = Path(str(out) + ".batches")
    sim, base = start_sim(data, args.batch_seconds)
    common = [str(data), *(x for m in MODELS for x in ("-m", m)), "--base-url", f"{base}/v1", "-s", "vote",
              "-n", str(args.n), "--seed", "1"]
    cmd = [sys.executable, "-m", "heavy.cli", "eval", *common, "--batch", "--results", str(out), "--batch-poll", "0.5"]
    log: list[str] = []
    try:
        started = time.monotonic()

        def kill_when(ready, what: str) -> None:
            victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not ready() and victim.poll() is None:
                time.sleep(0.02)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            jobs = [r for r in rows(book) if r.get("kind") == "job"]
            log.append(f"killed {what} at {time.monotonic() - started:.1f} s: {len(jobs)} job(s) booked, "
                       f"{len(rows(out))} questions decided")

        kill_when(lambda: len([r for r in rows(book) if r.get("kind") == "job"]) >= len(MODELS),
                  "run 1 (jobs just created)")
        time.sleep(args.batch_seconds / 3)
        kill_when(lambda: time.monotonic() - started > args.batch_seconds * 0.7, "run 2 (jobs in progress)")
        kill_when(lambda: len(rows(out)) >= args.questions // 10, "run 3 (deciding)")
        final = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if final.returncode:
            raise SystemExit(f"the resumed run failed: {final.stderr}")
        batch_wall = time.monotonic() - started
        stats = httpx.get(f"{base}/health").json()["batches"]
        t0 = time.monotonic()
        live = subprocess.run([sys.executable, "-m", "heavy.cli", "eval", *common, "--results", str(live_out),
                               "--concurrency", "16"], capture_output=True, text=True, timeout=1200)
        if live.returncode:
            raise SystemExit(f"the interactive run failed: {live.stderr}")
        live_wall = time.monotonic() - t0
    finally:
        sim.terminate()
        sim.wait()

    decided = rows(out)
    ids = [r["id"] for r in decided]
    interactive = {r["id"]: r for r in rows(live_out)}
    same = sum(r["answer"] == interactive[r["id"]]["answer"] and
               r["hypothesis_answers"] == interactive[r["id"]]["hypothesis_answers"] for r in decided)
    batch_cost = sum(r["cost_usd"] for r in decided)
    live_cost = sum(r["cost_usd"] for r in interactive.values())
    right = sum(r["correct"] for r in decided)
    kinds = [r.get("kind") for r in rows(book)]
    requests = args.questions * args.n
    lines = [
        f"# heavy eval --batch, killed and resumed ({time.strftime('%Y-%m-%d')})",
        "",
        f"`python bench/batch.py --questions {args.questions} --n {args.n} --batch-seconds {args.batch_seconds:g}`: "
        f"{args.questions} GSM8K questions, vote over {args.n} samples round-robined over {' and '.join(MODELS)}, "
        "on `heavy sim` (simulated, not a real model; its batch jobs follow OpenAI's documented lifecycle). "
        "Each run of the same command is a real process, killed with SIGKILL.",
        "",
        *[f"- {line}" for line in log],
        f"- run 4 finished, {batch_wall:.1f} s from the first start; it said: "
        + "; ".join(f"`{line.strip().replace(str(work) + '/', '')}`" for line in final.stderr.splitlines()
                    if "resuming" in line or "picking up" in line or "submitted" in line or "saved" in line),
        "",
        "| measure | value |",
        "|---|---|",
        f"| requests to sample ({args.questions} × {args.n}) | {requests} |",
        f"| batch jobs created | {stats['jobs']} (book: {kinds.count('submit')} submitted, {kinds.count('job')} "
        f"created, {kinds.count('ended')} ended) |",
        f"| requests submitted | {stats['submitted']} |",
        f"| requests submitted twice | {stats['submitted_twice']} |",
        f"| requests paid (billed) | {stats['billed']} |",
        f"| requests paid twice | {stats['billed_twice']} |",
        f"| questions decided | {len(ids)} ({len(set(ids))} distinct) |",
        f"| accuracy (vote@{args.n}) | {right}/{len(ids)} = {right / max(1, len(ids)):.1%} |",
        f"| decisions identical to the interactive run (answer and every sample's answer) | {same}/{len(ids)} |",
        f"| cost at batch prices | ${batch_cost:.4f} |",
        f"| cost of the same run interactively | ${live_cost:.4f} |",
        f"| saved | ${live_cost - batch_cost:.4f} ({1 - batch_cost / live_cost:.0%}) |",
        f"| wall time, batch (4 runs, 3 kills) / interactive | {batch_wall:.1f} s / {live_wall:.1f} s |",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    (ROOT / "bench" / "results" / "batch.md").write_text(report)


if __name__ == "__main__":
    main()
