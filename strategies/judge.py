"""``judge``: best-of-N with an LLM judge (the "LLM-as-a-judge" selection of Zheng et al., 2023, applied
to N self-generated candidates): an aggregator model sees the question and every candidate under neutral
labels, in shuffled order, checks them, and picks one with a short rationale.

An unparseable verdict is retried once; if it is still unparseable (or the judge call fails) the
strategy falls back to the majority vote and says so in the Result.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from heavy.prompts import judge_messages, parse_verdict
from heavy.strategy import AGGREGATOR_FAILURES, Context, Strategy
from heavy.types import Decision, Result
from heavy.voting import tally

from ._common import shuffle_seed, labelled, sample_all, vote_result


class JudgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shuffle: bool = True
    """Show candidates in a random order (guards against position bias)."""
    shuffle_seed: int | None = None
    """Seed of that order (default: the run's sampling seed, so seeded runs give reproducible prompts)."""
    retries: int = 1
    """Extra judge calls when the verdict cannot be parsed."""


class Judge(Strategy):
    """Best-of-N: an aggregator model compares all candidates and picks the best one."""

    name = "judge"
    Options = JudgeOptions

    async def run(self, ctx: Context) -> Result:
        run = await sample_all(ctx)
        ok = run.successes
        t = tally(run.hypotheses)
        if len(ok) == 1:
            only = ok[0]
            decision = Decision(method="judge", path=["sample", "single candidate"], winner=only.index,
                                rationale="only one hypothesis succeeded; nothing to compare",
                                votes=dict(t.counts), no_answer=t.no_answer)
            return ctx.result(strategy=self.name, answer=only.answer, text=only.text, decision=decision,
                              stopped_early=run.stopped_early, deadline_hit=run.deadline_hit)
        cands = labelled(run.hypotheses, shuffle=self.options.shuffle, seed=shuffle_seed(ctx, self.options.shuffle_seed))
        by_label = dict(cands)
        prompt = judge_messages(ctx.messages, [(label, h.text) for label, h in cands])
        ctx.stage("judge", candidates=len(cands), model=ctx.aggregator.label)
        verdict = None
        failure = ""
        for attempt in range(1 + max(0, self.options.retries)):
            try:
                call = await ctx.call("judge" if attempt == 0 else "judge-retry", prompt)
            except AGGREGATOR_FAILURES as exc:
                failure = f"judge call failed ({type(exc).__name__})"
                break
            verdict = parse_verdict(call.text, list(by_label))
            if verdict is not None:
                break
            failure = "judge verdict unparseable"
        if verdict is None:
            return vote_result(ctx, run, strategy=self.name, path=["sample", "judge", "vote"],
                               why=f"{failure} after {len(ctx.calls)} call(s); fell back to the vote.")
        chosen = by_label[verdict]
        decision = Decision(
            method="judge", path=["sample", "judge"], winner=chosen.index, votes=dict(t.counts), no_answer=t.no_answer,
            rationale=f"{ctx.aggregator.label} picked candidate {verdict} (hypothesis #{chosen.index}): "
                      + _rationale(ctx.calls[-1].text),
            details={"labels": {label: h.index for label, h in cands}, "verdict": verdict},
        )
        return ctx.result(strategy=self.name, answer=chosen.answer, text=chosen.text, decision=decision,
                          stopped_early=run.stopped_early, deadline_hit=run.deadline_hit)


def _rationale(text: str, limit: int = 400) -> str:
    """The judge's reasoning without the verdict line, cut to a readable length."""
    body = "\n".join(line for line in text.strip().splitlines() if "verdict" not in line.lower()).strip()
    return body if len(body) <= limit else body[: limit - 1] + "…"
