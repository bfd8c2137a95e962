"""``ranked``: council-style peer ranking (after karpathy/llm-council; ranked ballots aggregated by Borda
count, de Borda 1781).

Stage 1: N answers (models round-robin over ``-m``). Stage 2: every council member ranks the
*others'* answers, anonymised as "Response A, B, …" and shuffled per ranker; nobody ranks their own
work. With several models, each model is one ranker and sees only the answers of the other models;
with a single model, each answer's seat is a ranker and sees every answer but its own. Ballots are
aggregated by Borda count (a response ranked p-th of m scores (m - p)/(m - 1); its score is the mean
over the ballots that ranked it). Stage 3: the chairman (the aggregator model) reads every answer and
the aggregate ranking and writes the final answer.

If the chairman fails, the top-ranked answer is returned; if no ballot could be parsed either, the vote
decides. The ranking matrix (ranker × response → place) is in ``decision.details["matrix"]``.

Cost: N samples + one ranking call per ranker (models or seats) + 1 chairman call; N alone when every
answer agrees (``skip_unanimous``, as the tournament skips equal pairs and the debate stops on consensus).
"""

from __future__ import annotations

import asyncio
import random
from typing import Literal

from pydantic import BaseModel, ConfigDict

from heavy.prompts import RANKING_FORM, chairman_messages, labels, parse_ranking, rank_messages
from heavy.sampler import ModelRef
from heavy.strategy import AGGREGATOR_FAILURES, Context, Strategy, int_votes, unanimous
from heavy.types import Decision, Hypothesis, Result
from heavy.voting import tally


class RankedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rankers: Literal["auto", "models", "seats"] = "auto"
    """Who ranks: one ranker per distinct model ("models", needs two or more), one per answer ("seats"), or
    "auto" (models when there are several, else seats)."""
    shuffle_seed: int | None = None
    """Seed of each ranker's response order (default: the run's sampling seed)."""
    skip_unanimous: bool = True
    """When every answer has the same final answer, skip the council (ranking identical answers cannot
    change the answer, and costs a call per ranker plus the chairman's): the vote decides."""


class Ranked(Strategy):
    """Council: each model ranks the others' anonymised answers (never its own), Borda count, a chairman answers."""

    name = "ranked"
    Options = RankedOptions

    def _ballots(self, ctx: Context, cands: list[Hypothesis]) -> tuple[str, list[tuple[str, ModelRef, list[Hypothesis]]]]:
        refs = {m.label: m for m in ctx.sampler.models}
        by_model = list(dict.fromkeys(h.model for h in cands))
        mode = self.options.rankers
        if mode == "auto":
            mode = "models" if len(by_model) > 1 else "seats"
        if mode == "models" and len(by_model) < 2:
            mode = "seats"
        if mode == "models":
            return mode, [(label, refs.get(label, ctx.aggregator), [h for h in cands if h.model != label])
                          for label in by_model]
        return mode, [(f"seat #{h.index}", refs.get(h.model, ctx.aggregator), [c for c in cands if c.index != h.index])
                      for h in cands]

    async def run(self, ctx: Context) -> Result:
        run = await ctx.sample()
        only = ctx.single_success(run.hypotheses, method="ranked", path=["sample", "single answer"], nothing_to="rank")
        if only is not None:
            return only
        cands = run.successes
        t = tally(run.hypotheses)
        note = ctx.out_of_budget("before the ranking")
        if note:
            return ctx.decide_by_vote(run.hypotheses, path=["sample", "budget spent", "vote"], why=note)
        if self.options.skip_unanimous and unanimous(run.hypotheses):
            return ctx.decide_by_vote(run.hypotheses, path=["sample", "unanimous", "vote"],
                                      why=f"all {len(cands)} answers agree; no ranking needed "
                                          "(-o skip_unanimous=false ranks them anyway).")
        mode, ballots = self._ballots(ctx, cands)
        seed = ctx.shuffle_seed(self.options.shuffle_seed)
        ctx.stage("rank", rankers=len(ballots), mode=mode)
        results = await asyncio.gather(*(self._rank(ctx, who, ref, shown, seed, n)
                                         for n, (who, ref, shown) in enumerate(ballots)))
        matrix: dict[str, dict[str, int] | None] = {}
        points: dict[int, list[float]] = {h.index: [] for h in cands}
        rankers = []
        for (who, ref, shown), (order, error) in zip(ballots, results):
            seen = {h.index for h in shown}
            rankers.append({"ranker": who, "model": ref.label, "sees": sorted(seen),
                            "own": [h.index for h in cands if h.index not in seen], "ballot": order, "error": error})
            if order is None:
                matrix[who] = None
                continue
            m = len(shown)
            placed = {idx: p for p, idx in enumerate(order)}
            matrix[who] = {f"#{idx}": p + 1 for idx, p in placed.items()}
            for h in shown:  # responses left off a ballot score as its last place
                p = placed.get(h.index, m - 1)
                points[h.index].append((m - 1 - p) / (m - 1))
        borda = {idx: sum(ps) / len(ps) for idx, ps in points.items() if ps}
        details = {"mode": mode, "rankers": rankers, "matrix": matrix,
                   "borda": {f"#{i}": round(s, 4) for i, s in borda.items()}}
        if not borda:
            errors = sorted({r["error"] for r in rankers if r["error"]})
            return ctx.decide_by_vote(run.hypotheses, path=["sample", "rank", "vote"], details=details,
                                      why=f"no ranking could be used ({'; '.join(errors)}); fell back to the vote.")
        order = sorted(cands, key=lambda h: (-borda.get(h.index, -1.0), h.index))
        details["aggregate_ranking"] = [h.index for h in order]
        top = order[0]
        shuffled = list(cands)
        random.Random(seed).shuffle(shuffled)
        named = dict(zip((h.index for h in shuffled), labels(len(shuffled))))
        ctx.stage("chairman", model=ctx.aggregator.label, top=top.index)
        prompt = chairman_messages(ctx.messages, [(named[h.index], h.text) for h in shuffled],
                                   [named[h.index] for h in order])
        scores = {f"#{i}": round(s, 4) for i, s in borda.items()}
        try:
            call = await ctx.call("chairman", prompt)
        except AGGREGATOR_FAILURES as exc:
            decision = Decision(method="ranked", path=["sample", "rank", "borda", "chairman failed", "top-ranked"],
                                rationale=f"the chairman failed ({type(exc).__name__}); answered with the top-ranked "
                                          f"response #{top.index} (Borda {borda[top.index]:.2f})",
                                votes=int_votes(t.counts), no_answer=t.no_answer, winner=top.index, scores=scores,
                                details=details)
            return ctx.result(answer=top.answer, text=top.text, decision=decision)
        answer = ctx.sampler.extract(call.text)
        decision = Decision(
            method="ranked", path=["sample", "rank", "borda", "chairman"], votes=int_votes(t.counts),
            no_answer=t.no_answer, winner=None, scores=scores, details=details,
            rationale=f"{len(ballots)} {mode} ranked the others' answers; Borda count put #{top.index} first "
                      f"({borda[top.index]:.2f}); the chairman {ctx.aggregator.label} wrote the final answer"
                      + (f" {answer!r}" if answer else "")
                      + (" (the top-ranked answer)" if answer and top.answer and answer == top.answer else ""),
        )
        return ctx.result(answer=answer, text=call.text, decision=decision)

    @staticmethod
    async def _rank(ctx: Context, who: str, ref: ModelRef, shown: list[Hypothesis], seed: int | None,
                    n: int) -> tuple[list[int] | None, str | None]:
        if len(shown) < 2:  # one response is no ranking: no call, no points
            return None, "fewer than two responses of others to rank"
        order = list(shown)
        random.Random(None if seed is None else seed * 31_337 + n).shuffle(order)
        named = list(zip(labels(len(order)), order))
        valid = [lb for lb, _ in named]
        ranking, calls, failure = await ctx.call_parsed(f"rank by {who}", rank_messages(ctx.messages, [
            (lb, h.text) for lb, h in named]), lambda text: parse_ranking(text, valid), form=RANKING_FORM, model=ref)
        if ranking is None:
            return None, failure
        by_label = dict(named)
        return [by_label[lb].index for lb in ranking], None
