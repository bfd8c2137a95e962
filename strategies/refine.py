"""``refine``: Self-Refine (Madaan et al., 2023, "Self-Refine: Iterative Refinement with Self-Feedback").

Each of N independent chains answers, then up to ``iterations`` times the *same* model critiques its own
answer and revises it using the critique. A chain stops when its critique ends ``STATUS: CORRECT``
(the parseable stop marker) or when a revision's answer no longer changes. With N = 1 this is Self-Refine
as published; with N > 1 the chains' final answers are decided by vote.

Cost per chain: 1 sample + at most ``iterations`` × (1 critique call + 1 revision sample). The run's
budget is checked before every iteration; a chain whose critique call fails keeps its answer.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from heavy.answers import equivalent
from heavy.prompts import critique_messages, parse_status, revise_messages
from heavy.sampler import ModelRef
from heavy.strategy import AGGREGATOR_FAILURES, Context, Strategy
from heavy.types import AggregatorCall, Hypothesis, Result


class RefineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    iterations: int = Field(default=2, ge=0, le=10)
    """Critique-and-revise iterations at most, per chain."""
    stop_when_unchanged: bool = True
    """Stop a chain when a revision gives an answer equivalent to the one it revised."""


class Refine(Strategy):
    """Self-refine: answer, self-critique, revise, up to R times; stops when the critique says correct."""

    name = "refine"
    Options = RefineOptions

    async def run(self, ctx: Context) -> Result:
        o = self.options
        models = ctx.agent_models(ctx.n)
        run = await ctx.sample(models=models)
        current = list(run.hypotheses)
        chains = [{"chain": i, "model": models[i].label, "steps": [{"index": h.index, "answer": h.answer}],
                   "stopped": None if h.ok else "first sample failed"} for i, h in enumerate(current)]
        active = [i for i, h in enumerate(current) if h.ok]
        note, done = "", 0
        for it in range(1, o.iterations + 1):
            if not active:
                break
            note = ctx.out_of_budget(f"before iteration {it} of {o.iterations}")
            if note:
                break
            ctx.stage(f"critique {it}/{o.iterations}", chains=len(active))
            critiques = await asyncio.gather(
                *(self._critique(ctx, models[i], current[i], it, i) for i in active), return_exceptions=False)
            to_revise: list[tuple[int, str]] = []
            for i, crit in zip(active, critiques):
                step = chains[i]["steps"][-1]
                if isinstance(crit, str):  # the call failed: keep the answer
                    step["critique"] = crit
                    chains[i]["stopped"] = "critique call failed"
                    continue
                status = parse_status(crit.text)
                step["critique"] = {True: "correct", False: "incorrect", None: "no status line"}[status]
                if status is True:
                    chains[i]["stopped"] = f"critique {it} says correct"
                else:
                    to_revise.append((i, crit.text))
            if not to_revise:
                active = []
                break
            ctx.stage(f"revise {it}/{o.iterations}", chains=len(to_revise))
            prompts = [revise_messages(ctx.messages, current[i].text, feedback) for i, feedback in to_revise]
            new = await ctx.sample_each(prompts, [models[i] for i, _ in to_revise], stage=f"revise {it}")
            done = it
            active = []
            for (i, _), h in zip(to_revise, new):
                if not h.ok:
                    chains[i]["stopped"] = f"revision {it} failed ({h.error_type or h.status})"
                    continue
                unchanged = equivalent(h.answer, current[i].answer)
                current[i] = h
                chains[i]["steps"].append({"index": h.index, "answer": h.answer})
                if unchanged and o.stop_when_unchanged:
                    chains[i]["stopped"] = f"revision {it} did not change the answer"
                else:
                    active.append(i)
        for c in chains:
            c["stopped"] = c["stopped"] or (f"{o.iterations} iteration(s) done" if not note else "budget spent")
        finals = [h for h in current if h.ok]
        details = {"chains": chains, "iterations": o.iterations}
        why = note or ("; ".join(f"chain {c['chain']}: {c['stopped']}" for c in chains) + ".")
        path = ["sample"] + [f"critique+revise {k}" for k in range(1, done + 1)] + (["vote"] if len(finals) > 1 else ["final"])
        return ctx.decide_by_vote(finals, path=path, why=why, details=details)

    @staticmethod
    async def _critique(ctx: Context, ref: ModelRef, h: Hypothesis, it: int, chain: int) -> AggregatorCall | str:
        try:
            return await ctx.call(f"critique {it} of chain {chain}", critique_messages(ctx.messages, h.text),
                                  model=ref, stream=False)
        except AGGREGATOR_FAILURES as exc:
            return f"failed ({type(exc).__name__})"
