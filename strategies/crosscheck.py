"""``crosscheck``: reasoning chains and executed programs check each other.

Two independent routes to an answer: a chain of thought (the run's ordinary prompt) and a program the
model writes and heavy runs in the sandbox (program-of-thought; :mod:`heavy.tools.program`). A 1.5B model
cannot judge which of its answers is right, but an answer it reaches by both routes is right far more
often than either route's majority: CoT×PoT ensembling settles most GSM8K questions with one agreeing
pair, and PROVE (a program check filtering the vote) reports +5 to +8 points over majority voting for 1–2B
models. The decision:

1. an answer reached by **both** routes wins if it also leads the vote or ties the lead (agreement
   breaks the tie; among several such answers the vote's deterministic order decides);
2. otherwise the majority vote over every answer (a failed program gives no vote): one stray program
   agreeing with a minority of chains does not overturn a clear majority.

By default a quarter of the N hypotheses are programs (6 chains + 2 programs at N = 8). Both the rule and
the split were chosen on 40 tuning questions (bench/crosscheck_rules.py: 80 % against the vote's 72.5 %,
where "any agreement wins" and a 4 + 4 split gave 77.5 %) and then measured on questions never used for
choosing (docs/benchmarks.md, "Verification by execution").

With ``early_stop`` (the default) sampling goes in waves: one chain and one program first; when they
agree the question cost two samples. Otherwise the rest of the N are sampled at once and sampling stops
the moment an answer reached by both routes leads every other answer. ``-o programs=1`` is a program-only
vote, ``-o programs=0`` a plain chain vote.

Candidate rules, off by default until a real-model measurement decides them (``heavy tune`` compares them):

* ``program_override=T``, a route-weighted decision: when the executed programs' leading answer holds at least
  the share T of the programs sampled (and at least two programs reached it) and the chains' majority names
  another answer, the program route wins. On the held-out GSM8K pool, 4 of the 14 questions both the vote and
  the cross-check missed had the 8 programs (nearly) unanimous on the right answer against a chain majority.
* ``verify=unsettled`` (with ``--verify python``): the first chain and program settle about half the questions
  with two samples; the check programs are spent only on the other half (the first chain is checked once the
  pair disagrees, every later chain as it arrives), instead of on every chain.

A chain whose reply is a program is run as one (its printed value is its answer, and it counts on the program
route); a reply cut off inside its program gives no answer (:mod:`heavy.tools.program`).

Chains are plain completions even when hypotheses may use tools (a chain that ran code would not be an
independent route). Programs run only where the user enabled the python tool (``--tools python``; ``heavy serve --tools
python`` for the proxy); the run's sandbox limits apply.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from heavy import constants as C
from heavy.errors import OptionsError, QuorumError
from heavy.sampler import SampleRound
from heavy.strategy import Context, Strategy, text_of, vote_decision
from heavy.tools.program import program_step
from heavy.types import PROGRAM_ROUTE, Hypothesis, Result
from heavy.voting import Tally, tally

__all__ = ["CrossCheck", "CrossCheckOptions", "RouteSample", "cross_check", "decide_agreed", "decide_by_programs",
           "program_route_winner", "route_support", "sample_routes"]


class CrossCheckOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    programs: float = Field(default=C.CROSSCHECK_PROGRAMS, ge=0.0, le=1.0)
    """Share of the N hypotheses sampled as programs (the rest are reasoning chains)."""
    early_stop: bool = True
    """Sample one chain and one program first; stop as soon as an answer reached by both routes leads."""
    program_override: float | None = Field(default=None, ge=0.5, le=1.0)
    """Route-weighted decision (off: None): the programs' leading answer wins over a chain majority naming
    another answer when it holds at least this share of the programs sampled (and two programs or more)."""
    verify: Literal["all", "unsettled"] = "all"
    """With --verify python: check every chain (all), or only when the first chain and program disagree
    (unsettled; needs early_stop)."""

    @model_validator(mode="after")
    def _verify_needs_early_stop(self) -> "CrossCheckOptions":
        if self.verify == "unsettled" and not self.early_stop:
            raise ValueError("verify=unsettled checks the questions the first chain and program leave unsettled, "
                             "which needs early_stop=true")
        return self


class CrossCheck(Strategy):
    """Chains and executed programs cross-check: an answer both routes reach wins if it leads or ties the vote."""

    name = "crosscheck"
    Options = CrossCheckOptions
    runs_code = True

    async def run(self, ctx: Context) -> Result:
        o = self.options
        return await cross_check(ctx, programs=o.programs, early_stop=o.early_stop,
                                 program_override=o.program_override, verify=o.verify)


def split(n: int, programs: float) -> tuple[int, int]:
    """(chains, programs) of *n* hypotheses with a *programs* share; both routes get one when n >= 2."""
    p = round(n * programs)
    if n >= 2 and 0.0 < programs < 1.0:
        p = min(max(p, 1), n - 1)
    return n - p, p


def route_support(t: Tally, hypotheses: Sequence[Hypothesis]) -> dict[str, dict[str, int]]:
    """Counted answer → how many reasoning chains and executed programs gave it (or an equivalent form).

    What counts is how the answer was reached, not what was asked for: a program hypothesis that replied
    in prose is a chain, a chain that replied with a program that ran is a program."""
    support: dict[str, dict[str, int]] = {}
    for h in hypotheses:
        if not h.ok or h.answer is None:
            continue
        form = t.canonical(h.answer)
        if form is None:
            continue
        route = "program" if program_step(h) is not None else "chain"
        counts = support.setdefault(form, {"chain": 0, "program": 0})
        counts[route] += 1
    return support


def agreed(t: Tally, support: dict[str, dict[str, int]], *, leading: bool = True) -> list[str]:
    """Answers reached by both routes, best first (the tally's order: most votes, then lowest index).

    With *leading* (what the decision uses) only those that lead the vote or tie the lead."""
    both = [a for a in t.ranking if support.get(a, {}).get("chain") and support.get(a, {}).get("program")]
    return [a for a in both if t.counts[a] == t.top_count] if leading else both


def _settled(hypotheses: Sequence[Hypothesis]) -> bool:
    """An answer reached by both routes leads every other answer outright."""
    t = tally(hypotheses)
    both = agreed(t, route_support(t, hypotheses))
    if not both:
        return False
    lead = t.counts[both[0]]
    return all(t.counts[a] < lead for a in t.ranking if a != both[0])


async def _gather(runs: Sequence[SampleRound], stop: Any) -> None:
    """Drain *runs* concurrently until all are done or ``stop(done)`` says enough."""
    queue: asyncio.Queue[Hypothesis | None] = asyncio.Queue()

    async def pump(run: SampleRound) -> None:
        try:
            async for h in run:
                await queue.put(h)
        finally:
            await queue.put(None)

    pumps = [asyncio.create_task(pump(r)) for r in runs]
    try:
        open_runs, done = len(pumps), []
        while open_runs:
            h = await queue.get()
            if h is None:
                open_runs -= 1
                continue
            done.append(h)
            if stop(done):
                break
    finally:
        for p in pumps:
            p.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


@dataclass
class RouteSample:
    """What :func:`sample_routes` sampled: every hypothesis (both routes) and how sampling ended."""

    hypotheses: list[Hypothesis]
    chains: int
    programs: int
    stopped_early: bool = False
    deadline_hit: bool = False

    @property
    def details(self) -> dict[str, Any]:
        """The decision's account of the routes: planned, sampled, and each answer's support."""
        hyps = self.hypotheses
        return {"routes": route_support(tally(hyps), hyps),
                "planned": {"chains": self.chains, "programs": self.programs},
                "sampled": {"chains": sum(1 for h in hyps if h.route != PROGRAM_ROUTE and h.status != "cancelled"),
                            "programs": sum(1 for h in hyps if h.route == PROGRAM_ROUTE and h.status != "cancelled")}}

    def agreed(self, *, leading: bool = True) -> list[str]:
        """Answers both routes reached (with *leading*, only those that lead or tie the vote)."""
        t = tally(self.hypotheses)
        return agreed(t, route_support(t, self.hypotheses), leading=leading)

    def why_no_agreement(self) -> str:
        """Why the vote decides: no answer had both routes, or those that had were outvoted."""
        outvoted = self.agreed(leading=False)
        if outvoted:
            return (f"reached by both a chain and a program but outvoted: {', '.join(map(repr, outvoted))}; "
                    "majority vote over all answers.")
        return "no answer was reached by both a chain and a program: majority vote over all answers."


async def sample_routes(ctx: Context, *, programs: float = C.CROSSCHECK_PROGRAMS,
                        early_stop: bool = True, verify: str = "all") -> RouteSample:
    """Sample ``ctx.n`` hypotheses, a *programs* share of them as programs; with *early_stop*, one chain and
    one program first, then the rest, stopping once an answer reached by both routes leads. How sampling
    ended becomes the run's flags (``ctx.stopped_early``, ``ctx.deadline_hit``). With ``verify="unsettled"``
    ``--verify``'s checks start only once a wave leaves the question unsettled (the chains sampled before
    are checked then)."""
    if programs > 0 and not ctx.sampler.can_run_code:
        raise OptionsError(f"strategy {ctx.strategy!r} runs the programs it samples: enable the python tool "
                           "(`heavy ask --tools python`, Heavy(tools=['python']), `heavy serve --tools python`)")
    n_chain, n_prog = split(ctx.n, programs)
    ctx.stage("sample", n=ctx.n, chains=n_chain, programs=n_prog, models=[m.label for m in ctx.sampler.models])
    out = RouteSample([], n_chain, n_prog)
    waves = [(n_chain, n_prog)]
    if early_stop and n_chain and n_prog and ctx.n > 2:
        waves = [(1, 1), (n_chain - 1, n_prog - 1)]
    checking = verify != "unsettled"
    for i, (c, p) in enumerate(waves):
        if i:  # a wave of its own (the live view shows it; heavy tune counts the waves a decision waited for)
            ctx.stage("sample", wave=i + 1, chains=c, programs=p)
        runs = []
        async with contextlib.AsyncExitStack() as stack:  # leaving it cancels what is still running
            if c:
                # Chains reason without tools: a chain that ran code would not be a route independent of programs.
                runs.append(await stack.enter_async_context(ctx.sampler.round(ctx.messages, c, tools=False,
                                                                            verify=checking)))
            if p:
                runs.append(await stack.enter_async_context(ctx.sampler.round(ctx.messages, p, route=PROGRAM_ROUTE)))
            before = list(out.hypotheses)
            await _gather(runs, (lambda done: _settled([*before, *done])) if early_stop else (lambda done: False))
        for r in runs:
            out.hypotheses.extend(r.hypotheses)
            out.stopped_early |= r.stopped_early
            out.deadline_hit |= r.deadline_hit
        if early_stop and _settled(out.hypotheses):
            out.stopped_early = out.stopped_early or i + 1 < len(waves)
            break
        if not checking:  # unsettled: from here on every chain is checked, those already sampled first
            checking = True
            out.hypotheses = [await ctx.sampler.verify_later(h, ctx.messages) for h in out.hypotheses]
        if out.deadline_hit or any(r.budget_hit for r in runs):
            break
    ctx.stopped_early |= out.stopped_early
    ctx.deadline_hit |= out.deadline_hit
    ok = [h for h in out.hypotheses if h.ok]
    if not ok or len(ok) < min(ctx.sampler.min_successes, len(out.hypotheses)):
        raise QuorumError("too few hypotheses succeeded to decide", failures=out.hypotheses)
    return out


async def cross_check(ctx: Context, *, programs: float = C.CROSSCHECK_PROGRAMS, early_stop: bool = True,
                      path: Sequence[str] = (), program_override: float | None = None,
                      verify: str = "all") -> Result:
    """Sample chains and programs (``ctx.n`` in all) and decide by leading cross-route agreement, then by vote
    (with *program_override*, a near-unanimous program route against the chains' majority wins first)."""
    sample = await sample_routes(ctx, programs=programs, early_stop=early_stop, verify=verify)
    if program_override is not None:
        won = program_route_winner(sample.hypotheses, program_override)
        if won is not None:
            return decide_by_programs(ctx, sample, won, program_override,
                                      path=[*path, "sample", "chain+program", "program route"])
    if sample.agreed():
        return decide_agreed(ctx, sample, path=[*path, "sample", "chain+program", "agree"])
    only = "programs" if sample.programs else "chains"
    why = sample.why_no_agreement() if sample.chains and sample.programs else f"{only} only: majority vote."
    return ctx.decide_by_vote(sample.hypotheses, path=[*path, "sample", "chain+program", "vote"], why=why,
                              details=sample.details)


def decide_agreed(ctx: Context, sample: RouteSample, *, path: list[str]) -> Result:
    """The leading answer reached by both routes wins; the Result says by how many of each."""
    hypotheses = sample.hypotheses
    t = tally(hypotheses)
    support = route_support(t, hypotheses)
    both = agreed(t, support)
    winner = both[0]
    s = support[winner]
    ctx.stage("agree", answer=winner, chains=s["chain"], programs=s["program"])
    decision = vote_decision(t, path=path, method="crosscheck")
    first = min(h.index for h in hypotheses if h.ok and h.answer is not None and t.canonical(h.answer) == winner)
    decision.winner = first
    runner_up = max((t.counts[a] for a in t.ranking if a != winner), default=0)
    others = agreed(t, support, leading=False)
    ok = sum(1 for h in hypotheses if h.ok)
    decision.rationale = (
        f"{s['chain']} reasoning chain(s) and {s['program']} executed program(s) agree on {winner!r} "
        f"({t.counts[winner]} of {t.total - t.no_answer} answers; the best other answer has {runner_up})"
        + (f"; {len(others) - 1} other answer(s) also had both routes" if len(others) > 1 else "")
        + (f"; stopped after {ok} samples" if sample.stopped_early else "") + "."
    )
    decision.details.update(sample.details)
    return ctx.result(answer=winner, text=text_of(hypotheses, first), decision=decision)


def program_route_winner(hypotheses: Sequence[Hypothesis], threshold: float) -> str | None:
    """The programs' leading answer when it holds at least *threshold* of the programs sampled (cancelled ones
    aside; a failed program counts against it), at least two programs reached it, and the chains' leading
    answer is another one; else None."""
    t = tally(hypotheses)
    ran = [h for h in hypotheses if h.status != "cancelled" and (h.route == PROGRAM_ROUTE or program_step(h))]
    support = route_support(t, hypotheses)
    programs = sorted(support, key=lambda a: (-support[a]["program"], t.ranking.index(a)))
    chains = sorted(support, key=lambda a: (-support[a]["chain"], t.ranking.index(a)))
    if not programs or not ran:
        return None
    best = programs[0]
    count = support[best]["program"]
    if count < 2 or count / len(ran) < threshold:
        return None
    if not chains or support[chains[0]]["chain"] == 0 or chains[0] == best:
        return None  # no chain majority to override (or it agrees): the ordinary rule decides
    return best


def decide_by_programs(ctx: Context, sample: RouteSample, winner: str, threshold: float, *,
                       path: list[str]) -> Result:
    """The route-weighted decision: the near-unanimous program route's answer wins; the Result says by how much."""
    hypotheses = sample.hypotheses
    t = tally(hypotheses)
    support = route_support(t, hypotheses)
    ran = sum(1 for h in hypotheses if h.status != "cancelled" and (h.route == PROGRAM_ROUTE or program_step(h)))
    chain_top = max(support, key=lambda a: (support[a]["chain"], -t.ranking.index(a)))
    ctx.stage("program route", answer=winner, programs=support[winner]["program"], of=ran)
    decision = vote_decision(t, path=path, method="crosscheck")
    first = min(h.index for h in hypotheses if h.ok and h.answer is not None and program_step(h) is not None
                and t.canonical(h.answer) == winner)
    decision.winner = first
    decision.rationale = (
        f"{support[winner]['program']} of {ran} executed programs agree on {winner!r} (at least {threshold:.0%}), "
        f"against the reasoning chains' majority {chain_top!r} ({support[chain_top]['chain']} chain(s)): the "
        "program route wins (program_override)."
    )
    decision.details.update(sample.details)
    return ctx.result(answer=winner, text=text_of(hypotheses, first), decision=decision)
