"""The table, the frontier and the recommendation of ``heavy tune`` (its runs are :mod:`.tune`).

Every configuration gets one row per half: accuracy with its 95 % Wilson interval, tokens, calls and seconds per
question (seconds: the waves of its samples as their recorded latencies say, each wave as long as its slowest
sample, plus the decision's own time), wins and losses against vote at the same N on the same questions, and
whether it is on the cost/accuracy frontier of its half (no other configuration is as accurate for fewer tokens).

**How the recommendation is chosen**: among the configurations ``heavy ask`` can run that were decided on every
question and fit the budget (``--max-tokens-per-question``, ``--max-calls-per-question``, measured on the tune
half), the one with the highest **tune-half** accuracy; ties go to fewer tokens, then fewer calls. It is reported
with its **check-half** figures, which played no part in the choice: picking by the check half would be tuning
on it, and its figure would flatter the pick as the tune half's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .scoring import wilson
from .tune import PASS_AT_1, TunePlan

__all__ = ["summarize", "recommend", "command", "frontier_svg", "config_values", "table_rows", "TABLE_COLUMNS",
           "HALVES"]

HALVES = ("tune", "check")


def _latest(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(r["id"], r["config"], r["n"]): r for r in rows}


def summarize(the_plan: TunePlan, halves: dict[str, str], rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (configuration of *the_plan*, half) of the decisions *rows*; the JSON rows of ``heavy tune``."""
    latest = _latest(rows)
    out: list[dict[str, Any]] = []
    for half in HALVES:
        ids = sorted(i for i, h in halves.items() if h == half)
        vote_of = {c.n: c for c in the_plan.configs if c.label == "vote"}
        for config in the_plan.configs:
            mine = [latest[k] for i in ids if (k := (i, config.label, config.n)) in latest]
            if not mine:
                continue
            k = len(mine)
            right = sum(r["pass_rate"] if config.strategy == PASS_AT_1 else bool(r["correct"]) for r in mine)
            lo, hi = wilson(right, k)  # type: ignore[arg-type]
            wins = losses = None
            base = vote_of.get(config.n)
            if base is not None and config.runnable and config != base:
                pairs = [(r, latest.get((r["id"], base.label, base.n))) for r in mine]
                wins = sum(1 for r, b in pairs if b is not None and r["correct"] and not b["correct"])
                losses = sum(1 for r, b in pairs if b is not None and b["correct"] and not r["correct"])
            costs = [r.get("cost_usd") for r in mine]
            out.append({
                **config.as_dict(), "half": half, "questions": k, "of": len(ids), "correct": right,
                "accuracy": right / k, "ci_low": lo, "ci_high": hi,
                "tokens": sum(r.get("total_tokens") or 0 for r in mine) / k,
                "calls": sum(r.get("calls") or 0 for r in mine) / k,
                "live_calls": sum(r.get("live_calls") or 0 for r in mine) / k,
                "seconds": sum(r.get("wall_s") or 0.0 for r in mine) / k,
                "cost_usd": None if any(c is None for c in costs) else sum(costs) / k,  # type: ignore[arg-type]
                "errors": sum(1 for r in mine if r.get("error")), "wins": wins, "losses": losses,
                "frontier": False,
            })
    for half in HALVES:
        _mark_frontier([r for r in out if r["half"] == half])
    return out


def _mark_frontier(rows: list[dict[str, Any]]) -> None:
    """Mark the rows no other row beats: at most as many tokens and at least as accurate, one of them strictly."""
    for r in rows:
        r["frontier"] = not any(
            o is not r and o["tokens"] <= r["tokens"] and o["accuracy"] >= r["accuracy"]
            and (o["tokens"] < r["tokens"] or o["accuracy"] > r["accuracy"]) for o in rows)


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["label"], row["n"])


def recommend(rows: Sequence[dict[str, Any]], *, max_tokens: float | None = None,
              max_calls: float | None = None) -> tuple[dict[str, Any] | None, str]:
    """The recommendation (see the module docstring) and how it was chosen, or ``None`` and why there is none."""
    tune = {_key(r): r for r in rows if r["half"] == "tune"}
    check = {_key(r): r for r in rows if r["half"] == "check"}
    budget = [f"at most {max_tokens:,.0f} tokens" if max_tokens is not None else "",
              f"at most {max_calls:g} calls" if max_calls is not None else ""]
    within = " and ".join(b for b in budget if b)
    candidates = [r for key, r in tune.items() if r["strategy"] != PASS_AT_1 and key in check
                  and r["questions"] == r["of"] and check[key]["questions"] == check[key]["of"]
                  and (max_tokens is None or r["tokens"] <= max_tokens)
                  and (max_calls is None or r["calls"] <= max_calls)]
    if not candidates:
        why = f"no configuration fits the budget ({within} per question on the tune half)" if within else \
            "no configuration was decided on every question"
        return None, why
    best = min(candidates, key=lambda r: (-r["accuracy"], r["tokens"], r["calls"], r["label"], r["n"]))
    chosen = check[_key(best)]
    how = ("the highest tune-half accuracy among the configurations heavy ask can run"
           + (f" within the budget ({within} per question, measured on the tune half)" if within else "")
           + "; ties go to fewer tokens, then fewer calls. The check half, which played no part in the choice, "
           "gives the figures it is reported with.")
    figures = ("accuracy", "ci_low", "ci_high", "questions", "correct", "tokens", "calls", "seconds", "cost_usd")
    base = max((r for r in rows if r["half"] == "check" and r["label"] == "vote"), key=lambda r: r["n"], default=None)
    rec = {
        **{k: best[k] for k in ("strategy", "n", "options", "verify", "tools", "label")},
        "tune": {k: best[k] for k in figures},
        "check": {**{k: chosen[k] for k in figures}, "wins": chosen["wins"], "losses": chosen["losses"]},
        "baseline": None if base is None else {"label": "vote", "n": base["n"], "accuracy": base["accuracy"],
                                                "tokens": base["tokens"]},
        "budget": {"max_tokens_per_question": max_tokens, "max_calls_per_question": max_calls},
        "chosen_by": how,
    }
    return rec, how


def command(rec: dict[str, Any], model: Sequence[str]) -> str:
    """The ``heavy ask`` command line that runs the recommended configuration."""
    parts = ["heavy ask", *(f"-m {m}" for m in model), f"-s {rec['strategy']}", f"-n {rec['n']}"]
    if rec["tools"]:
        parts.append("--tools python")
    if rec["verify"]:
        parts.append("--verify python")
    parts += [f"-o {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in rec["options"].items()]
    return " ".join(parts) + ' "QUESTION"'


def config_values(rec: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """What ``--write-config`` sets in ``[defaults]`` for *rec*, and the keys it removes: the run options the
    measured configuration decided with (strategy, n, its options, the python tool, ``--verify``)."""
    values: dict[str, Any] = {"strategy": rec["strategy"], "n": rec["n"]}
    remove: set[str] = set()
    for key, value in (("options", rec["options"] or None), ("tools", ["python"] if rec["tools"] else None),
                       ("verify", "python" if rec["verify"] else None)):
        if value is None:
            remove.add(key)  # measured without it: a value left from before would change what runs
        else:
            values[key] = value
    return values, remove


def frontier_svg(rows: Sequence[dict[str, Any]], rec: dict[str, Any] | None) -> str:
    """Accuracy vs tokens per question, the tune half beside the check half: each strategy's configurations as
    points, the frontier as a line, the recommendation marked."""
    from .plot import line_chart, side_by_side

    charts = []
    for half in HALVES:
        series: dict[str, list[tuple[float, float]]] = {}
        mine = [r for r in rows if r["half"] == half]
        for r in mine:
            series.setdefault(r["strategy"], []).append((r["tokens"], r["accuracy"]))
        series["frontier"] = [(r["tokens"], r["accuracy"]) for r in mine if r["frontier"]]
        if rec is not None:
            series[f"chosen: {rec['strategy']} N={rec['n']}"] = [
                (r["tokens"], r["accuracy"]) for r in mine if (r["label"], r["n"]) == (rec["label"], rec["n"])]
        charts.append(line_chart(series, title=f"{half} half: accuracy vs tokens", xlabel="tokens per question",
                                 ylabel="accuracy", connect={"frontier"}))
    return side_by_side(*charts)


def table_rows(rows: Sequence[dict[str, Any]], rec: dict[str, Any] | None) -> list[list[str]]:
    """The printed table: one line per configuration, its tune-half accuracy beside its check-half figures."""
    tune = {_key(r): r for r in rows if r["half"] == "tune"}
    lines = []
    order = {PASS_AT_1: 0, "vote": 1}  # the baselines first, then the strategies by name
    checked = sorted((r for r in rows if r["half"] == "check"),
                     key=lambda r: (order.get(r["strategy"], 2), r["strategy"], r["label"], r["n"]))
    for r in checked:
        t = tune.get(_key(r))
        opts = " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in r["options"].items())
        opts = " ".join(x for x in (opts, "+verify" if r["verify"] else "") if x)
        chosen = rec is not None and (r["label"], r["n"]) == (rec["label"], rec["n"])
        marks = [h for h, x in (("tune", t), ("check", r)) if x is not None and x["frontier"]]
        lines.append([
            ("→ " if chosen else "") + r["strategy"], str(r["n"]), opts or "–",
            f"{t['accuracy']:.1%}" if t else "–",
            f"{r['accuracy']:.1%} ({r['ci_low']:.0%}–{r['ci_high']:.0%})",
            f"{r['tokens']:,.0f}", f"{r['calls']:.1f}", f"{r['seconds']:.1f}",
            "–" if r["wins"] is None else f"{r['wins']} / {r['losses']}",
            "both" if len(marks) == 2 else marks[0] if marks else "",
        ])
    return lines


TABLE_COLUMNS = [("strategy", "left"), ("N", "right"), ("options", "left"), ("tune acc", "right"),
                 ("check acc (95% CI)", "right"), ("tokens/q", "right"), ("calls/q", "right"), ("s/q", "right"),
                 ("W/L vs vote@N", "right"), ("frontier", "left")]
