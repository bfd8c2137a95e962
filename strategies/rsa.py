"""``rsa``: recursive self-aggregation (Venkatraman et al., 2025, "Recursive Self-Aggregation Unlocks Deep
Thinking in Large Language Models").

A population of N solutions is sampled; then for ``steps`` steps a new population of N is made, each
member written by the model from ``k`` distinct members of the previous population drawn at random
(seeded), cross-checking them and combining their correct steps into one improved solution. The final
answer is the vote over the last population. Aggregation sees whole reasoning chains, not just answers,
so partially right chains can be combined.

Cost: N·(1 + steps) samples. The run's budget is checked before every step.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

from heavy.prompts import aggregate_messages, labels
from heavy.strategy import Context, Strategy, answers_of
from heavy.types import Hypothesis, Result


class RSAOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=2, ge=0, le=20)
    """Aggregation steps T after the initial population."""
    k: int = Field(default=3, ge=1, le=16)
    """Members of the previous population each new member aggregates (K; all of them if fewer)."""
    seed: int | None = None
    """Seed of the subset draws (default: the run's sampling seed)."""


class RSA(Strategy):
    """Recursive self-aggregation: each step, every member aggregates K random members of the previous population."""

    name = "rsa"
    Options = RSAOptions

    async def run(self, ctx: Context) -> Result:
        o = self.options
        run = await ctx.sample()
        population: list[Hypothesis] = run.successes
        rng = random.Random(o.seed if o.seed is not None else ctx.sampler.params.seed)
        history = [{"step": 0, "members": [{"index": h.index, "answer": h.answer} for h in population]}]
        note, done = "", 0
        for step in range(1, o.steps + 1):
            note = ctx.out_of_budget(f"before step {step} of {o.steps}")
            if note:
                break
            k = min(o.k, len(population))
            subsets = [rng.sample(population, k) for _ in range(ctx.n)]
            ctx.stage(f"step {step}/{o.steps}", population=len(population), k=k)
            prompts = [aggregate_messages(ctx.messages, list(zip(labels(k), (h.text for h in subset))))
                       for subset in subsets]
            new = await ctx.sample_each(prompts, ctx.agent_models(ctx.n), stage=f"step {step}")
            history.append({"step": step, "members": [
                {"index": h.index, "from": [s.index for s in subset], "answer": h.answer if h.ok else None,
                 "status": h.status} for h, subset in zip(new, subsets)]})
            ok = [h for h in new if h.ok]
            if not ok:
                note = f"every member of step {step} failed; decided on step {step - 1}."
                break
            population, done = ok, step
        details = {"steps": history, "k": o.k, "population": ctx.n, "final_answers": answers_of(population)}
        why = note or f"{done} aggregation step(s) over a population of {ctx.n}."
        return ctx.decide_by_vote(population, path=["sample"] + [f"step {s}" for s in range(1, done + 1)] + ["vote"],
                                  why=why, details=details)
