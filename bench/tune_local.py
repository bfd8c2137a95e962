"""`heavy tune` on the real local model: which strategy does the user's own data choose, and does it hold on the
questions it was not chosen on?

GSM8K training questions 40-79 of tests/data/gsm8k-train-300.jsonl (questions 0-39 and 200-280 were looked at by
earlier benchmarks; these were not), the local model (`heavy local start`: Qwen2.5-Coder-1.5B-Instruct on the
CPU), the bench's system prompt, max_tokens 512, T 0.7, seed 1, with the python tool. One pool per question, 8
chains + 8 programs, recorded once by `heavy eval --record` (resumable, question by question; `heavy tune` reuses
a pool in its folder as it is), then `heavy tune` decides every configuration that applies on that pool and splits
the questions into a tune half and a check half (its own seeded split): the recommendation is chosen on the tune
half and reported by the check half. Only judge, synthesis and check calls are live; the strategies compared are
the ones whose live calls a 2-core machine can afford in an afternoon: vote, heavy, crosscheck and adaptive, whose
only live calls are heavy's syntheses and the ``--verify`` checks. judge, usc and synthesize were decided too on
the first questions of the run (their rows are in the results file) until their calls, 1,400-token prompts
answered at 2-4 tokens a second beside three other slots, made a question take ten minutes; tournament and
ranked, which make N-1 and N judge calls per question, were never in.

The check set: questions no choice has seen, GSM8K training questions 120-139 (``--check``): a pool recorded
the same way, then ``heavy tune`` at N = 8 for vote, heavy, crosscheck and adaptive on it; every row there is
held out (its own halves are ignored: the whole set is the check).

    nohup python bench/tune_local.py > bench/results/tune-local.log 2>&1 &     # resumable
    python bench/tune_local.py --report                                       # the table again, from the files
    python bench/tune_local.py [--check] --markdown bench/results/tune-local.md  # the docs' tables
    nohup python bench/tune_local.py --check > bench/results/tune-check.log 2>&1 &
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "gsm8k-train-300.jsonl"
OUT = ROOT / "bench" / "results" / "tune-local"
POOL = ROOT / "bench" / "results" / "split-pool-tune.jsonl"
SYSTEM = "Solve the math word problem step by step. End with a final line of the form 'The answer is N.'"
COMMON = ["-m", "local", "--system", SYSTEM, "--max-tokens", "512", "--tools", "python", "-t", "0.7", "--seed", "1"]
STRATEGIES = "vote,heavy,crosscheck,adaptive"
CHECK_POOL = ROOT / "bench" / "results" / "check-pool.jsonl"  # GSM8K train 120-139: no choice has seen them
CHECK_OUT = ROOT / "bench" / "results" / "tune-check"
CHECK_STRATEGIES = "vote,heavy,crosscheck,adaptive"


def heavy(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "heavy.cli", *args], check=True, cwd=ROOT)


def unpack(pool: Path) -> None:
    """A pool is committed gzipped: unpack it (once) to record more into it or to tune on it."""
    packed = pool.with_name(pool.name + ".gz")
    if not pool.exists() and packed.exists():
        with gzip.open(packed, "rb") as src, pool.open("wb") as dst:
            shutil.copyfileobj(src, dst)


def record(pool: Path, results: Path, offset: int, limit: int, step: int) -> None:
    """8 chains + 8 programs per question into *pool* (vote@8's rows into *results*), *step* questions at a time
    (each step resumes)."""
    unpack(pool)
    for start in range(offset, offset + limit, step):
        heavy("eval", str(DATA), *COMMON, "--offset", str(start), "--limit", str(min(step, offset + limit - start)),
              "-s", "vote", "-n", "8", "--programs", "8", "--concurrency", "2", "--record", str(pool),
              "--results", str(results))


def tune(pool: Path, out: Path, offset: int, limit: int, *extra: str) -> None:
    """`heavy tune` on *pool* (copied into its folder *out*, where tune keeps its own) for the questions given."""
    unpack(pool)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(pool, out / "pool.jsonl")  # heavy tune's own pool: the recorded one, as it stands
    heavy("tune", str(DATA), *COMMON, "--offset", str(offset), "--limit", str(limit), "--concurrency", "4",
          "--results", str(out), *extra)


def markdown(results: Path, offset: int, limit: int, *, halves: bool) -> str:
    """The decisions in *results* as a markdown table: per configuration, accuracy (95 % interval), tokens, calls and
    seconds per question and wins / losses against vote@8 on the same questions, per half of heavy tune's split
    (*halves*), or over every question (a check set)."""
    sys.path.insert(0, str(ROOT))
    from heavy.evaluation.items import load_items
    from heavy.evaluation.scoring import wilson
    from heavy.evaluation.tune import split_halves

    items = load_items(DATA, offset=offset, limit=limit)
    half_of = split_halves(items) if halves else {item.id: "check" for item in items}
    rows: dict[tuple[str, int, str], dict] = {}
    for line in results.read_text().splitlines():
        r = json.loads(line)
        if r.get("id") in half_of and "config" in r:
            rows[(r["config"], r["n"], r["id"])] = r
    names = ("tune", "check") if halves else ("check",)
    head = ["decision", "N"]
    for half in names:
        q = sum(1 for h in half_of.values() if h == half)
        what = f"{half} half ({q})" if halves else f"held out ({q})"
        head += [f"{what}: correct", "accuracy (95 % CI)", "tokens/q", "calls/q", "s/q", "W / L vs vote@8"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    configs = sorted({(c, n) for c, n, _ in rows}, key=lambda cn: (cn[0] != "vote", cn[0], cn[1]))
    for config, n in configs:
        cells = [config, str(n)]
        for half in names:
            ids = [i for i, h in half_of.items() if h == half]
            mine = [rows[(config, n, i)] for i in ids if (config, n, i) in rows]
            if not mine:
                cells += ["–"] * 6
                continue
            k, right = len(mine), sum(bool(r["correct"]) for r in mine)
            lo, hi = wilson(right, k)
            base = [rows.get(("vote", 8, r["id"])) for r in mine]
            wins = sum(1 for r, b in zip(mine, base) if b and r["correct"] and not b["correct"])
            losses = sum(1 for r, b in zip(mine, base) if b and b["correct"] and not r["correct"])
            cells += [f"{right} of {k}" + ("" if k == len(ids) else " (partial)"), f"{right / k:.1%} ({lo:.0%}–{hi:.0%})",
                      f"{sum(r['total_tokens'] or 0 for r in mine) / k:,.0f}", f"{sum(r['calls'] or 0 for r in mine) / k:.1f}",
                      f"{sum(r['wall_s'] or 0 for r in mine) / k:.1f}",
                      "–" if (config, n) == ("vote", 8) else f"{wins} / {losses}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offset", type=int, default=None, help="first question (40; 120 with --check)")
    parser.add_argument("--limit", type=int, default=None, help="questions (40; 20 with --check)")
    parser.add_argument("--report", action="store_true", help="print the table from what is recorded, sample nothing")
    parser.add_argument("--check", action="store_true", help="the check set: its own pool and questions")
    parser.add_argument("--markdown", type=Path, default=None, help="write the decisions as a markdown table, no run")
    args = parser.parse_args()
    offset = args.offset if args.offset is not None else (120 if args.check else 40)
    limit = args.limit if args.limit is not None else (20 if args.check else 40)
    if args.markdown:
        found = (CHECK_OUT if args.check else OUT) / "tune-results.jsonl"
        args.markdown.write_text(markdown(found, offset, limit, halves=not args.check))
        return
    if args.check:
        if not args.report:
            record(CHECK_POOL, CHECK_POOL.with_name("check-record.jsonl"), offset, limit, 2)
        tune(CHECK_POOL, CHECK_OUT, offset, limit, "--ns", "8", "--strategies", CHECK_STRATEGIES)
        return
    if not args.report:
        record(POOL, POOL.with_name("split-tune-record.jsonl"), offset, limit, 20)
    tune(POOL, OUT, offset, limit, "--strategies", STRATEGIES, "--plot", str(OUT / "frontier.svg"))


if __name__ == "__main__":
    main()
