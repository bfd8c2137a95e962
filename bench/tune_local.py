"""`heavy tune` on the real local model: which strategy does the user's own data choose, and does it hold on the
questions it was not chosen on?

GSM8K training questions 40-79 of tests/data/gsm8k-train-300.jsonl (questions 0-39 and 200-280 were looked at by
earlier benchmarks; these were not), the local model (`heavy local start`: Qwen2.5-Coder-1.5B-Instruct on the
CPU), the bench's system prompt, max_tokens 512, T 0.7, seed 1, with the python tool. One pool per question, 8
chains + 8 programs, recorded once by `heavy eval --record` (resumable, question by question; `heavy tune` reuses
a pool in its folder as it is), then `heavy tune` decides every configuration that applies on that pool and splits
the questions into a tune half and a check half (its own seeded split): the recommendation is chosen on the tune
half and reported by the check half. Only judge, synthesis and check calls are live; the strategies compared are
the ones whose live calls a 2-core machine can afford in an afternoon (tournament and ranked, which make N-1 and
N judge calls per question, are left out).

    nohup python bench/tune_local.py > bench/results/tune-local.log 2>&1 &     # resumable
    python bench/tune_local.py --report                                       # the table again, from the files
"""

from __future__ import annotations

import argparse
import gzip
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
STRATEGIES = "vote,heavy,crosscheck,adaptive,judge,usc,synthesize"


def heavy(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "heavy.cli", *args], check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offset", type=int, default=40)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--report", action="store_true", help="print the table from what is recorded, sample nothing")
    args = parser.parse_args()
    window = ["--offset", str(args.offset), "--limit", str(args.limit)]
    packed = POOL.with_name(POOL.name + ".gz")
    if not POOL.exists() and packed.exists():  # the pool is committed gzipped: unpack it to record more or tune
        with gzip.open(packed, "rb") as src, POOL.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    tune = ["tune", str(DATA), *COMMON, *window, "--strategies", STRATEGIES, "--concurrency", "4",
            "--results", str(OUT), "--plot", str(OUT / "frontier.svg")]
    if args.report:  # everything is in the pool and the results file: nothing is sampled or decided again
        OUT.mkdir(parents=True, exist_ok=True)
        shutil.copy(POOL, OUT / "pool.jsonl")
        heavy(*tune)
        return
    for start in range(args.offset, args.offset + args.limit, 20):  # the pool, 20 questions at a time
        heavy("eval", str(DATA), *COMMON, "--offset", str(start), "--limit", str(min(20, args.offset + args.limit - start)),
              "-s", "vote", "-n", "8", "--programs", "8", "--concurrency", "2", "--record", str(POOL),
              "--results", str(POOL.with_name("split-tune-record.jsonl")))
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(POOL, OUT / "pool.jsonl")  # heavy tune's own pool: the recorded one, as it stands
    heavy(*tune)


if __name__ == "__main__":
    main()
