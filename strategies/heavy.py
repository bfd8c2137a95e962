"""``heavy`` (the default): vote when the samples clearly agree, synthesize when they do not.

Self-consistency is free once the samples exist and is hard to beat when a clear majority exists;
an aggregator call costs tokens and latency but is the only way to do well when answers are free-form
(nothing to vote on) or split. So: sample N; if one extracted answer holds more than ``threshold`` of the
successful hypotheses, answer by vote; otherwise synthesize from all candidates. The Result's decision
path says which way it went.

The policy is the measured one (docs/strategies.md, the local 1.5B on 40 GSM8K questions at N=4): the
vote was right on all 24 questions with a clear majority, so no aggregator is paid for there; a judge in
the synthesis's place lost questions (it picked minority answers against a 3-1 majority), so there is
none; on splits synthesis tied with the vote, and it stays because free-form answers have nothing to
vote on and a stronger ``--aggregator-model`` is where splits are won.

**Where code may run** (the user enabled the python tool): a program the model writes and heavy executes
is the one verifier a small model can trust, so a quarter of the N hypotheses are programs and an
answer a reasoning chain and an executed program agree on wins if it leads or ties the vote
(``crosscheck``'s decision, with its early stop: one chain and one program first, so questions they agree
on cost two samples). Otherwise the rule above applies to all the samples: a clear majority is answered
by vote, a split is synthesized. ``-o programs=0`` keeps the python tool for the hypotheses' own use and the old policy.
Measured in docs/benchmarks.md ("Verification by execution").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from heavy import constants as C
from heavy.strategy import Context, Strategy
from heavy.types import Hypothesis, Result
from heavy.voting import tally

from .crosscheck import decide_agreed, sample_routes


class HeavyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=C.HEAVY_MAJORITY_THRESHOLD, ge=0.0, lt=1.0)
    """Vote when the leading answer holds more than this share of successful hypotheses."""
    shuffle: bool = True
    """Show candidates in a random order (guards against position bias)."""
    shuffle_seed: int | None = None
    """Seed of that order (default: the run's sampling seed)."""
    programs: float = Field(default=C.CROSSCHECK_PROGRAMS, ge=0.0, le=1.0)
    """Where code may run: the share of hypotheses sampled as executed programs (0: never)."""


class HeavyDefault(Strategy):
    """Default: majority vote when a clear majority exists, otherwise synthesize from all candidates."""

    name = "heavy"
    Options = HeavyOptions

    async def run(self, ctx: Context) -> Result:
        if ctx.sampler.can_run_code and self.options.programs > 0 and ctx.n >= 2:
            return await self._with_programs(ctx)
        run = await ctx.sample()
        return await self._decide(ctx, run.hypotheses, path=["sample"])

    async def _with_programs(self, ctx: Context) -> Result:
        sample = await sample_routes(ctx, programs=self.options.programs)
        path = ["python", "sample", "chain+program"]
        if sample.agreed():
            return decide_agreed(ctx, sample, path=[*path, "agree"])
        return await self._decide(ctx, sample.hypotheses, path=[*path, "no agreement"], details=sample.details)

    async def _decide(self, ctx: Context, hypotheses: list[Hypothesis], *, path: list[str],
                      details: dict[str, Any] | None = None) -> Result:
        t = tally(hypotheses)
        ok = sum(1 for h in hypotheses if h.ok)
        share = t.top_count / ok if ok else 0.0
        if t.winner is not None and share > self.options.threshold and not t.tied:
            why = f"clear majority ({t.top_count}/{ok} = {share:.0%} > {self.options.threshold:.0%}): answered by vote."
            return ctx.decide_by_vote(hypotheses, path=[*path, "majority", "vote"], why=why, details=details)
        reason = "no extractable answers" if t.winner is None else f"no clear majority ({share:.0%})"
        return await ctx.synthesize(hypotheses, path=[*path, reason], shuffle=self.options.shuffle,
                                    seed=ctx.shuffle_seed(self.options.shuffle_seed), details=details)
