"""Code-task quality: does verification by execution beat a single sample and the vote? Does the python
tool help on GSM8K-style questions?

Against one model (default: the local model, `heavy local start`; any heavy model spec works):

1. **Code tasks** (bench/code_tasks.jsonl: a function to write, its hidden grading tests ``tests`` and a
   disjoint ``visible_tests``, the one or two examples a user would have): N samples per task are recorded
   once (a pool), every sample is graded by running the task's ``tests`` in the sandbox, and ways of
   choosing one of the N are replayed on that same pool, every choice graded by ``tests``:
   - ``pass@1``: the chance that a single sample passes (unbiased: passing samples / N, averaged);
   - ``vote``: the majority over the samples' code (normalized text);
   - ``execute-visible``: ``execute`` with what ``heavy eval`` gives it (the visible tests, else the
     question's examples), never the grading tests: HumanEval-style hidden tests;
   - ``execute-visible-noprobes``: the same without probe inputs (``-o probes=0``), to show what they add;
   - ``execute-codet``: ``execute`` with no tests and no examples: the model writes tests (CodeT);
   - ``execute-given``: ``execute`` *given the grading tests* (a user who has the tests; not a measure of
     hidden-test accuracy, kept for contrast);
   - ``pass@N``: whether any sample passes (the ceiling of any selection).

   **Rotation** (``code-rotation-N.jsonl``), so the result does not hang on which examples were made
   visible: each of a task's grading asserts in turn is the only test the selection may run, and the
   task's *other* asserts grade (pass@1, pass@N, vote and execute graded the same way); the score of a
   task is the mean over its asserts, and tasks weigh equally.
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
from heavy.evaluation import Pool, ResultsFile, is_correct, load_items, selection_tests, wilson  # noqa: E402
from heavy.tools.agent import python_blocks  # noqa: E402
from heavy.tools.codecheck import passes, run_tests, split_tests  # noqa: E402
from heavy.types import Hypothesis  # noqa: E402

TASKS = ROOT / "bench" / "code_tasks.jsonl"
GSM8K = ROOT / "tests" / "data" / "gsm8k-train-300.jsonl"
OUT = ROOT / "bench" / "results"
CODE_SYSTEM = "You are an expert Python programmer. Reply with the complete function in one ```python block."
MATH_SYSTEM = "Solve the math word problem step by step. End with a final line of the form 'The answer is N.'"
METHODS = ("vote", "execute-given", "execute-visible", "execute-visible-noprobes", "execute-codet")
ROTATION = ("pass@1", "pass@N", "vote", "execute-visible", "execute-visible-noprobes")


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
    summary = summarize_code(items, graded.rows, chosen.rows, args.n)
    summary["rotation"] = await rotation(h, items, pool, out / f"code-rotation-{args.n}.jsonl")
    await h.aclose()
    return summary


async def rotation(h: Heavy, items: list[Any], pool: Pool, path: Path) -> dict[str, Any]:
    """Each grading assert in turn the only visible test, the task's other asserts grading (see the module
    docstring); replayed on the recorded pool, no sampling. Per method: the mean over tasks of the mean
    over their asserts."""
    rows = ResultsFile(path)
    done = {(r["id"], r["visible"], r["method"]) for r in rows.rows}
    for item in items:
        hyps = pool.hypotheses(item.id)
        setup, tests = split_tests(item.tests or "")
        if not hyps or len(tests) < 2:
            continue
        codes = [code_of(x.text) if x.ok else None for x in hyps]
        grid: dict[str, list[bool]] = {}

        async def grade(code: str | None, hidden: list[int]) -> bool:
            if not code:
                return False
            if code not in grid:  # every assert once per distinct program
                grid[code] = (await run_tests(code, tests, setup)).passed
            return all(grid[code][k] for k in hidden)

        for j, visible in enumerate(tests):
            hidden = [k for k in range(len(tests)) if k != j]
            for method in ROTATION:
                if (item.id, j, method) in done:
                    continue
                if method in ("pass@1", "pass@N"):
                    ok = [await grade(c, hidden) for c in codes]
                    score = sum(ok) / len(ok) if method == "pass@1" else float(any(ok))
                else:
                    strategy, options = ("vote", None) if method == "vote" else \
                        ("execute", {"tests": "\n".join([setup, visible]), "entry_point": item.entry_point,
                                     **({"probes": 0} if method.endswith("noprobes") else {})})
                    r = await h.ask(item.prompt, strategy=strategy, options=options, pool=hyps, live=False)
                    score = float(await grade(r.answer if r.decision.method == "execute" else code_of(r.text),
                                              hidden))
                rows.append({"id": item.id, "visible": j, "visible_test": visible, "method": method, "score": score})
            log(f"rotation {item.id}: assert {j + 1}/{len(tests)} visible")
    ids = {i.id for i in items}
    per_task: dict[str, dict[str, list[float]]] = {}
    for r in rows.rows:
        if r["id"] in ids:
            per_task.setdefault(r["method"], {}).setdefault(r["id"], []).append(r["score"])
    return {m: {"score": sum(sum(v) / len(v) for v in t.values()) / len(t), "tasks": len(t),
                "splits": sum(len(v) for v in t.values())} for m, t in per_task.items()}


async def select(h: Heavy, item: Any, hyps: list[Hypothesis], method: str) -> dict[str, Any]:
    """One selection over the task's pool, graded by the task's ``tests``."""
    strategy, options = ("vote", None) if method == "vote" else ("execute", {})
    if method == "execute-given":  # the grading tests themselves: the easy case, for contrast
        options = {"tests": item.tests, "entry_point": item.entry_point}
    if method.startswith("execute-visible"):  # what heavy eval gives execute: never the grading tests
        options = {"tests": selection_tests(item), "entry_point": item.entry_point}
        if method == "execute-visible-noprobes":
            options["probes"] = 0
    if method == "execute-codet":
        options = {"entry_point": item.entry_point, "examples": False}
    started = time.monotonic()
    try:
        r = await h.ask(item.prompt, strategy=strategy, options=options, pool=hyps, live=False)
    except Exception as exc:  # one failed selection is a recorded miss, not a dead benchmark
        return {"id": item.id, "method": method, "correct": False, "error": f"{type(exc).__name__}: {exc}"}
    code = r.answer if r.decision.method == "execute" else code_of(r.text)
    ok = await passes(code, item.tests or "")
    log(f"code {item.id}: {method} -> {'pass' if ok else 'FAIL'}")
    return {"id": item.id, "method": method, "correct": ok, "winner": r.decision.winner,
            "path": r.decision.path, "probes": len(r.decision.details.get("probes", [])),
            "extra_calls": len(r.aggregator_calls),
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
                  f"{args.temperature}; every selection replayed on the same samples and graded by the "
                  "task's hidden `tests`; `visible_tests` (disjoint from them) are all a selection may run, "
                  "except in the last execute row.", "",
                  "| selection | tasks passing all (hidden) tests | 95% CI |", "|---|---:|---:|"]
        for key, label in [("pass@1", "single sample (pass@1, expected)"), ("vote", f"vote over {n}"),
                           ("execute-visible", f"execute, visible tests + probes, over {n}"),
                           ("execute-visible-noprobes", f"execute, visible tests, no probes, over {n}"),
                           ("execute-codet", f"execute, model-written tests (CodeT), over {n}"),
                           (f"pass@{n}", f"any of {n} (pass@{n}, ceiling)"),
                           ("execute-given", f"execute, given tests = grading tests (not hidden), over {n}")]:
            if key in code:
                k, total = code.get(f"{key}_counts", [round(code[key] * code["tasks"]), code["tasks"]])
                lo, hi = wilson(int(k), int(total))
                lines.append(f"| {label} | {code[key]:.1%} | {lo:.0%}–{hi:.0%} |")
        lines.append("")
        rot = code.get("rotation") or {}
        if rot:
            first = next(iter(rot.values()))
            lines += [f"Rotation ({first['tasks']} tasks, {first['splits']} splits): each grading assert in turn is "
                      "the only visible test and the task's other asserts grade; mean over tasks of the share "
                      "of splits passing.", "", "| selection | passing the other asserts |", "|---|---:|"]
            for key, label in [("pass@1", "single sample (pass@1, expected)"), ("vote", f"vote over {n}"),
                               ("execute-visible", f"execute, one visible assert + probes, over {n}"),
                               ("execute-visible-noprobes", f"execute, one visible assert, no probes, over {n}"),
                               ("pass@N", f"any of {n} (pass@{n}, ceiling)")]:
                if key in rot:
                    lines.append(f"| {label} | {rot[key]['score']:.1%} |")
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
