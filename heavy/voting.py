"""Counting extracted answers: the majority vote every strategy can fall back on.

Answers that are written differently but mean the same (``0.5`` and ``\\frac{1}{2}``, ``(x+1)^2`` and
``x^2+2x+1``, ``The Eiffel Tower`` and ``eiffel tower``) are merged before counting
(:func:`heavy.equivalence.cluster`); the Tally records which forms were merged and by which path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from .answers import is_code_answer, parse_number
from .equivalence import cluster, match, math_backend
from .types import Hypothesis

__all__ = ["Tally", "tally"]


@dataclass(frozen=True)
class Tally:
    """Answer counts over successful hypotheses.

    ``ranking`` is most-voted first; ties are broken deterministically by the lowest hypothesis index
    that gave the answer (so the same hypotheses always give the same winner, whatever order they
    finished in). ``merged`` maps an answer to the other, equivalent forms counted with it;
    ``equivalence`` names the paths that merged them (``"numeric"``, ``"math-verify"``, ``"text"``).
    """

    counts: dict[str, int]
    ranking: list[str]
    first_index: dict[str, int]
    no_answer: int
    total: int
    merged: dict[str, list[str]] = field(default_factory=dict)
    equivalence: tuple[str, ...] = ()

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

    def canonical(self, answer: str | None) -> str | None:
        """The counted form of *answer* (itself, or the equivalent form it was merged into); ``None`` if
        no hypothesis gave an equivalent answer."""
        if answer is None:
            return None
        if answer in self.counts:
            return answer
        for form, others in self.merged.items():
            if answer in others:
                return form
        for form in self.ranking:
            if match(form, answer) is not None:
                return form
        return None

    def count_of(self, answer: str | None) -> float:
        """Votes of *answer* or of any answer equivalent to it."""
        form = self.canonical(answer)
        return self.counts[form] if form is not None else 0

    def describe_merges(self) -> dict[str, object] | None:
        """What the decision reports about merged forms (``None`` when nothing was merged)."""
        if not self.merged:
            return None
        return {"merged": {k: list(v) for k, v in self.merged.items()}, "by": list(self.equivalence),
                "math_backend": math_backend() if "math-verify" in self.equivalence or "numeric" in self.equivalence
                else None}


def _numeric_question(hypotheses: Sequence[Hypothesis]) -> bool:
    """Do the answers say the question wants a number (at least as many numbers as programs)? Then a
    reply that answered with a program (that nobody ran) states no answer: its code text is no vote."""
    code = sum(1 for h in hypotheses if is_code_answer(h.answer))
    numbers = sum(1 for h in hypotheses if h.answer is not None and not is_code_answer(h.answer)
                  and parse_number(h.answer) is not None)
    return code > 0 and numbers >= code


def tally(hypotheses: Sequence[Hypothesis], weights: dict[int, float] | None = None, *,
          merge: bool = True) -> Tally:
    """Count the answers of the successful *hypotheses* (weights by index, default 1).

    On a numeric question (:func:`_numeric_question`) an answer that is a program counts as no answer.
    Without explicit *weights*, a hypothesis whose ``weight`` a check lowered (``--verify python``) counts
    for that weight. With *merge* (the default), equivalent answers are counted as one, under their
    most-voted form.
    """
    ok = [h for h in hypotheses if h.ok]
    code_is_no_answer = _numeric_question(ok)
    if weights is None and any(h.weight is not None for h in ok):
        weights = {h.index: h.weight for h in ok if h.weight is not None}
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    no_answer = 0
    for h in sorted(ok, key=lambda h: h.index):
        if h.answer is None or (code_is_no_answer and is_code_answer(h.answer)):
            no_answer += 1
            continue
        counts[h.answer] += 1 if weights is None else weights.get(h.index, 1.0)  # type: ignore[assignment]
        first.setdefault(h.answer, h.index)
    merged: dict[str, list[str]] = {}
    paths: list[str] = []
    if merge and len(counts) > 1:
        order = sorted(counts, key=lambda a: (-counts[a], first[a]))
        for group in cluster(order):
            if len(group) == 1:
                continue
            head = group[0]
            merged[head] = group[1:]
            for other in group[1:]:
                how = match(head, other)
                if how and how not in paths:
                    paths.append(how)
                counts[head] += counts.pop(other)
                first[head] = min(first[head], first.pop(other))
    ranking = sorted(counts, key=lambda a: (-counts[a], first[a]))
    return Tally(dict(counts), ranking, first, no_answer, len(ok), merged, tuple(paths))
