"""``confidence``: confidence-weighted voting from token logprobs (DeepConf, offline mode; Fu et al., 2025,
"Deep Think with Confidence").

Each trace's token confidence is the negative mean log-probability of the top-k candidate tokens at each
position (high when the distribution is peaked). It is summarised per trace by one ``measure``:

* ``mean``: the average token confidence over the whole trace;
* ``bottom10``: the mean of the lowest 10 % *group* confidences, a group being a sliding window of
  ``window`` consecutive tokens (the paper's recommended measure);
* ``lowest``: the lowest group confidence;
* ``tail``: the average token confidence over the last ``tail`` tokens.

Only the most confident ``keep`` fraction of traces is kept (the paper's top-η % filter: 0.1 aggressive,
0.9 conservative), and the kept traces vote with their confidence as weight.

The strategy requests logprobs itself (``logprobs=True``, ``top_logprobs``). Providers that return none
(Anthropic's API, some local servers) get a plain majority vote, and the decision says so. When only the
chosen token's logprob comes back (no alternatives), a token's confidence is ``-log(1 - p)`` of its
probability ``p``: the same ordering (surer tokens score higher).

DeepConf's *online* mode (stopping a trace mid-generation when its group confidence drops) is not
supported: heavy's providers stream text deltas without per-token logprobs, so a trace's confidence is
only known once it has finished.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from heavy.strategy import Context, Strategy, int_votes, text_of
from heavy.types import Decision, Result, TokenLogprob
from heavy.voting import tally


class ConfidenceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    measure: Literal["mean", "bottom10", "lowest", "tail"] = "bottom10"
    """How a trace's token confidences are summarised (see the module docstring)."""
    window: int = Field(default=64, ge=1, le=100_000)
    """Tokens per sliding group for "bottom10"/"lowest" (the paper uses 2048 for long reasoning traces)."""
    tail: int = Field(default=256, ge=1, le=100_000)
    """Tokens at the end of a trace for "tail" (the paper uses 2048)."""
    keep: float = Field(default=0.9, gt=0.0, le=1.0)
    """Fraction of the most confident traces kept for the vote (DeepConf's top-η %)."""
    weighted: bool = True
    """Weight each kept trace's vote by its confidence (otherwise one vote each)."""
    top_logprobs: int = Field(default=5, ge=0, le=20)
    """Alternatives requested per token (0: only the chosen token's logprob)."""


def token_confidences(logprobs: Sequence[TokenLogprob]) -> list[float]:
    """DeepConf token confidence per position: ``-mean(top-k logprobs)``, or ``-log(1 - p)`` without alternatives."""
    out = []
    for t in logprobs:
        if t.top:
            out.append(-sum(t.top.values()) / len(t.top))
        else:
            p = math.exp(min(t.logprob, 0.0))
            out.append(-math.log(max(1.0 - p, 1e-9)))
    return out


def _groups(conf: list[float], window: int) -> list[float]:
    """Mean confidence of every window of *window* consecutive tokens (the whole trace if it is shorter)."""
    if len(conf) <= window:
        return [sum(conf) / len(conf)]
    prefix = [0.0]
    for c in conf:
        prefix.append(prefix[-1] + c)
    return [(prefix[i + window] - prefix[i]) / window for i in range(len(conf) - window + 1)]


def trace_confidence(logprobs: Sequence[TokenLogprob], measure: str, window: int, tail: int) -> float:
    conf = token_confidences(logprobs)
    if not conf:
        return 0.0
    if measure == "mean":
        return sum(conf) / len(conf)
    if measure == "tail":
        last = conf[-tail:]
        return sum(last) / len(last)
    groups = _groups(conf, window)
    if measure == "lowest":
        return min(groups)
    worst = sorted(groups)[: max(1, math.ceil(len(groups) * 0.1))]
    return sum(worst) / len(worst)


class Confidence(Strategy):
    """DeepConf: vote weighted by token-logprob confidence, keeping only the most confident traces."""

    name = "confidence"
    Options = ConfidenceOptions

    async def run(self, ctx: Context) -> Result:
        o = self.options
        params = ctx.sampler.params.model_copy(update={"logprobs": True, "top_logprobs": o.top_logprobs or None})
        run = await ctx.sample(params=params)
        answered = [h for h in run.successes if h.answer is not None]
        without = [h for h in answered if not h.logprobs]
        if not answered or without:
            why = (f"the provider returned no logprobs for {len(without)} of {len(answered)} answered hypotheses; "
                   "fell back to the plain vote." if without else "")
            return ctx.decide_by_vote(run.hypotheses, path=["sample", "no logprobs", "vote"] if without
                                      else ["sample", "vote"], why=why, details={"confidence": None})
        scores = {h.index: trace_confidence(h.logprobs or [], o.measure, o.window, o.tail) for h in answered}
        ranked = sorted(answered, key=lambda h: (-scores[h.index], h.index))
        kept = ranked[: max(1, math.ceil(len(ranked) * o.keep))]
        weights = {h.index: max(scores[h.index], 1e-9) if o.weighted else 1.0 for h in kept}
        t = tally(kept, weights)
        plain = tally(run.hypotheses)
        ctx.stage("confidence vote", kept=len(kept), of=len(answered), measure=o.measure)
        winner_index = t.first_index[t.winner]
        weight_of = {a: round(float(w), 4) for a, w in t.counts.items()}
        dropped = [h.index for h in ranked[len(kept):]]
        rationale = (
            f"kept the {len(kept)} most confident of {len(answered)} traces ({o.measure} confidence"
            + (f", window {o.window}" if o.measure in ("bottom10", "lowest") else "")
            + (f", last {o.tail} tokens" if o.measure == "tail" else "") + "); "
            + (f"confidence-weighted vote: {t.winner!r} weighs {weight_of[t.winner]:g}"
               if o.weighted else f"vote: {t.winner!r} has {int(t.counts[t.winner])}")
            + (f" (plain vote would say {plain.winner!r})" if plain.winner != t.winner else "")
        )
        decision = Decision(
            method="confidence", path=["sample", "confidence filter", "weighted vote" if o.weighted else "vote"],
            rationale=rationale, votes=int_votes(plain.counts), no_answer=plain.no_answer, winner=winner_index,
            scores=weight_of,
            details={"confidence": {str(i): round(s, 4) for i, s in scores.items()}, "kept": [h.index for h in kept],
                     "dropped": dropped, "measure": o.measure, "keep": o.keep, "weighted": o.weighted,
                     "plain_vote_winner": plain.winner},
        )
        return ctx.result(answer=t.winner, text=text_of(run.hypotheses, winner_index), decision=decision)
