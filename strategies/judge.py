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
from heavy.strategy import Context, Strategy, int_votes, labelled
from heavy.types import Decision, Hypothesis, Message, Result
from heavy.voting import Tally, tally


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
    #: The step's name in stage events and the decision path, how many hypotheses one success is, and
    #: whether the first call streams (None: when the run streams); ``usc`` picks by other criteria alike.
    step = "judge"
    single = "single candidate"
    stream: bool | None = None

    def prompt(self, ctx: Context, candidates: list[tuple[str, Hypothesis]]) -> list[Message]:
        """The aggregator's prompt over the labelled candidates."""
        return judge_messages(ctx.messages, [(label, h.text) for label, h in candidates])

    def rationale(self, ctx: Context, verdict: str, chosen: Hypothesis, t: Tally, reply: str, shown: int) -> str:
        """Why *chosen* won, from the aggregator's first *reply*."""
        return f"{ctx.aggregator.label} picked candidate {verdict} (hypothesis #{chosen.index}): " + _rationale(reply)

    async def run(self, ctx: Context) -> Result:
        o = self.options
        run = await ctx.sample()
        only = ctx.single_success(run.hypotheses, method=self.name, path=["sample", self.single])
        if only is not None:
            return only
        t = tally(run.hypotheses)
        cands = labelled(run.hypotheses, shuffle=o.shuffle, seed=ctx.shuffle_seed(o.shuffle_seed))
        by_label = dict(cands)
        ctx.stage(self.step, candidates=len(cands), model=ctx.aggregator.label)
        verdict, calls, failure = await ctx.call_parsed(
            self.name, self.prompt(ctx, cands), lambda text: parse_verdict(text, list(by_label)), form=VERDICT_FORM,
            follow_ups=o.retries, stream=self.stream)
        if verdict is None:
            return ctx.decide_by_vote(run.hypotheses, path=["sample", self.name, "vote"],
                                      why=f"{failure} after {len(calls)} call(s); fell back to the vote.")
        chosen = by_label[verdict]
        decision = Decision(
            method=self.name, path=["sample", self.step], winner=chosen.index, votes=int_votes(t.counts),
            no_answer=t.no_answer, rationale=self.rationale(ctx, verdict, chosen, t, calls[0].text, len(cands)),
            details={"labels": {label: h.index for label, h in cands}, "verdict": verdict},
        )
        return ctx.result(answer=chosen.answer, text=chosen.text, decision=decision)


def _rationale(text: str, limit: int = 400) -> str:
    """The judge's reasoning without the verdict line, cut to a readable length."""
    body = "\n".join(line for line in text.strip().splitlines() if "verdict" not in line.lower()).strip()
    return body if len(body) <= limit else body[: limit - 1] + "…"
