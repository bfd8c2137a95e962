"""``synthesize``: the Heavy / Mixture-of-Agents merge (Wang et al., 2024, "Mixture-of-Agents Enhances
Large Language Model Capabilities"; one aggregation layer): an aggregator model reads every candidate,
weighs agreement and disagreement, and writes one final answer, streamed as it is written.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from heavy.strategy import Context, Strategy
from heavy.types import Result


class SynthesizeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shuffle: bool = True
    """Show candidates in a random order (guards against position bias)."""
    shuffle_seed: int | None = None
    """Seed of that order (default: the run's sampling seed, so seeded runs give reproducible prompts)."""


class Synthesize(Strategy):
    """Merge: an aggregator model reads all N candidates and writes one final answer."""

    name = "synthesize"
    Options = SynthesizeOptions

    async def run(self, ctx: Context) -> Result:
        run = await ctx.sample()
        return await ctx.synthesize(run.hypotheses, path=["sample"], shuffle=self.options.shuffle,
                                    seed=ctx.shuffle_seed(self.options.shuffle_seed))
