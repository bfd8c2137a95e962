"""Scoring and the summary of ``heavy eval``: is an answer the gold one, and how did each (strategy, N) do.

An answer is scored with the vote's own notion of "the same answer" (:func:`heavy.equivalence.match`), so
``heavy eval`` never calls wrong what the vote merged as one: ``"The Eiffel Tower"`` is gold
``"eiffel tower"``, ``"(x+1)^2"`` is gold ``"x^2+2x+1"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..answers import normalize_answer, parse_number
from ..equivalence import match
from ..errors import redact

__all__ = ["is_correct", "wilson", "SummaryRow", "summarize", "error_summary"]


def is_correct(answer: str | None, gold: str) -> bool:
    """Whether *answer* is the *gold* answer: both normalized (:func:`heavy.answers.normalize_answer`), two
    numbers equal within 1e-6 relative tolerance (a gold ``0.333333`` is ``1/3``), anything else equivalent
    as the vote decides it (:func:`heavy.equivalence.match`: text by its folded key, expressions by value)."""
    if answer is None:
        return False
    a, g = normalize_answer(answer), normalize_answer(gold)
    if a == g:
        return True
    x, y = parse_number(a), parse_number(g)
    if x is not None and y is not None:
        return abs(float(x) - float(y)) <= 1e-6 * max(1.0, abs(float(y)))
    return bool(a and g) and match(a, g) is not None


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n (sane at 0 and n, unlike the normal approximation)."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class SummaryRow:
    """One (strategy, N) of a results file: accuracy and what it cost per question."""

    strategy: str
    n: int
    total: int
    correct: int
    errors: int
    tokens_per_question: float
    calls_per_question: float
    cost_usd: float | None
    wall_s: float
    #: What prompt caching and native n saved against separate uncached requests (rows written before heavy
    #: recorded it count 0); None when a price is unknown.
    saved_usd: float | None = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.total)

    def as_dict(self) -> dict[str, Any]:
        """The fields plus ``accuracy`` and ``ci95`` (what ``heavy eval --json`` prints)."""
        return {**asdict(self), "accuracy": self.accuracy, "ci95": self.interval}


def _latest(rows: Sequence[dict[str, Any]], ids: set[str] | None) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The last row of each (question, strategy, n), over only *ids* when given."""
    return {(r["id"], r["strategy"], r["n"]): r for r in rows if "id" in r and (ids is None or r["id"] in ids)}


def summarize(rows: Sequence[dict[str, Any]], ids: set[str] | None = None) -> list[SummaryRow]:
    """One SummaryRow per (strategy, n) over the last line of each question (optionally only *ids*)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for (_, strategy, n), r in _latest(rows, ids).items():
        groups.setdefault((strategy, n), []).append(r)
    out = []
    for (strategy, n), rs in sorted(groups.items()):
        k = len(rs)
        out.append(SummaryRow(
            strategy=strategy, n=n, total=k, correct=sum(bool(r.get("correct")) for r in rs),
            errors=sum(bool(r.get("error")) for r in rs),
            tokens_per_question=sum(r.get("total_tokens", 0) for r in rs) / k,
            calls_per_question=sum(r.get("calls", 0) for r in rs) / k,
            cost_usd=None if any(r.get("cost_usd") is None for r in rs) else sum(r["cost_usd"] for r in rs),
            wall_s=sum(r.get("wall_s", 0.0) for r in rs),
            saved_usd=None if any("saved_usd" in r and r["saved_usd"] is None for r in rs)
            else sum(r.get("saved_usd") or 0.0 for r in rs),
        ))
    return out


def error_summary(rows: Sequence[dict[str, Any]], ids: set[str] | None = None) -> tuple[int, int, str]:
    """``(errors, total, first)`` over the last row of each question: how many are errors, of how many, and
    the first error's first line (secrets redacted, at most 160 characters) to show as an example."""
    latest = _latest(rows, ids).values()
    errors = sum(bool(r.get("error")) for r in latest)
    first = next((str(r["error"]) for r in latest if r.get("error")), "")
    first = first.strip().splitlines()[0] if first.strip() else "unknown error"
    return errors, len(latest), redact(first if len(first) <= 160 else first[:159] + "…")
