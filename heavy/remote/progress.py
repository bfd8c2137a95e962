"""Short human lines describing a run as it happens, from heavy's events.

Shared by the proxy (streamed as ``reasoning_content`` deltas) and the ``llm`` plugin (streamed as
reasoning). One line per step, each ending in a newline::

    sampling 8 hypotheses from openai:gpt-4.1
    hypothesis 3/8 done: answer 42 (4.1 s)
    vote: 42 ×6, 41 ×2
    decided by vote: 6 of 8 answers agree on '42', margin 4

Token deltas of the hypotheses are not described (they would drown the lines that matter).
"""

from __future__ import annotations

from ..events import (AggregatorDelta, Event, HypothesisFailed, HypothesisFinished, HypothesisRestarted,
                      StageStarted)
from ..types import Result

__all__ = ["Progress", "CONTENT_PURPOSES"]

#: Aggregator calls whose streamed text *is* the final answer (streamed as content, not as progress).
CONTENT_PURPOSES = frozenset({"synthesize"})

_ANSWER_CHARS = 60


def _short(text: str, limit: int = _ANSWER_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Progress:
    """Turns events into progress lines; ``n`` is the number of hypotheses the run samples."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.finished = 0
        self._midline = False  # streamed aggregator text left the last line open

    def lines(self, event: Event) -> list[str]:
        """The progress text *event* adds (usually one line; nothing for events not worth a line)."""
        if isinstance(event, AggregatorDelta):
            if event.purpose in CONTENT_PURPOSES or not event.text:
                return []
            self._midline = not event.text.endswith("\n")
            return [event.text]  # e.g. the judge's comparison, as it is written
        out = self._lines(event)
        if out and self._midline:
            self._midline = False
            out[0] = "\n" + out[0]
        return out

    def decision(self, result: Result) -> str:
        """The closing line: what decided and why."""
        d = result.decision
        text = f"decided by {d.method}"
        if d.rationale:
            text += f": {_short(d.rationale, 300)}"
        prefix = "\n" if self._midline else ""
        self._midline = False
        return prefix + text + "\n"

    def _lines(self, event: Event) -> list[str]:
        if isinstance(event, HypothesisFinished):
            h = event.hypothesis
            self.finished += 1
            answer = f"answer {_short(h.answer)}" if h.answer is not None else "no extractable answer"
            if h.tool_calls:
                answer = f"calls {', '.join(dict.fromkeys(c.name for c in h.tool_calls))}"
            return [f"{self._counter(h.index)} done: {answer} ({h.latency_s:.1f} s)\n"]
        if isinstance(event, HypothesisFailed):
            h = event.hypothesis
            self.finished += 1
            return [f"{self._counter(h.index)} failed: {h.error_type or 'error'} ({h.latency_s:.1f} s)\n"]
        if isinstance(event, HypothesisRestarted):
            return [f"hypothesis #{event.index}: its stream broke, re-sampling it\n"]
        if isinstance(event, StageStarted):
            return [self._stage(event.name, event.detail or {})]
        return []

    def _counter(self, index: int) -> str:
        if self.finished <= self.n:
            return f"hypothesis {self.finished}/{self.n}"
        return f"hypothesis #{index}"  # a strategy sampling more than n (several rounds)

    @staticmethod
    def _stage(name: str, detail: dict) -> str:
        if name == "sample":
            models = detail.get("models") or []
            where = f" from {', '.join(dict.fromkeys(models))}" if models else ""
            return f"sampling {detail.get('n', '?')} hypotheses{where}\n"
        if name == "vote":
            votes = detail.get("votes") or {}
            if not votes:
                return "vote: no extractable answers\n"
            ranked = sorted(votes.items(), key=lambda kv: -kv[1])
            shown = ", ".join(f"{_short(a, 30)} ×{c}" for a, c in ranked[:5])
            return f"vote: {shown}{', …' if len(ranked) > 5 else ''}\n"
        if name == "judge":
            return f"judge: {detail.get('model', 'the aggregator')} compares {detail.get('candidates', '?')} candidates\n"
        if name == "synthesize":
            return (f"synthesize: {detail.get('model', 'the aggregator')} writes one answer from "
                    f"{detail.get('candidates', '?')} candidates\n")
        extra = ", ".join(f"{k}={_short(str(v), 40)}" for k, v in detail.items())
        return f"{name}{': ' + extra if extra else ''}\n"
