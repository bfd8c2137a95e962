"""Pieces shared by the built-in strategies (sampling to completion, vote decisions, candidate lists,
per-agent rounds, calls made as a given model, budget checks)."""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from heavy.errors import OptionsError, QuorumError
from heavy.prompts import decide_now_messages, labels, synthesize_messages
from heavy.sampler import ModelRef, SampleRun
from heavy.strategy import AGGREGATOR_FAILURES, Context
from heavy.tools.verify import verification_details
from heavy.types import AggregatorCall, Decision, Hypothesis, Message, Result, SamplingParams
from heavy.voting import Tally, tally

T = TypeVar("T")


async def sample_all(ctx: Context, *, early_stop: bool = False, params: SamplingParams | None = None) -> SampleRun:
    """Sample ``ctx.n`` hypotheses (with *params* instead of the run's, if given); with *early_stop*, stop
    once no outstanding vote can change the winner.

    Raises QuorumError when too few succeed.
    """
    ctx.stage("sample", n=ctx.n, models=[m.label for m in ctx.sampler.models])
    async with ctx.sampler.run(ctx.messages, ctx.n, params=params) as run:
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
    """A Decision recording the vote distribution (and any equivalent forms that were merged)."""
    if t.winner is None:
        rationale = "no hypothesis stated an extractable final answer"
    else:
        answered = t.total - t.no_answer
        rationale = (
            f"{_num(t.top_count)} of {answered} answers agree on {t.winner!r}"
            + (" (tie broken by lowest hypothesis index)" if t.tied else f", margin {_num(t.margin)}")
        )
    merges = t.describe_merges()
    return Decision(
        method=method, path=path, rationale=(why + " " + rationale).strip(), votes=int_votes(t.counts),
        no_answer=t.no_answer, winner=t.first_index.get(t.winner) if t.winner else None,
        details={"equivalence": merges} if merges else {},
    )


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def int_votes(counts: dict[str, Any]) -> dict[str, int]:
    """Decision.votes holds hypothesis counts; weighted tallies report their weights elsewhere."""
    return {a: int(round(c)) if not isinstance(c, int) else c for a, c in counts.items()}


def text_of(hypotheses: Sequence[Hypothesis], index: int | None) -> str:
    for h in hypotheses:
        if h.index == index:
            return h.text
    return ""


def decide_by_vote(ctx: Context, hypotheses: Sequence[Hypothesis], *, strategy: str, path: list[str], why: str = "",
                   details: dict[str, Any] | None = None, stopped_early: bool = False,
                   deadline_hit: bool = False) -> Result:
    """Majority vote over *hypotheses*; with no extractable answer, the first success; with no success at
    all, a QuorumError."""
    ok = [h for h in hypotheses if h.ok]
    if not ok:
        raise QuorumError("no hypothesis succeeded, so there is nothing to decide on", failures=list(hypotheses))
    t = tally(hypotheses)
    ctx.stage("vote", votes=int_votes(t.counts))
    if t.winner is None:
        first = ok[0]
        decision = vote_decision(t, path=path + ["first"], method="fallback:first", why=why)
        decision.winner = first.index
        decision.details.update(details or {})
        return ctx.result(strategy=strategy, answer=None, text=first.text, decision=decision,
                          stopped_early=stopped_early, deadline_hit=deadline_hit)
    decision = vote_decision(t, path=path, why=why)
    decision.details.update(details or {})
    checks = verification_details(hypotheses)
    if checks:
        decision.details["verification"] = checks
        lowered = sum(1 for c in checks.values() if c["verdict"] == "disagrees")
        decision.rationale += (f" ({len(checks)} answers checked by a program; {lowered} disagreed and "
                               "counted with a lower weight)")
    return ctx.result(strategy=strategy, answer=t.winner, text=text_of(hypotheses, decision.winner),
                      decision=decision, stopped_early=stopped_early, deadline_hit=deadline_hit)


def vote_result(ctx: Context, run: SampleRun, *, strategy: str, path: list[str], why: str = "",
                details: dict[str, Any] | None = None) -> Result:
    """Decide by majority vote; with no extractable answer at all, take the first successful hypothesis."""
    return decide_by_vote(ctx, run.hypotheses, strategy=strategy, path=path, why=why, details=details,
                          stopped_early=run.stopped_early, deadline_hit=run.deadline_hit)


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
    return await synthesize_over(ctx, run.hypotheses, strategy=strategy, path=path, shuffle=shuffle, seed=seed,
                                 stopped_early=run.stopped_early, deadline_hit=run.deadline_hit)


async def synthesize_over(ctx: Context, hypotheses: Sequence[Hypothesis], *, strategy: str, path: list[str],
                          shuffle: bool, seed: int | None, details: dict[str, Any] | None = None,
                          stopped_early: bool = False, deadline_hit: bool = False) -> Result:
    """Synthesize one answer from *hypotheses*; if the aggregator fails, vote (then first success)."""
    try:
        call = await synthesize(ctx, hypotheses, shuffle=shuffle, seed=seed)
    except AGGREGATOR_FAILURES as exc:
        return decide_by_vote(ctx, hypotheses, strategy=strategy, path=path + ["synthesize failed", "vote"],
                              why=f"aggregator failed ({type(exc).__name__}); fell back to the vote.",
                              details=details, stopped_early=stopped_early, deadline_hit=deadline_hit)
    t = tally(hypotheses)
    answer = ctx.sampler.extract(call.text)
    agreeing = t.count_of(answer) if answer else 0
    ok = sum(1 for h in hypotheses if h.ok)
    rationale = (
        f"{ctx.aggregator.label} synthesized a final answer from {ok} candidates"
        + (f"; its answer {answer!r} was given by {_num(agreeing)} of them" if answer else "")
    )
    decision = vote_decision(t, path=path + ["synthesize"], method="synthesize")
    decision.rationale = rationale
    decision.winner = None
    decision.details.update(details or {})
    return ctx.result(strategy=strategy, answer=answer, text=call.text, decision=decision,
                      stopped_early=stopped_early, deadline_hit=deadline_hit)


# --- multi-round strategies ------------------------------------------------------------------------


def budget_spent(ctx: Context) -> str | None:
    """Which per-run cap is spent (``"tokens"``/``"cost"``), checked before every round."""
    return ctx.run.exhausted()


def budget_note(spent: str, where: str) -> str:
    return f"the run's {spent} budget was spent {where}; ended with the best answer so far."


def agent_models(ctx: Context, k: int, offset: int = 0) -> list[ModelRef]:
    """Models of *k* agents, round-robin over the sampling models (starting at *offset*)."""
    models = ctx.sampler.models
    return [models[(i + offset) % len(models)] for i in range(k)]


def models_by_label(ctx: Context, wanted: Sequence[str], option: str) -> list[ModelRef]:
    """The sampling models named by *wanted* (labels as given with ``-m``); OptionsError for unknown ones."""
    known = {m.label: m for m in ctx.sampler.models}
    if ctx.aggregator.label not in known:
        known[ctx.aggregator.label] = ctx.aggregator
    missing = [w for w in wanted if w not in known]
    if missing:
        raise OptionsError(f"option {option}: unknown model label(s) {', '.join(missing)}; "
                           f"the run's models are: {', '.join(known)}")
    return [known[w] for w in wanted]


async def sample_each(ctx: Context, prompts: Sequence[Sequence[Message]], models: Sequence[ModelRef], *,
                      stage: str) -> list[Hypothesis]:
    """One hypothesis per prompt (prompt *i* to ``models[i]``), all in flight at once.

    Failures and budget cancellations are recorded hypotheses, never raised; the order is the prompts'.
    """
    runs = [ctx.sampler.run(p, 1, models=[m], stage=stage, min_successes=0) for p, m in zip(prompts, models)]

    async def drain(run: SampleRun) -> Hypothesis:
        async with run:
            async for _ in run:
                pass
        return run.hypotheses[0]

    return list(await asyncio.gather(*(drain(r) for r in runs)))


async def call_as(ctx: Context, ref: ModelRef, purpose: str, messages: Sequence[Message], *,
                  temperature: float | None = None) -> AggregatorCall:
    """A judge-type call made by *ref* itself (a peer ranking, a self-critique), recorded like every
    aggregator call; no fallback model, since the point is who makes it. Raises AGGREGATOR_FAILURES."""
    as_ref = copy.copy(ctx)  # shares the call log, the run state and the event sink
    as_ref.aggregator = ref
    as_ref.fallbacks = []
    if temperature is None:
        return await as_ref.call(purpose, messages, stream=False)
    return await as_ref.call(purpose, messages, stream=False, temperature=temperature)


def latest(previous: Sequence[Hypothesis], new: Sequence[Hypothesis]) -> list[Hypothesis]:
    """Per agent, the new hypothesis if it succeeded, else the agent's previous one."""
    return [n if n.ok else p for p, n in zip(previous, new)]


def unanimous(hypotheses: Sequence[Hypothesis]) -> bool:
    """Two or more answered hypotheses, every one with an extracted answer, all equivalent."""
    t = tally(hypotheses)
    return len(t.counts) == 1 and t.no_answer == 0 and t.total > 1


def answers_of(hypotheses: Sequence[Hypothesis]) -> list[str | None]:
    return [h.answer if h.ok else None for h in hypotheses]


async def decide(ctx: Context, purpose: str, prompt: Sequence[Message], parse: Callable[[str], T | None], *,
                 form: str, follow_ups: int = 1, ref: ModelRef | None = None,
                 stream: bool | None = False) -> tuple[T | None, list[AggregatorCall], str]:
    """A judge-type call whose reply must hold a parseable decision (a verdict, a ranking): ``(decision or
    None, the calls made, why it failed)``.

    A reply without one is followed up in the same conversation, asking only for the decision in *form*.
    On small models the usual cause is an analysis cut at max_tokens: the follow-up costs a few output
    tokens (and re-reads a prompt the server may have cached), where a fresh call would redo the analysis
    and likely be cut again. *ref* makes the call as that model (no fallback models), as :func:`call_as`;
    *stream* as in :meth:`Context.call` (None: the run's default, so a live view shows the analysis).
    """
    calls: list[AggregatorCall] = []
    messages = list(prompt)
    for attempt in range(1 + max(0, follow_ups)):
        name = purpose if attempt == 0 else f"{purpose}-retry"
        try:
            call = await (ctx.call(name, messages, stream=stream if attempt == 0 else False) if ref is None
                          else call_as(ctx, ref, name, messages))
        except AGGREGATOR_FAILURES as exc:
            return None, calls, f"{purpose} call failed ({type(exc).__name__})"
        calls.append(call)
        value = parse(call.text)
        if value is not None:
            return value, calls, ""
        messages = decide_now_messages(prompt, calls[0].text, form)
    return None, calls, f"{purpose} reply unparseable (no decision in it, even when asked for it alone)"
