"""Quality benchmark: does Heavy beat a single answer on a real model?

On GSM8K questions from ../shared/data/gsm8k-train-300.jsonl and the local model (`heavy local start`):

1. greedy single answer (temperature 0, N=1)                        -> bench/results/greedy.jsonl
2. a pool of N=8 samples per question at temperature 0.7            -> bench/results/pool-gsm8k-8.jsonl
3. every strategy replayed on that same pool at N = 1, 2, 4, 8      -> bench/results/replay.jsonl
   (only judge/aggregator calls are new: strategies compare on identical samples)
4. a summary table (accuracy with 95 % interval, tokens and calls per question) and an SVG curve
                                                                    -> bench/results/quality.md, quality.svg

Every step is `heavy eval` with an append-only results file, so the script resumes where a killed run
stopped; commit bench/results/ as it grows. Run it in the background:

    nohup python bench/quality.py --questions 40 > bench/results/quality.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gsm8k-train-300.jsonl"
OUT = ROOT / "bench" / "results"
SYSTEM = "Solve the math word problem step by step. End with a final line of the form 'The answer is N.'"


def heavy(*args: str) -> str:
    cmd = [sys.executable, "-m", "heavy.cli", *args]
    print("$ heavy " + " ".join(args), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"heavy exited {done.returncode}")
    return done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--model", default="local")
    ap.add_argument("--base-url", default=os.environ.get("HEAVY_LOCAL_BASE_URL"))
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--concurrency", type=int, default=2, help="questions in flight (x8 samples each)")
    ap.add_argument("--strategies", default="vote,judge,synthesize,heavy")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    common = ["-m", args.model, "--system", SYSTEM, "--max-tokens", str(args.max_tokens), "--limit",
              str(args.questions), "--concurrency", str(args.concurrency)]
    if args.base_url:
        common += ["--base-url", args.base_url]
    data = str(DATA)

    # The pool first: it is the expensive part, and every strategy's numbers come from it.
    heavy("eval", data, *common, "-s", "vote", "-n", "8", "-t", "0.7", "--seed", "1",
          "--record", str(OUT / "pool-gsm8k-8.jsonl"), "--results", str(OUT / "vote8-live.jsonl"))
    heavy("eval", data, *common, "-s", "vote", "-n", "1", "-t", "0", "--results", str(OUT / "greedy.jsonl"))
    summary = heavy("eval", data, *common, "--strategies", args.strategies, "--ns", "1,2,4,8",
                    "--replay", str(OUT / "pool-gsm8k-8.jsonl"), "--results", str(OUT / "replay.jsonl"),
                    "--plot", str(OUT / "quality.svg"), "--json")
    greedy = heavy("eval", data, *common, "-s", "vote", "-n", "1", "-t", "0", "--results",
                   str(OUT / "greedy.jsonl"), "--json")
    rows = json.loads(greedy) + json.loads(summary.strip().splitlines()[-1])
    lines = ["| strategy | N | accuracy | 95% CI | correct | tokens/question | calls/question |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = "greedy (t=0)" if r in json.loads(greedy) else r["strategy"]
        lo, hi = r["ci95"]
        lines.append(f"| {name} | {r['n']} | {r['accuracy']:.1%} | {lo:.0%}–{hi:.0%} | {r['correct']}/{r['total']} "
                     f"| {r['tokens_per_question']:,.0f} | {r['calls_per_question']:.1f} |")
    table = "\n".join(lines)
    (OUT / "quality.md").write_text(
        f"# Quality on GSM8K ({args.questions} training questions), model `{args.model}`\n\n"
        f"Samples at temperature 0.7, max_tokens {args.max_tokens}; strategies replayed on one recorded pool.\n\n"
        f"{table}\n")
    print(table)


if __name__ == "__main__":
    main()
