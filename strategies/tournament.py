"""``tournament``: knockout selection by pairwise comparisons (Chen et al., 2024, "A Simple and Provable
Scaling Law for the Test-Time Compute of Large Language Models"; see also Chen et al., 2024, "Are More LLM
Calls All You Need? Towards Scaling Laws of Compound Inference Systems", on how voting-style systems
scale with the number of calls).

The N candidates are shuffled and paired; each pair is judged ``k`` times, alternating which candidate
is shown first (so a judge's preference for a position cancels out), and the candidate preferred by the
majority of the ``k`` verdicts advances. An odd candidate out gets a bye. Rounds repeat until one
candidate is left. A tie (a split verdict, or no parseable verdict) goes to the candidate whose answer
more samples share, then to the lower hypothesis index. Two candidates with equivalent answers need no
judge (``skip_equal``): the lower index advances.

Cost: N samples + at most (N - 1)·k comparisons, so at most N·(k + 1) calls. Each round is one stage
event; the whole bracket (pairs, per-comparison verdicts, byes) is in ``decision.details["bracket"]``.
"""

from __future__ import annotations

import asyncio
import random

from pydantic import BaseModel, ConfigDict, Field

from heavy.answers import equivalent
from heavy.prompts import pairwise_messages, parse_verdict
from heavy.strategy import AGGREGATOR_FAILURES, Context, Strategy, int_votes
from heavy.types import Decision, Hypothesis, Result
from heavy.voting import Tally, tally


class TournamentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=2, ge=1, le=15)
    """Judgments per comparison, alternating both orders (2 = each order once)."""
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    """Judge temperature (default: 0 when each order is judged at most once, 0.7 when k > 2 so that
    repeated judgments of the same order are independent)."""
    skip_equal: bool = True
    """Advance without judging when both candidates give equivalent answers."""
    shuffle_seed: int | None = None
    """Seed of the bracket's pairing (default: the run's sampling seed)."""


class Tournament(Strategy):
    """Knockout: candidates paired and judged k times in both orders; winners advance until one is left."""

    name = "tournament"
    Options = TournamentOptions

    async def run(self, ctx: Context) -> Result:
        o = self.options
        run = await ctx.sample()
        t = tally(run.hypotheses)
        alive = list(run.successes)
        random.Random(ctx.shuffle_seed(o.shuffle_seed)).shuffle(alive)
        temperature = o.temperature if o.temperature is not None else (0.0 if o.k <= 2 else 0.7)
        bracket: list[dict] = []
        judged = answered = 0
        stop_note = ""
        total_rounds = max(0, (len(alive) - 1).bit_length())
        while len(alive) > 1:
            stop_note = ctx.out_of_budget(f"before round {len(bracket) + 1}")
            if stop_note:
                break
            pairs = [(alive[i], alive[i + 1]) for i in range(0, len(alive) - 1, 2)]
            bye = alive[-1] if len(alive) % 2 else None
            rnd = len(bracket) + 1
            ctx.stage(f"round {rnd}/{total_rounds}", pairs=[[a.index, b.index] for a, b in pairs],
                      bye=bye.index if bye else None)
            results = await asyncio.gather(*(self._compare(ctx, a, b, t, rnd, temperature) for a, b in pairs))
            winners = [w for w, _ in results]
            records = [r for _, r in results]
            judged += sum(len(r["verdicts"]) for r in records)
            answered += sum(1 for r in records for v in r["verdicts"] if v["winner"] is not None)
            bracket.append({"round": rnd, "pairs": records, "bye": bye.index if bye else None})
            alive = winners + ([bye] if bye else [])
        details = {"bracket": bracket, "k": o.k, "judge_calls": judged, "max_calls": len(run.hypotheses) * (o.k + 1)}
        if judged and not answered:
            return ctx.decide_by_vote(run.hypotheses, path=["sample", "tournament", "vote"], details=details,
                                      why="no judge call gave a usable verdict; fell back to the vote.")
        survivors = len(alive)
        if survivors > 1:  # stopped by the budget: the best survivor by votes
            alive.sort(key=lambda h: (-t.count_of(h.answer), h.index))
        champion = alive[0]
        shared = (f"its answer {champion.answer!r} is shared by {int(t.count_of(champion.answer))} sample(s)"
                  if champion.answer else "")
        if survivors > 1:
            outcome = (f"of the {survivors} candidates still in the bracket after {len(bracket)} round(s), "
                       f"hypothesis #{champion.index} has the answer most samples share" + (f" ({shared})" if shared else ""))
        else:
            outcome = (f"hypothesis #{champion.index} won the knockout ({len(bracket)} round(s), {judged} judge calls)"
                       + (f"; {shared}" if shared else ""))
        rationale = (stop_note + " " if stop_note else "") + outcome
        path = ["sample"] + [f"round {r['round']}" for r in bracket] + (["budget spent"] if stop_note else []) + ["champion"]
        decision = Decision(method="tournament", path=path, rationale=rationale.strip(), votes=int_votes(t.counts),
                            no_answer=t.no_answer, winner=champion.index, details=details)
        return ctx.result(answer=champion.answer, text=champion.text, decision=decision)

    async def _compare(self, ctx: Context, a: Hypothesis, b: Hypothesis, t: Tally, rnd: int,
                       temperature: float) -> tuple[Hypothesis, dict]:
        o = self.options
        record: dict = {"a": a.index, "b": b.index, "verdicts": []}
        if o.skip_equal and a.answer is not None and equivalent(a.answer, b.answer):
            winner = min(a, b, key=lambda h: h.index)
            record.update(winner=winner.index, how="same answer, not judged")
            return winner, record
        wins = {a.index: 0, b.index: 0}

        async def judge(j: int) -> dict:
            first, second = (a, b) if j % 2 == 0 else (b, a)
            prompt = pairwise_messages(ctx.messages, ("A", first.text), ("B", second.text))
            verdict: dict = {"order": [first.index, second.index], "winner": None}
            try:
                call = await ctx.call(f"compare r{rnd} #{a.index} vs #{b.index}", prompt, stream=False,
                                      temperature=temperature)
            except AGGREGATOR_FAILURES as exc:
                verdict["error"] = type(exc).__name__
                return verdict
            label = parse_verdict(call.text, ["A", "B"])
            if label is not None:
                verdict["winner"] = (first if label == "A" else second).index
            return verdict

        record["verdicts"] = list(await asyncio.gather(*(judge(j) for j in range(o.k))))
        for v in record["verdicts"]:
            if v["winner"] is not None:
                wins[v["winner"]] += 1
        if wins[a.index] != wins[b.index]:
            winner = a if wins[a.index] > wins[b.index] else b
            how = f"majority {max(wins.values())}-{min(wins.values())} of {len(record['verdicts'])}"
        else:
            winner = min(a, b, key=lambda h: (-t.count_of(h.answer), h.index))
            how = f"tie {wins[a.index]}-{wins[b.index]}: more samples share its answer (then lower index)"
        record.update(winner=winner.index, how=how)
        return winner, record
