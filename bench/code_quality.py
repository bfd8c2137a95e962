"""Code-task quality: does verification by execution beat a single sample and the vote? Does the python
tool help on GSM8K-style questions?

Against one model (default: the local model, `heavy local start`; any heavy model spec works):

1. **Code tasks** (bench/code_tasks.jsonl: a function to write, its tests as asserts): N samples per task
   are recorded once (a pool), every sample is graded by running the task's tests in the sandbox, and
   three ways of choosing one of the N are replayed on that same pool:
   - ``pass@1``: the chance that a single sample passes (unbiased: passing samples / N, averaged);
   - ``vote``: the majority over the samples' code (normalized text);
   - ``execute-given``: the ``execute`` strategy with the task's tests;
   - ``execute-codet``: ``execute`` without them: the model writes tests (CodeT, dual agreement);
   - ``pass@N``: whether any sample passes (the ceiling of any selection).
2. **GSM8K questions** (tests/data/gsm8k-train-300.jsonl) answered once without tools and once with the
   python tool (``--tool-protocol``, default auto: the text protocol for local servers).

Everything is appended to JSONL files under bench/results/ (``--out``) and skipped when already there, so a
killed run resumes where it stopped; the summary goes to ``code_quality.md`` there. Run it in the
background on the real model:

    nohup python bench/code_quality.py > bench/results/code_quality.log 2>&1 &

(``--model sim`` with ``HEAVY_SIM_DATASET=bench/code_tasks.jsonl`` runs it on the simulator in seconds.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from heavy import Heavy  # noqa: E402
from heavy.answers import extract_code  # noqa: E402
from heavy.evaluation import Pool, ResultsFile, is_correct, load_items, wilson  # noqa: E402
from heavy.tools.agent import python_blocks  # noqa: E402
from heavy.tools.codecheck import passes  # noqa: E402
from heavy.types import Hypothesis  # noqa: E402

TASKS = ROOT / "bench" / "code_tasks.jsonl"
GSM8K = ROOT / "tests" / "data" / "gsm8k-train-300.jsonl"
OUT = ROOT / "bench" / "results"
CODE_SYSTEM = "You are an expert Python programmer. Reply with the complete function in one ```python block."
MATH_SYSTEM = "Solve the math word problem step by step. End with a final line of the form 'The answer is N.'"
METHODS = ("vote", "execute-given", "execute-codet")


def code_of(text: str) -> str | None:
    blocks = python_blocks(text)
    return blocks[-1] if blocks else extract_code(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="local", help="heavy model spec [default: local]")
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--n", type=int, default=8, help="samples per code task [default: 8]")
    ap.add_argument("--tasks", default=str(TASKS))
    ap.add_argument("--task-limit", type=int, default=None)
    ap.add_argument("--gsm8k", default=str(GSM8K))
    ap.add_argument("--gsm8k-questions", type=int, default=30)
    ap.add_argument("--only", choices=["all", "code", "gsm8k"], default="all")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--concurrency", type=int, default=2, help="tasks/questions in flight")
    ap.add_argument("--temperature", type=float, default=0.7, help="of the code samples")
    ap.add_argument("--gsm8k-temperature", type=float, default=0.0)
    ap.add_argument("--max-tokens", type=int, default=768)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per hypothesis (agent loop included)")
    ap.add_argument("--tool-protocol", choices=["native", "text", "auto"], default="auto")
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    return ap.parse_args(argv)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def gather_limited(limit: int, jobs: list[Any]) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(job: Any) -> None:
        async with sem:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


# --- code tasks ------------------------------------------------------------------------------------


async def code_tasks(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    items = load_items(args.tasks, limit=args.task_limit)
    h = Heavy(model=args.model, base_url=args.base_url, n=args.n, strategy="vote", system=CODE_SYSTEM,
              temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed, timeout=args.timeout)
    pool = Pool(out / f"code-pool-{args.n}.jsonl")
    graded = ResultsFile(out / f"code-samples-{args.n}.jsonl")
    chosen = ResultsFile(out / f"code-selection-{args.n}.jsonl")
    sample_done = {(r["id"], r["index"]) for r in graded.rows}
    choice_done = {(r["id"], r["method"]) for r in chosen.rows}

    async def task(item: Any) -> None:
        hyps = pool.hypotheses(item.id)
        if hyps is None or len(hyps) < args.n:
            log(f"code {item.id}: sampling {args.n}")
            hyps = await h.sample(item.prompt, n=args.n)
            pool.append({"id": item.id, "question": item.question, "model": args.model,
                         "hypotheses": [x.model_dump(exclude_none=True) for x in hyps]})
        for x in hyps:
            if (item.id, x.index) not in sample_done:
                ok = x.ok and await passes(code_of(x.text), item.tests or "")
                graded.append({"id": item.id, "index": x.index, "passed": ok, "status": x.status,
                               "tokens": x.usage.total_tokens})
        for method in METHODS:
            if (item.id, method) not in choice_done:
                chosen.append(await select(h, item, hyps, method))

    await gather_limited(args.concurrency, [task(i) for i in items])
    await h.aclose()
    return summarize_code(items, graded.rows, chosen.rows, args.n)


async def select(h: Heavy, item: Any, hyps: list[Hypothesis], method: str) -> dict[str, Any]:
    strategy, options = ("vote", None) if method == "vote" else ("execute", {})
    if method == "execute-given":
        options = {"tests": item.tests, "entry_point": item.entry_point}
    if method == "execute-codet":
        options = {"entry_point": item.entry_point}
    started = time.monotonic()
    try:
        r = await h.ask(item.prompt, strategy=strategy, options=options, pool=hyps, live=False)
    except Exception as exc:  # one failed selection is a recorded miss, not a dead benchmark
        return {"id": item.id, "method": method, "correct": False, "error": f"{type(exc).__name__}: {exc}"}
    code = r.answer if r.decision.method == "execute" else code_of(r.text)
    ok = await passes(code, item.tests or "")
    log(f"code {item.id}: {method} -> {'pass' if ok else 'FAIL'}")
    return {"id": item.id, "method": method, "correct": ok, "winner": r.decision.winner,
            "path": r.decision.path, "extra_calls": len(r.aggregator_calls),
            "extra_tokens": sum(c.usage.total_tokens for c in r.aggregator_calls),
            "seconds": round(time.monotonic() - started, 2)}


def summarize_code(items: list[Any], graded: list[dict], chosen: list[dict], n: int) -> dict[str, Any]:
    ids = {i.id for i in items}
    by_task: dict[str, list[bool]] = {}
    for r in graded:
        if r["id"] in ids:
            by_task.setdefault(r["id"], []).append(bool(r["passed"]))
    tasks = len(by_task)
    out: dict[str, Any] = {"tasks": tasks, "n": n}
    if not tasks:
        return out
    out["pass@1"] = sum(sum(v) / len(v) for v in by_task.values()) / tasks
    out[f"pass@{n}"] = sum(any(v) for v in by_task.values()) / tasks
    for method in METHODS:
        rows = {r["id"]: r for r in chosen if r["method"] == method and r["id"] in ids}
        if rows:
            k = sum(bool(r["correct"]) for r in rows.values())
            out[method] = k / len(rows)
            out[f"{method}_counts"] = [k, len(rows)]
    return out


# --- GSM8K with and without the python tool --------------------------------------------------------


async def gsm8k(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    path = Path(args.gsm8k)
    if not path.exists():
        log(f"gsm8k: {path} not found, skipped")
        return {}
    items = load_items(path, limit=args.gsm8k_questions)
    common = dict(model=args.model, base_url=args.base_url, n=1, strategy="vote", system=MATH_SYSTEM,
                  temperature=args.gsm8k_temperature, max_tokens=args.max_tokens, seed=args.seed, timeout=args.timeout)
    configs = {"no-tools": Heavy(**common),
               "python-tool": Heavy(**common, tools=["python"], tool_protocol=args.tool_protocol,
                                    max_steps=args.max_steps)}
    results = ResultsFile(out / "gsm8k-tools.jsonl")
    done = {(r["id"], r["config"]) for r in results.rows}

    async def question(item: Any, name: str, h: Heavy) -> None:
        started = time.monotonic()
        try:
            r = await h.ask(item.prompt)
            x = r.hypotheses[0]
            row = {"answer": r.answer, "correct": is_correct(r.answer, item.gold), "steps": len(x.steps or []),
                   "tool_ok": [s.ok for s in x.steps or []], "tokens": r.usage.total_tokens}
        except Exception as exc:
            row = {"answer": None, "correct": False, "error": f"{type(exc).__name__}: {exc}"}
        results.append({"id": item.id, "config": name, "gold": item.gold, **row,
                        "seconds": round(time.monotonic() - started, 2)})
        log(f"gsm8k {item.id} {name}: {row.get('answer')!r} ({'right' if row['correct'] else 'wrong'})")

    jobs = [question(i, name, h) for i in items for name, h in configs.items() if (i.id, name) not in done]
    await gather_limited(args.concurrency, jobs)
    for h in configs.values():
        await h.aclose()
    summary: dict[str, Any] = {}
    ids = {i.id for i in items}
    for name in configs:
        rows = [r for r in results.rows if r["config"] == name and r["id"] in ids]
        if rows:
            k = sum(bool(r["correct"]) for r in rows)
            summary[name] = {"accuracy": k / len(rows), "correct": k, "total": len(rows),
                             "tool_runs_per_question": sum(r.get("steps", 0) for r in rows) / len(rows),
                             "tokens_per_question": sum(r.get("tokens", 0) for r in rows) / len(rows)}
    return summary


# --- report ----------------------------------------------------------------------------------------


def report(args: argparse.Namespace, code: dict[str, Any], math: dict[str, Any]) -> str:
    lines = [f"# Code-task quality, model `{args.model}`", ""]
    if code.get("tasks"):
        n = code["n"]
        lines += [f"{code['tasks']} tasks from {Path(args.tasks).name}, N={n} samples each at temperature "
                  f"{args.temperature}; every selection replayed on the same samples.", "",
                  "| selection | tasks passing all tests | 95% CI |", "|---|---:|---:|"]
        for key, label in [("pass@1", "single sample (pass@1, expected)"), ("vote", f"vote over {n}"),
                           ("execute-given", f"execute, given tests, over {n}"),
                           ("execute-codet", f"execute, model-written tests (CodeT), over {n}"),
                           (f"pass@{n}", f"any of {n} (pass@{n}, ceiling)")]:
            if key in code:
                k, total = code.get(f"{key}_counts", [round(code[key] * code["tasks"]), code["tasks"]])
                lo, hi = wilson(int(k), int(total))
                lines.append(f"| {label} | {code[key]:.1%} | {lo:.0%}–{hi:.0%} |")
        lines.append("")
    if math:
        lines += [f"GSM8K questions from {Path(args.gsm8k).name}, one answer each at temperature "
                  f"{args.gsm8k_temperature}; python tool protocol `{args.tool_protocol}`.", "",
                  "| configuration | accuracy | 95% CI | tool runs/question | tokens/question |",
                  "|---|---:|---:|---:|---:|"]
        for name, s in math.items():
            lo, hi = wilson(s["correct"], s["total"])
            lines.append(f"| {name} | {s['accuracy']:.1%} ({s['correct']}/{s['total']}) | {lo:.0%}–{hi:.0%} | "
                         f"{s['tool_runs_per_question']:.1f} | {s['tokens_per_question']:,.0f} |")
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    code = await code_tasks(args, out) if args.only in ("all", "code") else {}
    math = await gsm8k(args, out) if args.only in ("all", "gsm8k") else {}
    text = report(args, code, math)
    (out / "code_quality.md").write_text(text, encoding="utf-8")
    print(text, flush=True)
    return {"code": code, "gsm8k": math}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.model == "local" and not args.base_url and os.environ.get("HEAVY_LOCAL_BASE_URL"):
        args.base_url = os.environ["HEAVY_LOCAL_BASE_URL"]
    return asyncio.run(run(args))


if __name__ == "__main__":
    summary = main()
    print(json.dumps(summary), flush=True)
