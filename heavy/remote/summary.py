"""A Result as a compact, JSON-able account of how its answer was decided (no hypothesis texts).

What every shell shows a remote caller beside the answer: the proxy's ``heavy`` response field, the MCP
tool's structured result, the llm plugin's response JSON.
"""

from __future__ import annotations

from typing import Any

from ..types import Result

__all__ = ["summary"]


def summary(r: Result) -> dict[str, Any]:
    """The ``heavy`` field of a response: how the answer was decided (no hypothesis texts)."""
    d = r.decision
    counts: dict[str, int] = {}
    for h in r.hypotheses:
        counts[h.status] = counts.get(h.status, 0) + 1
    return {
        "strategy": r.strategy, "method": d.method, "path": d.path, "answer": r.answer, "votes": d.votes,
        "no_answer": d.no_answer, "winner": d.winner, "rationale": d.rationale,
        "hypotheses": [{"index": h.index, "model": h.model, "status": h.status, "answer": h.answer,
                        "latency_s": round(h.latency_s, 3), "error_type": h.error_type,
                        "tool_steps": len(h.steps or []),
                        **({"tool_calls": [c.name for c in h.tool_calls]} if h.tool_calls else {})}
                       for h in r.hypotheses],
        "counts": counts, "aggregator_calls": len(r.aggregator_calls), "stopped_early": r.stopped_early,
        "deadline_hit": r.deadline_hit, "budget_hit": r.budget_hit, "cost_usd": r.cost_usd,
        "timings": r.timings.model_dump(),
        **({"tool_vote": d.details["tool_vote"]} if "tool_vote" in d.details else {}),
        "notes": r.notes,
    }
