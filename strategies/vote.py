"""``vote``: self-consistency (Wang et al., 2022, "Self-Consistency Improves Chain of Thought
Reasoning in Language Models"): sample N reasoning paths, extract each final answer, take the majority.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from heavy.strategy import Context, Strategy
from heavy.types import Result

from ._common import sample_all, vote_result


class VoteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    early_stop: bool = False
    """Stop sampling once the leader's margin exceeds the number of outstanding hypotheses."""


class Vote(Strategy):
    """Self-consistency: majority vote over the extracted final answers of N samples."""

    name = "vote"
    Options = VoteOptions

    async def run(self, ctx: Context) -> Result:
        run = await sample_all(ctx, early_stop=self.options.early_stop)
        return vote_result(ctx, run, strategy=self.name, path=["sample", "vote"])
