"""``usc``: universal self-consistency (Chen et al., 2023, "Universal Self-Consistency for Large Language
Model Generation"): the aggregator reads all N responses and picks the one most consistent with the
others. Unlike the vote it needs no answer extraction, so it works for free-form answers (summaries,
explanations, code) where no two responses are written alike.

Responses are shown under neutral labels in a shuffled order. A reply with no parseable choice is followed
up once, asking for the choice alone; then (or if the aggregator fails) the strategy falls back to the vote, then to the first success.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from heavy.prompts import consistency_messages
from heavy.strategy import Context
from heavy.types import Hypothesis, Message
from heavy.voting import Tally

from .judge import Judge


class USCOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shuffle: bool = True
    """Show responses in a random order (guards against position bias)."""
    shuffle_seed: int | None = None
    """Seed of that order (default: the run's sampling seed)."""
    retries: int = 1
    """Follow-ups asking for the choice alone when a reply holds none (e.g. an analysis cut at max_tokens)."""


class USC(Judge):
    """Universal self-consistency: the aggregator picks the response most consistent with the others (free-form answers)."""

    name = "usc"
    Options = USCOptions
    step = "select most consistent"
    single = "single response"
    stream = False

    def prompt(self, ctx: Context, candidates: list[tuple[str, Hypothesis]]) -> list[Message]:
        return consistency_messages(ctx.messages, [(label, h.text) for label, h in candidates])

    def rationale(self, ctx: Context, verdict: str, chosen: Hypothesis, t: Tally, reply: str, shown: int) -> str:
        agreeing = t.count_of(chosen.answer) if chosen.answer else 0
        return (f"{ctx.aggregator.label} judged response {verdict} (hypothesis #{chosen.index}) the most consistent "
                f"of {shown}" + (f"; its extracted answer {chosen.answer!r} is shared by {int(agreeing)} of them"
                                 if chosen.answer else ""))
