"""Confidence-weighted voting (DeepConf) on a real model: does token confidence pick better than the vote?

`confidence` needs token logprobs, which the main quality pool (bench/quality.py) was recorded without.
This script, on the same GSM8K questions, system prompt and local model:

1. records a pool of 8 samples per question at temperature 0.7 *with* logprobs (top 5 alternatives)
   -> bench/results/pool-gsm8k-logprobs-8.jsonl (committed gzipped as .jsonl.gz: ~0.5 MB a question)
2. replays vote and confidence (default options, then keep=0.5, then measure=lowest) on that pool at
   N = 4 and 8                                                   -> bench/results/confidence-*.jsonl
3. prints and writes a table (each variant next to the vote on the very same samples), and how well each
   confidence measure separates right traces from wrong ones (AUROC over every sample of the pool)
                                                                 -> bench/results/confidence.md

Resumable like every `heavy eval` run. Needs `heavy local start`:

    nohup python bench/confidence.py > bench/results/confidence.log 2>&1 &
    python bench/confidence.py --report
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from quality import DATA, OUT, ROOT, SYSTEM, heavy, rows_of

sys.path.insert(0, str(ROOT))

from heavy.answers import final_answer  # noqa: E402
from heavy.evaluation import Pool, is_correct, summarize, wilson  # noqa: E402
from strategies.confidence import ConfidenceOptions, trace_confidence  # noqa: E402

LP_POOL = OUT / "pool-gsm8k-logprobs-8.jsonl"
VARIANTS = {"confidence-replay": ("vote,confidence", ()),
            "confidence-keep50": ("confidence", ("-o", "keep=0.5")),
            "confidence-lowest": ("confidence", ("-o", "measure=lowest"))}


def pool_path() -> Path:
    """The recorded pool, or its committed gzipped copy."""
    gz = LP_POOL.with_name(LP_POOL.name + ".gz")
    return LP_POOL if LP_POOL.exists() or not gz.exists() else gz


def separation(pool: Pool) -> list[str]:
    """AUROC of each trace-confidence measure for "this sample's answer is right" over every sample."""
    o = ConfidenceOptions()
    graded = [(h.logprobs, is_correct(final_answer(h.text), row["gold"]))  # parsed and graded once
              for row in pool.rows for h in pool.hypotheses(row["id"]) or [] if h.ok and h.logprobs]
    lines = ["| measure | right samples | wrong samples | AUROC (0.5 = no signal) |", "|---|---:|---:|---:|"]
    for measure in ("mean", "bottom10", "lowest", "tail"):
        right: list[float] = []
        wrong: list[float] = []
        for logprobs, correct in graded:
            (right if correct else wrong).append(trace_confidence(logprobs, measure, o.window, o.tail))
        if right and wrong:
            auc = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong) / (len(right) * len(wrong))
            lines.append(f"| {measure} | {len(right)} | {len(wrong)} | {auc:.2f} |")
    return lines


def report() -> str:
    path = pool_path()
    pool = Pool(path)
    vote = {(r["id"], r["n"]): r for r in rows_of(OUT / "confidence-replay.jsonl") if r.get("strategy") == "vote"}
    lines = ["| strategy | N | questions | accuracy | 95 % CI | vote@N, same samples | decisions unlike the vote |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, (_, opts) in VARIANTS.items():
        rows = rows_of(OUT / f"{name}.jsonl")
        for s in summarize(rows):
            mine = [r for r in rows if r.get("strategy") == s.strategy and r.get("n") == s.n]
            same = [vote.get((r["id"], r["n"])) for r in mine]
            ref = f"{sum(bool(v['correct']) for v in same if v)}/{sum(1 for v in same if v)}"
            unlike = sum(1 for r, v in zip(mine, same) if v and r.get("answer") != v.get("answer"))
            lo, hi = wilson(s.correct, s.total)
            label = s.strategy + (f" ({' '.join(opts[1::2])})" if opts else "")
            lines.append(f"| {label} | {s.n} | {s.total} | {s.correct}/{s.total} = {s.accuracy:.1%} | "
                         f"{lo:.0%}–{hi:.0%} | {ref} | {unlike if s.strategy != 'vote' else '–'} |")
    text = (f"# confidence (DeepConf) on `{path.name}`: {len(pool.rows)} questions x 8 samples with logprobs\n\n"
            + "\n".join(lines) + "\n\nHow well trace confidence separates right samples from wrong ones:\n\n"
            + "\n".join(separation(pool)) + "\n")
    (OUT / "confidence.md").write_text(text, encoding="utf-8")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--model", default="local")
    ap.add_argument("--base-url", default=os.environ.get("HEAVY_LOCAL_BASE_URL"))
    ap.add_argument("--report", action="store_true", help="only rebuild confidence.md from the results files")
    args = ap.parse_args()
    if not args.report:
        common = ["-m", args.model, "--system", SYSTEM, "--max-tokens", "512", "--limit", str(args.questions)] + (
            ["--base-url", args.base_url] if args.base_url else [])
        if pool_path() == LP_POOL:  # a committed .gz alone is replayed as is, never recorded into
            heavy("eval", str(DATA), *common, "--concurrency", "1", "-s", "vote", "-n", "8", "-t", "0.7", "--seed", "1",
                  "--logprobs", "5", "--record", str(LP_POOL), "--results", str(OUT / "confidence-live.jsonl"))
        for name, (strategies, opts) in VARIANTS.items():
            heavy("eval", str(DATA), *common, "--strategies", strategies, "--ns", "4,8", "--replay", str(pool_path()),
                  "--results", str(OUT / f"{name}.jsonl"), *opts)
    print(report())


if __name__ == "__main__":
    main()
