"""Verification by execution on the real local model: does cross-checking chains with programs beat the vote?

GSM8K training questions from tests/data/gsm8k-train-300.jsonl, the local model (`heavy local start`),
N = 8. Two disjoint sets of questions:

* **tune** (``--tune``: questions 0-39, the ones earlier benchmarks used): where the program prompt and
  the decision rule were chosen;
* **held out** (questions 200-299; the report uses as many as have finished, at least 60 are the target):
  never looked at while choosing anything, reported separately.

Per question one pool is recorded once: 8 reasoning chains and 8 program hypotheses at temperature 0.7,
max_tokens 512 (`heavy eval --programs 8 --record`). The tune set reuses the 8 chains per question that
bench/quality.py recorded with the same prompt and settings (`pool-gsm8k-8.jsonl`) and adds 8 programs.
Every row below is then decided on those same samples (`--replay`; programs are executed again on
replay), so rows differ only in how they decide:

    vote@8              majority of the 8 chains
    programs@8          majority of the 8 executed programs (crosscheck -o programs=1)
    crosscheck 4+4      4 chains + 4 programs, early stop (the split before tuning)
    crosscheck 6+2      6 chains + 2 programs (the tuned default), a cross-route answer wins if it leads
                        or ties the vote; with and without early stopping (1 chain + 1 program first)
    heavy@8 (python)    the default strategy with the python tool enabled (what `heavy eval --tools python
                        -s heavy` runs)
    verify@8            vote@8 with `--verify python` (a check program per numeric answer; live calls)
    greedy              one chain at temperature 0 (live)

Every step is `heavy eval` with an append-only results file, so the script resumes where a killed run
stopped. The held-out pool is committed gzipped (81 questions so far); replays and the report read the
.gz, and recording more questions needs it unpacked first (`gunzip -k bench/results/xc-pool-heldout.jsonl.gz`). Run it in the background and commit bench/results/ as it grows:

    nohup python bench/crosscheck.py > bench/results/xc.log 2>&1 &
    python bench/crosscheck.py --report      # only rebuild bench/results/crosscheck.md
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from heavy.evaluation import is_correct, wilson  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from quality import DATA, SYSTEM, heavy, rows_of  # noqa: E402

OUT = ROOT / "bench" / "results"
SETS = {"tune": (0, 40), "heldout": (200, 100)}  # name -> (offset, questions)

# (row label, results file stem, strategy, extra `heavy eval` arguments); all replayed on the set's pool.
REPLAYS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("vote@8", "vote", "vote", ()),
    ("programs@8", "programs", "crosscheck", ("-o", "programs=1", "-o", "early_stop=false")),
    ("crosscheck 4+4 (untuned split, early stop)", "crosscheck-44", "crosscheck", ("-o", "programs=0.5")),
    ("crosscheck 6+2, no early stop", "mixed", "crosscheck", ("-o", "early_stop=false")),
    ("crosscheck@8 (6+2, early stop)", "crosscheck", "crosscheck", ()),
    ("heavy@8 --tools python (the default)", "heavy-python", "heavy", ()),
]


def files(name: str) -> dict[str, Path]:
    return {"pool": OUT / f"xc-pool-{name}.jsonl", "record": OUT / f"xc-{name}-record.jsonl",
            "greedy": OUT / f"xc-{name}-greedy.jsonl", "verify": OUT / f"xc-{name}-verify.jsonl",
            **{stem: OUT / f"xc-{name}-{stem}.jsonl" for _, stem, _, _ in REPLAYS}}


def readable(pool: Path) -> Path:
    """The pool to replay or report: the plain file while it is being recorded, else the committed .gz."""
    gz = pool.with_name(pool.name + ".gz")
    return pool if pool.exists() or not gz.exists() else gz


def pool_rows(pool: Path) -> list[dict]:
    path = readable(pool)
    if path.suffix != ".gz":
        return rows_of(path)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def merge_tune_pool(chains: Path, programs: Path, out: Path) -> int:
    """The tune pool: each question's 8 recorded chains (bench/quality.py) + its 8 new programs; returns rows."""
    by_id = {r["id"]: r for r in rows_of(chains)}
    merged = []
    for row in rows_of(programs):
        base = by_id.get(row["id"])
        if base is None:
            continue
        progs = [h for h in row["hypotheses"] if h.get("route") == "program"]
        merged.append({**base, "hypotheses": [*base["hypotheses"][:8], *progs]})
    out.write_text("".join(json.dumps(r) + "\n" for r in merged), encoding="utf-8")
    return len(merged)


def run(name: str, args: argparse.Namespace) -> None:
    offset, questions = SETS[name]
    f = files(name)
    common = ["-m", args.model, "--system", SYSTEM, "--max-tokens", "512", "--tools", "python",
              "--offset", str(offset), "--limit", str(questions)] + (
        ["--base-url", args.base_url] if args.base_url else [])
    data = str(DATA)
    if name == "tune":
        # Programs only (`-n 1`: eval needs a chain, it is dropped), merged with the chains already recorded.
        programs = OUT / "xc-pool-tune-programs.jsonl"
        heavy("eval", data, *common, "-s", "vote", "-n", "1", "--programs", "8", "-t", "0.7", "--seed", "1",
              "--concurrency", str(args.concurrency), "--record", str(programs),
              "--results", str(OUT / "xc-tune-programs-record.jsonl"))
        print(f"tune pool: {merge_tune_pool(OUT / 'pool-gsm8k-8.jsonl', programs, f['pool'])} questions")
    else:
        # The pool: 8 chains + 8 programs per question, recorded once (resumable, question by question).
        heavy("eval", data, *common, "-s", "vote", "-n", "8", "--programs", "8", "-t", "0.7", "--seed", "1",
              "--concurrency", str(args.concurrency), "--record", str(f["pool"]), "--results", str(f["record"]))
    for _, stem, strategy, extra in REPLAYS:
        heavy("eval", data, *common, "-s", strategy, "-n", "8", *extra, "--replay", str(readable(f["pool"])),
              "--results", str(f[stem]))
    if args.live:
        heavy("eval", data, *common, "-s", "vote", "-n", "1", "-t", "0", "--concurrency", "2",
              "--results", str(f["greedy"]))
        heavy("eval", data, *[a for a in common if a != "--tools" and a != "python"], "-s", "vote", "-n", "8",
              "--verify", "python", "--replay", str(readable(f["pool"])), "--results", str(f["verify"]))


def _ok(h: dict, gold: str) -> bool:
    return h.get("status", "ok") == "ok" and is_correct(h.get("answer"), gold)


def report_set(name: str) -> list[str]:
    f = files(name)
    pool = {r["id"]: r for r in pool_rows(f["pool"])}
    rows = {label: {r["id"]: r for r in rows_of(f[stem]) if not r.get("error")} for label, stem, _, _ in REPLAYS}
    rows["greedy (t=0, live)"] = {r["id"]: r for r in rows_of(f["greedy"]) if not r.get("error")}
    rows["verify@8 (vote + --verify python)"] = {r["id"]: r for r in rows_of(f["verify"]) if not r.get("error")}
    base = rows["vote@8"]
    ids = [i for i in pool if i in base]
    if not ids:
        return [f"### {name}: no finished questions yet", ""]
    lines = [f"### {name} questions ({len(ids)} finished)", "",
             "| decision | questions | correct | accuracy (95 % CI) | tokens/question | calls/question "
             "| wins / losses vs vote@8 | settled by 2 samples |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, by_id in rows.items():
        common = [i for i in ids if i in by_id]
        if not common:
            continue
        correct = sum(bool(by_id[i]["correct"]) for i in common)
        lo, hi = wilson(correct, len(common))
        tokens = sum(by_id[i].get("total_tokens") or 0 for i in common) / len(common)
        calls = sum(by_id[i].get("calls") or 0 for i in common) / len(common)
        wins = sum(bool(by_id[i]["correct"]) and not base[i]["correct"] for i in common)
        losses = sum(base[i]["correct"] and not by_id[i]["correct"] for i in common)
        two = sum(1 for i in common if by_id[i].get("calls") == 2 and "agree" in (by_id[i].get("path") or []))
        lines.append(f"| {label} | {len(common)} | {correct} | {correct / len(common):.1%} ({lo:.0%}–{hi:.0%}) "
                     f"| {tokens:,.0f} | {calls:.1f} | {'–' if label == 'vote@8' else f'{wins} / {losses}'} "
                     f"| {two if two else '–'} |")
    def right(i: str, route: bool | None) -> bool:
        return any(_ok(h, pool[i]["gold"]) for h in pool[i]["hypotheses"]
                   if route is None or bool(h.get("route")) == route)

    chains, progs, either = (sum(right(i, r) for i in ids) for r in (False, True, None))
    lines += ["", f"Ceiling (pass@8): some chain right on {chains}/{len(ids)} ({chains / len(ids):.0%}); some "
              f"executed program on {progs}/{len(ids)}; some sample of either route on {either}/{len(ids)} "
              f"({either / len(ids):.0%}).", ""]
    return lines


def report() -> str:
    text = "\n".join(["# Verification by execution (local Qwen2.5-Coder-1.5B, GSM8K training questions, N = 8)", "",
                      "Written by `python bench/crosscheck.py --report`; see the script's docstring for the design.",
                      "", *report_set("heldout"), *report_set("tune")])
    (OUT / "crosscheck.md").write_text(text + "\n", encoding="utf-8")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="local")
    ap.add_argument("--base-url", default=os.environ.get("HEAVY_LOCAL_BASE_URL"))
    ap.add_argument("--concurrency", type=int, default=1, help="questions in flight (x16 samples each)")
    ap.add_argument("--set", choices=sorted(SETS), action="append", help="which question sets (default both)")
    ap.add_argument("--live", action="store_true", help="also the live rows: greedy and --verify python")
    ap.add_argument("--report", action="store_true", help="only rebuild crosscheck.md from the results files")
    args = ap.parse_args()
    if not args.report:
        for name in args.set or ["heldout", "tune"]:
            run(name, args)
    print(report())


if __name__ == "__main__":
    main()
