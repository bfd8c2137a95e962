"""``vote``: self-consistency (Wang et al., 2022, "Self-Consistency Improves Chain of Thought
Reasoning in Language Models"): sample N reasoning paths, extract each final answer, take the majority.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from collections.abc import Sequence

from heavy.strategy import Context, Strategy
from heavy.types import Hypothesis, Result
from heavy.voting import tally


class VoteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    early_stop: bool = False
    """Stop sampling once the leader's margin exceeds the number of outstanding hypotheses."""


class Vote(Strategy):
    """Self-consistency: majority vote over the extracted final answers of N samples."""

    name = "vote"
    Options = VoteOptions

    async def run(self, ctx: Context) -> Result:
        run = await ctx.sample(until=(lambda done: _decided(done, ctx.n)) if self.options.early_stop else None)
        return ctx.decide_by_vote(run.hypotheses, path=["sample", "vote"])


def _decided(done: Sequence[Hypothesis], n: int) -> bool:
    """No outstanding hypothesis can change the winner: its margin exceeds the number still to come."""
    t = tally(done)
    return t.winner is not None and t.margin > n - len(done)
