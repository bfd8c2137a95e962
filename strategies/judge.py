"""``judge``: best-of-N with an LLM judge (the "LLM-as-a-judge" selection of Zheng et al., 2023, applied
to N self-generated candidates): an aggregator model sees the question and every candidate under neutral
labels, in shuffled order, checks them, and picks one with a short rationale.

A reply with no parseable verdict (on small models, usually an analysis cut at max_tokens) is followed
up once in the same conversation, asking for the verdict line alone; if there is still none (or the judge
call fails) the strategy falls back to the majority vote and says so in the Result.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from heavy.prompts import VERDICT_FORM, judge_messages, parse_verdict
from heavy.strategy import Context, Strategy
from heavy.types import Decision, Result
from heavy.voting import tally

from ._common import decide, labelled, sample_all, shuffle_seed, vote_result


class JudgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shuffle: bool = True
    """Show candidates in a random order (guards against position bias)."""
    shuffle_seed: int | None = None
    """Seed of that order (default: the run's sampling seed, so seeded runs give reproducible prompts)."""
    retries: int = 1
    """Follow-ups asking for the verdict alone when a reply holds none (e.g. an analysis cut at max_tokens)."""


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
        verdict, calls, failure = await decide(ctx, "judge", prompt, lambda text: parse_verdict(text, list(by_label)),
                                               form=VERDICT_FORM, follow_ups=self.options.retries, stream=None)
        if verdict is None:
            return vote_result(ctx, run, strategy=self.name, path=["sample", "judge", "vote"],
                               why=f"{failure} after {len(calls)} call(s); fell back to the vote.")
        chosen = by_label[verdict]
        decision = Decision(
            method="judge", path=["sample", "judge"], winner=chosen.index, votes=dict(t.counts), no_answer=t.no_answer,
            rationale=f"{ctx.aggregator.label} picked candidate {verdict} (hypothesis #{chosen.index}): "
                      + _rationale(calls[0].text),
            details={"labels": {label: h.index for label, h in cands}, "verdict": verdict},
        )
        return ctx.result(strategy=self.name, answer=chosen.answer, text=chosen.text, decision=decision,
                          stopped_early=run.stopped_early, deadline_hit=run.deadline_hit)


def _rationale(text: str, limit: int = 400) -> str:
    """The judge's reasoning without the verdict line, cut to a readable length."""
    body = "\n".join(line for line in text.strip().splitlines() if "verdict" not in line.lower()).strip()
    return body if len(body) <= limit else body[: limit - 1] + "…"
