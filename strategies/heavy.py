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
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from heavy import constants as C
from heavy.strategy import Context, Strategy
from heavy.types import Result
from heavy.voting import tally

from ._common import shuffle_seed, sample_all, synthesize_or_vote, vote_result


class HeavyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=C.HEAVY_MAJORITY_THRESHOLD, ge=0.0, lt=1.0)
    """Vote when the leading answer holds more than this share of successful hypotheses."""
    shuffle: bool = True
    """Show candidates in a random order (guards against position bias)."""
    shuffle_seed: int | None = None
    """Seed of that order (default: the run's sampling seed)."""


class HeavyDefault(Strategy):
    """Default: majority vote when a clear majority exists, otherwise synthesize from all candidates."""

    name = "heavy"
    Options = HeavyOptions

    async def run(self, ctx: Context) -> Result:
        run = await sample_all(ctx)
        t = tally(run.hypotheses)
        ok = len(run.successes)
        share = t.top_count / ok if ok else 0.0
        if t.winner is not None and share > self.options.threshold and not t.tied:
            why = f"clear majority ({t.top_count}/{ok} = {share:.0%} > {self.options.threshold:.0%}): answered by vote."
            return vote_result(ctx, run, strategy=self.name, path=["sample", "majority", "vote"], why=why)
        reason = "no extractable answers" if t.winner is None else f"no clear majority ({share:.0%})"
        result = await synthesize_or_vote(ctx, run, strategy=self.name, path=["sample", reason],
                                          shuffle=self.options.shuffle, seed=shuffle_seed(ctx, self.options.shuffle_seed))
        return result
