"""``usc``: universal self-consistency (Chen et al., 2023, "Universal Self-Consistency for Large Language
Model Generation"): the aggregator reads all N responses and picks the one most consistent with the
others. Unlike the vote it needs no answer extraction, so it works for free-form answers (summaries,
explanations, code) where no two responses are written alike.

Responses are shown under neutral labels in a shuffled order. A reply with no parseable choice is followed
up once, asking for the choice alone; then (or if the aggregator fails) the strategy falls back to the vote, then to the first success.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from heavy.prompts import VERDICT_FORM, consistency_messages, parse_verdict
from heavy.strategy import Context, Strategy
from heavy.types import Decision, Result
from heavy.voting import tally

from ._common import decide, int_votes, labelled, sample_all, shuffle_seed, vote_result


class USCOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shuffle: bool = True
    """Show responses in a random order (guards against position bias)."""
    shuffle_seed: int | None = None
    """Seed of that order (default: the run's sampling seed)."""
    retries: int = 1
    """Follow-ups asking for the choice alone when a reply holds none (e.g. an analysis cut at max_tokens)."""


class USC(Strategy):
    """Universal self-consistency: the aggregator picks the response most consistent with the others (free-form answers)."""

    name = "usc"
    Options = USCOptions

    async def run(self, ctx: Context) -> Result:
        run = await sample_all(ctx)
        t = tally(run.hypotheses)
        cands = labelled(run.hypotheses, shuffle=self.options.shuffle,
                         seed=shuffle_seed(ctx, self.options.shuffle_seed))
        if len(cands) == 1:
            only = cands[0][1]
            decision = Decision(method="usc", path=["sample", "single response"], winner=only.index,
                                rationale="only one hypothesis succeeded; nothing to compare",
                                votes=int_votes(t.counts), no_answer=t.no_answer)
            return ctx.result(strategy=self.name, answer=only.answer, text=only.text, decision=decision,
                              stopped_early=run.stopped_early, deadline_hit=run.deadline_hit)
        by_label = dict(cands)
        prompt = consistency_messages(ctx.messages, [(label, h.text) for label, h in cands])
        ctx.stage("select most consistent", candidates=len(cands), model=ctx.aggregator.label)
        verdict, calls, failure = await decide(ctx, "usc", prompt, lambda text: parse_verdict(text, list(by_label)),
                                               form=VERDICT_FORM, follow_ups=self.options.retries)
        if verdict is None:
            return vote_result(ctx, run, strategy=self.name, path=["sample", "usc", "vote"],
                               why=f"{failure} after {len(calls)} call(s); fell back to the vote.")
        chosen = by_label[verdict]
        agreeing = t.count_of(chosen.answer) if chosen.answer else 0
        decision = Decision(
            method="usc", path=["sample", "select most consistent"], winner=chosen.index,
            votes=int_votes(t.counts), no_answer=t.no_answer,
            rationale=f"{ctx.aggregator.label} judged response {verdict} (hypothesis #{chosen.index}) the most "
                      f"consistent of {len(cands)}" + (f"; its extracted answer {chosen.answer!r} is shared by "
                                                        f"{int(agreeing)} of them" if chosen.answer else ""),
            details={"labels": {label: h.index for label, h in cands}, "verdict": verdict},
        )
        return ctx.result(strategy=self.name, answer=chosen.answer, text=chosen.text, decision=decision,
                          stopped_early=run.stopped_early, deadline_hit=run.deadline_hit)
