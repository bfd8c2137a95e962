"""Pieces shared by the built-in strategies (sampling to completion, vote decisions, candidate lists)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from heavy.prompts import labels, synthesize_messages
from heavy.sampler import SampleRun
from heavy.strategy import AGGREGATOR_FAILURES, Context
from heavy.types import AggregatorCall, Decision, Hypothesis, Result
from heavy.voting import Tally, tally


async def sample_all(ctx: Context, *, early_stop: bool = False) -> SampleRun:
    """Sample ``ctx.n`` hypotheses; with *early_stop*, stop once no outstanding vote can change the winner.

    Raises QuorumError when too few succeed.
    """
    ctx.stage("sample", n=ctx.n, models=[m.label for m in ctx.sampler.models])
    async with ctx.sampler.run(ctx.messages, ctx.n) as run:
        async for _ in run:
            if early_stop and _decided(run.hypotheses, ctx.n):
                break
    run.check_quorum()
    return run


def _decided(done: Sequence[Hypothesis], n: int) -> bool:
    t = tally(done)
    remaining = n - len(done)
    return t.winner is not None and t.margin > remaining


def vote_decision(t: Tally, *, path: list[str], method: str = "vote", why: str = "") -> Decision:
    """A Decision recording the vote distribution."""
    if t.winner is None:
        rationale = "no hypothesis stated an extractable final answer"
    else:
        answered = t.total - t.no_answer
        rationale = (
            f"{t.top_count} of {answered} answers agree on {t.winner!r}"
            + (" (tie broken by lowest hypothesis index)" if t.tied else f", margin {t.margin}")
        )
    return Decision(
        method=method, path=path, rationale=(why + " " + rationale).strip(), votes=dict(t.counts),
        no_answer=t.no_answer, winner=t.first_index.get(t.winner) if t.winner else None,
    )


def text_of(hypotheses: Sequence[Hypothesis], index: int | None) -> str:
    for h in hypotheses:
        if h.index == index:
            return h.text
    return ""


def vote_result(ctx: Context, run: SampleRun, *, strategy: str, path: list[str], why: str = "") -> Result:
    """Decide by majority vote; with no extractable answer at all, take the first successful hypothesis."""
    t = tally(run.hypotheses)
    ctx.stage("vote", votes=dict(t.counts))
    if t.winner is None:
        first = run.successes[0]
        decision = vote_decision(t, path=path + ["first"], method="fallback:first", why=why)
        decision.winner = first.index
        return ctx.result(strategy=strategy, answer=None, text=first.text, decision=decision,
                          stopped_early=run.stopped_early, deadline_hit=run.deadline_hit)
    decision = vote_decision(t, path=path, why=why)
    return ctx.result(strategy=strategy, answer=t.winner, text=text_of(run.hypotheses, decision.winner),
                      decision=decision, stopped_early=run.stopped_early, deadline_hit=run.deadline_hit)


def shuffle_seed(ctx: Context, explicit: int | None) -> int | None:
    """The seed of a candidate order: the explicit option, else the run's sampling seed."""
    return explicit if explicit is not None else ctx.sampler.params.seed


def labelled(hypotheses: Sequence[Hypothesis], *, shuffle: bool, seed: int | None) -> list[tuple[str, Hypothesis]]:
    """Successful hypotheses under neutral labels A, B, …, in a shuffled order (position-bias guard)."""
    ok = [h for h in hypotheses if h.ok]
    if shuffle:
        random.Random(seed).shuffle(ok)
    return list(zip(labels(len(ok)), ok))


async def synthesize(ctx: Context, hypotheses: Sequence[Hypothesis], *, shuffle: bool = True,
                     seed: int | None = None) -> AggregatorCall:
    """Ask the aggregator to write one answer from all successful hypotheses (streamed when live)."""
    cands = labelled(hypotheses, shuffle=shuffle, seed=seed)
    ctx.stage("synthesize", candidates=len(cands), model=ctx.aggregator.label)
    prompt = synthesize_messages(ctx.messages, [(label, h.text) for label, h in cands])
    return await ctx.call("synthesize", prompt)


async def synthesize_or_vote(ctx: Context, run: SampleRun, *, strategy: str, path: list[str],
                             shuffle: bool, seed: int | None) -> Result:
    """Synthesize; if the aggregator fails, fall back to the vote (recorded in the decision)."""
    try:
        call = await synthesize(ctx, run.hypotheses, shuffle=shuffle, seed=seed)
    except AGGREGATOR_FAILURES as exc:
        return vote_result(ctx, run, strategy=strategy, path=path + ["synthesize failed", "vote"],
                           why=f"aggregator failed ({type(exc).__name__}); fell back to the vote.")
    t = tally(run.hypotheses)
    answer = ctx.sampler.extract(call.text)
    agreeing = t.counts.get(answer, 0) if answer else 0
    rationale = (
        f"{ctx.aggregator.label} synthesized a final answer from {len(run.successes)} candidates"
        + (f"; its answer {answer!r} was given by {agreeing} of them" if answer else "")
    )
    decision = vote_decision(t, path=path + ["synthesize"], method="synthesize")
    decision.rationale = rationale
    decision.winner = None
    return ctx.result(strategy=strategy, answer=answer, text=call.text, decision=decision,
                      stopped_early=run.stopped_early, deadline_hit=run.deadline_hit)
