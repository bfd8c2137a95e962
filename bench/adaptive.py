"""Adaptive sampling on a recorded pool: samples saved vs accuracy, over many orders of the same samples.

A single replay of ``adaptive`` sees each question's samples in one recorded order, so its "samples used"
and accuracy hinge on which answers happened to come first. This benchmark replays the pool in ``--orders``
seeded random orders per question, runs the real ``adaptive`` strategy (and ``vote`` at the same maximum N,
as the baseline) through the library's public API with ``live=False`` (no model call is ever made), and
prints, per stopping rule: mean samples used, the share saved against vote@N, and accuracy (mean over
orders, with the spread between orders) side by side with vote@N on the very same orders.

    python bench/adaptive.py [--pool bench/results/pool-gsm8k-8.jsonl] [--orders 50] [--n 8]

The table goes to stdout and to ``bench/results/adaptive-orders.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
from pathlib import Path

from quality import ROOT, SYSTEM

sys.path.insert(0, str(ROOT))

from heavy import Heavy  # noqa: E402
from heavy.evaluation import Pool, is_correct  # noqa: E402
from heavy.types import Hypothesis  # noqa: E402

# (label, adaptive options), every rule spelled out (the default has changed once already), cheapest last.
RULES: list[tuple[str, dict]] = [
    ("auto, p>=0.95, wave 2 (the default until this measurement)", {"rule": "auto", "threshold": 0.95, "wave": 2}),
    ("auto, p>=0.9, wave 1", {"rule": "auto", "threshold": 0.9, "wave": 1}),
    ("auto, p>=0.85, wave 1", {"rule": "auto", "threshold": 0.85, "wave": 1}),
    ("auto, p>=0.8, wave 1", {"rule": "auto", "threshold": 0.8, "wave": 1}),
    ("beta, p>=0.85, wave 1", {"rule": "beta", "threshold": 0.85, "wave": 1}),
    ("beta, p>=0.8, wave 1", {"rule": "beta", "threshold": 0.8, "wave": 1}),
    ("ESC window 4, wave 4", {"rule": "window", "window": 4, "wave": 4}),
    ("ESC window 3, wave 1", {"rule": "window", "window": 3, "wave": 1}),
    ("ESC window 2, wave 2", {"rule": "window", "window": 2, "wave": 2}),
    ("ESC window 2, wave 1", {"rule": "window", "window": 2, "wave": 1}),
]


async def measure(pool: Pool, orders: int, n: int) -> list[tuple[str, int, float, list[float]]]:
    """Per configuration (vote@n first): max N, mean samples used, and accuracy per order (all questions)."""
    configs: list[tuple[str, int, dict | None]] = [("vote", n, None)]
    configs += [("vote", k, None) for k in (2, 4, 6) if k < n]
    configs += [(f"adaptive: {label}", n, opts) for label, opts in RULES]
    configs += [(f"adaptive: {label}", k, opts) for label, opts in RULES[-1:] for k in (4, 6) if k < n]
    out: list[tuple[str, int, float, list[float]]] = []
    # Each question's samples in each order, drawn once: every configuration replays the very same orders.
    ordered: list[tuple[dict, list[list[Hypothesis]]]] = []
    for row in pool.rows:
        ok = [x for x in pool.hypotheses(row["id"]) or [] if x.status == "ok"][:n]
        shuffles = []
        for k in range(orders):
            hyps = list(ok)
            random.Random(f"{row['id']}/{k}").shuffle(hyps)
            shuffles.append(hyps)
        ordered.append((row, shuffles))
    async with Heavy(["local"], base_url="http://127.0.0.1:9/v1", n=n) as h:
        for label, max_n, opts in configs:
            used: list[int] = []
            acc: list[float] = []
            for k in range(orders):
                right = 0
                for row, shuffles in ordered:
                    hyps = shuffles[k][:max_n]
                    r = await h.ask(row["question"], system=SYSTEM, n=max_n, pool=hyps, live=False,
                                    strategy="vote" if opts is None else "adaptive", options=opts)
                    right += is_correct(r.answer, row["gold"])
                    used.append(r.decision.details.get("samples_used", len(hyps)))
                acc.append(right / len(pool.rows))
            out.append((label, max_n, statistics.fmean(used), acc))
    return out


def table(rows: list[tuple[str, int, float, list[float]]], questions: int, orders: int) -> str:
    _, n, base_used, base_acc_orders = rows[0]
    base_acc = statistics.fmean(base_acc_orders)
    lines = [f"## adaptive vs vote@{n}: {questions} questions, each replayed in {orders} random orders", "",
             f"| strategy | max N | samples used (mean) | saved vs vote@{n} | accuracy (mean over orders) | "
             f"min–max | vs vote@{n} |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, max_n, used, acc in rows:
        mean = statistics.fmean(acc)
        lines.append(f"| {label} | {max_n} | {used:.2f} | {1 - used / base_used:.0%} | {mean:.1%} | "
                     f"{min(acc):.1%}–{max(acc):.1%} | {100 * (mean - base_acc):+.1f} pt |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default=str(ROOT / "bench" / "results" / "pool-gsm8k-8.jsonl"))
    ap.add_argument("--orders", type=int, default=50)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "adaptive-orders.md"))
    args = ap.parse_args()
    pool = Pool(args.pool)
    text = table(asyncio.run(measure(pool, args.orders, args.n)), len(pool.rows), args.orders)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
