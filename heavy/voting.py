"""Counting extracted answers: the majority vote every strategy can fall back on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .types import Hypothesis

__all__ = ["Tally", "tally"]


@dataclass(frozen=True)
class Tally:
    """Answer counts over successful hypotheses.

    ``ranking`` is most-voted first; ties are broken deterministically by the lowest hypothesis index
    that gave the answer (so the same hypotheses always give the same winner, whatever order they
    finished in).
    """

    counts: dict[str, int]
    ranking: list[str]
    first_index: dict[str, int]
    no_answer: int
    total: int

    @property
    def winner(self) -> str | None:
        return self.ranking[0] if self.ranking else None

    @property
    def top_count(self) -> int:
        return self.counts[self.ranking[0]] if self.ranking else 0

    @property
    def share(self) -> float:
        """The winner's share of the hypotheses that gave an answer."""
        answered = self.total - self.no_answer
        return self.top_count / answered if answered else 0.0

    @property
    def tied(self) -> bool:
        return len(self.ranking) > 1 and self.counts[self.ranking[0]] == self.counts[self.ranking[1]]

    @property
    def margin(self) -> int:
        """Votes between the winner and the runner-up."""
        if not self.ranking:
            return 0
        second = self.counts[self.ranking[1]] if len(self.ranking) > 1 else 0
        return self.top_count - second


def tally(hypotheses: Sequence[Hypothesis], weights: dict[int, float] | None = None) -> Tally:
    """Count the answers of the successful *hypotheses* (weights by index, default 1)."""
    ok = [h for h in hypotheses if h.ok]
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    no_answer = 0
    for h in sorted(ok, key=lambda h: h.index):
        if h.answer is None:
            no_answer += 1
            continue
        counts[h.answer] += 1 if weights is None else weights.get(h.index, 1.0)  # type: ignore[assignment]
        first.setdefault(h.answer, h.index)
    ranking = sorted(counts, key=lambda a: (-counts[a], first[a]))
    return Tally(dict(counts), ranking, first, no_answer, len(ok))
