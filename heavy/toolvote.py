"""Deciding between calling the caller's tools and answering, and which call to make.

When the caller offers tools of its own (``Heavy.ask(tools=...)``, the ``tools`` of a ``heavy serve``
request), each hypothesis either answers or calls some of them. Whatever strategy was asked for, a run
then goes like this (:class:`heavy.Heavy` drives it; nothing here knows a strategy by name):

1. **Sample** N hypotheses, each offered the tools.
2. **Call or answer**: the side more successful hypotheses took wins.
3. **Which call**: the calls are voted on by *signature*: the tool names and their arguments in canonical
   form (:func:`canonical`: JSON key order and whitespace do not matter, ``1`` and ``1.0`` are one number,
   strings are compared without surrounding whitespace), leaving out the argument names to ignore
   (``ignore_args``: ``NAME`` for every tool, ``TOOL.NAME`` for one). A hypothesis making several calls
   at once has one signature for all of them. A signature held by more than half of the callers wins;
   the calls returned are its first hypothesis's, with fresh ``call_...`` ids.
4. **Answer**: the requested strategy decides among the hypotheses that answered (they are replayed to
   it: no new samples of this turn), and the Result says that a tool vote came first.

Undecided cases, a tie between calling and answering or calls that agree on no signature by a majority
(free-form arguments spread the votes), go to the **aggregator when one is configured**
(``aggregator_model``): it sees the conversation, the tools, and each distinct call (plus the first answer,
on a tie) under neutral labels and picks one (:data:`TOOL_VOTE_INSTRUCTION`). **Without one**, or when its
reply picks nothing, a deterministic rule decides: a tie between calling and answering **calls** (an
agent that fetches what it lacks is safer than one that guesses), and among calls the signature with the
most votes wins, a tie going to the one whose first hypothesis has the lowest index.

The decision is recorded like any other: ``Decision.votes`` are the votes per signature, ``path`` has
``tool-vote``, ``details["tool_vote"]`` the counts, and an aggregator's call is in ``aggregator_calls``.
"""

from __future__ import annotations

import json
import math
import time
import unicodedata
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from .prompts import labels, parse_candidates, parse_verdict, render_question
from .strategy import AGGREGATOR_FAILURES, Context
from .types import AggregatorCall, ClientTools, Decision, Hypothesis, Message, Result, Timings, ToolCall, Usage

__all__ = ["canonical", "signature", "ToolTally", "tally", "ToolVerdict", "decide", "tool_result", "with_answer",
           "tool_vote_messages", "read_candidates", "TOOL_VOTE_INSTRUCTION", "TOOL_VOTE_PURPOSE", "ANSWER_CANDIDATE",
           "CALL_CANDIDATE"]

#: ``AggregatorCall.purpose`` of the aggregator's pick on an undecided tool vote.
TOOL_VOTE_PURPOSE = "tool-vote"
TOOL_VOTE_SYSTEM = (
    "You decide an agent's next step. Several independent attempts at the same turn either call one of the "
    "available tools or answer directly. Labels and order carry no meaning."
)
TOOL_VOTE_INSTRUCTION = (
    "Decide which candidate is the best next step: the call whose tool and arguments fit the conversation best, "
    "or the answer if no call is needed. Finish with one last line of the exact form `VERDICT: <label>`."
)
#: First line of a candidate that calls tools / that answers (the simulator reads them back).
CALL_CANDIDATE, ANSWER_CANDIDATE = "CALL", "ANSWER"
#: Distinct calls shown to the aggregator at most (the most voted).
_MAX_CANDIDATES = 8
_INVALID = "<arguments that are not a JSON object>"


def canonical(value: Any) -> Any:
    """*value* in the form that compares equal whenever two arguments mean the same: keys sorted,
    integral numbers as integers (``1.0`` is ``1``), strings without surrounding whitespace and in Unicode
    NFC. Booleans stay booleans (``True`` is not ``1``)."""
    if isinstance(value, dict):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value.strip())
    return value


def _call_text(call: ToolCall, ignore: Collection[str]) -> str:
    if call.arguments_error:
        return f"{call.name}({_INVALID})"
    kept = {k: v for k, v in call.arguments.items() if k not in ignore and f"{call.name}.{k}" not in ignore}
    return f"{call.name}({json.dumps(canonical(kept), separators=(',', ':'), ensure_ascii=False)})"


def signature(calls: Sequence[ToolCall], ignore: Collection[str] = ()) -> str:
    """One text for the calls a hypothesis made, equal for calls that mean the same (see :func:`canonical`):
    ``get_weather({"city":"Paris"})``; several calls are sorted and joined by `` + ``."""
    return " + ".join(sorted(_call_text(c, ignore) for c in calls))


@dataclass
class ToolTally:
    """The successful hypotheses split into callers and answerers, and the callers grouped by signature
    (most votes first, ties by the lowest index)."""

    callers: list[Hypothesis]
    answerers: list[Hypothesis]
    groups: dict[str, list[Hypothesis]] = field(default_factory=dict)

    @property
    def votes(self) -> dict[str, int]:
        return {sig: len(hyps) for sig, hyps in self.groups.items()}

    @property
    def leader(self) -> str | None:
        """The signature with the most votes (ties: the lowest first index); readable calls before others."""
        valid = [sig for sig in self.groups if _INVALID not in sig]
        return (valid or list(self.groups) or [None])[0]


def tally(hypotheses: Sequence[Hypothesis], ignore: Collection[str] = ()) -> ToolTally:
    """Split *hypotheses* (failed ones are left out) and group the calls by :func:`signature`."""
    ok = sorted((h for h in hypotheses if h.ok), key=lambda h: h.index)
    callers = [h for h in ok if h.tool_calls]
    groups: dict[str, list[Hypothesis]] = {}
    for h in callers:
        groups.setdefault(signature(h.tool_calls or [], ignore), []).append(h)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0].index))
    return ToolTally(callers=callers, answerers=[h for h in ok if not h.tool_calls], groups=dict(ranked))


@dataclass
class ToolVerdict:
    """What the tool vote decided: to call (``signature``, its first hypothesis ``winner``) or to answer."""

    call: bool
    tally: ToolTally
    signature: str | None = None
    winner: Hypothesis | None = None
    path: list[str] = field(default_factory=list)
    rationale: str = ""
    deadline_hit: bool = False
    stopped_early: bool = False

    def calls(self) -> list[ToolCall]:
        """The calls to return: the winner's, each with a fresh OpenAI-style id."""
        assert self.winner is not None and self.winner.tool_calls
        return [c.model_copy(update={"id": f"call_{uuid.uuid4().hex[:24]}", "extra": None})
                for c in self.winner.tool_calls]

    def summary(self) -> dict[str, Any]:
        """The counts, for ``Decision.details["tool_vote"]``."""
        return {"calls": len(self.tally.callers), "answers": len(self.tally.answerers), "votes": self.tally.votes,
                "decided": "call" if self.call else "answer"}


async def decide(ctx: Context, *, tools: ClientTools, ignore: Collection[str] = (),
                 use_aggregator: bool = False) -> ToolVerdict:
    """Sample ``ctx.n`` hypotheses (each offered *tools* by the context's sampler) and decide whether the turn
    calls tools, and which calls (see the module docstring). ``use_aggregator``: undecided cases go to the
    context's aggregator first."""
    run = await ctx.sample(stage=None)
    t = tally(run.hypotheses, ignore)
    k, m = len(t.callers), len(t.answerers)
    verdict = ToolVerdict(call=k > m, tally=t, path=["sample", "tool-vote"], deadline_hit=run.deadline_hit,
                          stopped_early=run.stopped_early)
    ctx.stage("tool-vote", calls=k, answers=m)
    split = f"{k} of {k + m} successful hypotheses call a tool and {m} answer{'s' if m == 1 else ''}"
    if not k:
        verdict.rationale = f"{split}: the answer is decided among them."
        return verdict
    leader = t.leader
    assert leader is not None
    majority = len(t.groups[leader]) * 2 > k
    if k != m and (k < m or majority):
        verdict.rationale = split + (f"; {len(t.groups[leader])} of {k} calls agree on {leader}." if k > m
                                     else ": the answer is decided among those that answer.")
        return _pick(verdict, leader) if k > m else verdict
    why = "calling and answering tie" if k == m else f"no call has a majority ({_shares(t, k)})"
    if use_aggregator:
        picked = await _ask_aggregator(ctx, verdict, tools, tie=k == m)
        if picked is not None:
            verdict.path.append("aggregator")
            verdict.rationale = f"{split}; {why}: the aggregator chose " + (
                f"to call {picked}." if picked != ANSWER_CANDIDATE else "to answer.")
            return _pick(verdict, picked) if picked != ANSWER_CANDIDATE else verdict
        verdict.path.append("fallback:rule")
    else:
        verdict.path.append("rule")
    verdict.rationale = (f"{split}; {why}: by heavy's rule a tie between calling and answering calls, and the most "
                         f"voted call wins (ties: the earliest hypothesis): {leader}.")
    return _pick(verdict, leader)


def _shares(t: ToolTally, k: int) -> str:
    return ", ".join(f"{n} of {k}" for n in list(t.votes.values())[:4]) + (" …" if len(t.votes) > 4 else "")


def _pick(verdict: ToolVerdict, sig: str) -> ToolVerdict:
    verdict.call, verdict.signature, verdict.winner = True, sig, verdict.tally.groups[sig][0]
    return verdict


async def _ask_aggregator(ctx: Context, verdict: ToolVerdict, tools: ClientTools, tie: bool) -> str | None:
    """The signature the aggregator picks (or :data:`ANSWER_CANDIDATE`), or ``None`` if it picks nothing."""
    t = verdict.tally
    options: list[tuple[str, str]] = []
    for sig, hyps in list(t.groups.items())[:_MAX_CANDIDATES]:
        calls = "\n".join(f"{c.name} {json.dumps(c.arguments, ensure_ascii=False)}" for c in hyps[0].tool_calls or [])
        options.append((sig, f"{CALL_CANDIDATE}\n{calls}"))
    if tie and t.answerers:
        options.append((ANSWER_CANDIDATE, f"{ANSWER_CANDIDATE}\n{t.answerers[0].text.strip()}"))
    names = labels(len(options))
    try:
        call = await ctx.call(TOOL_VOTE_PURPOSE, tool_vote_messages(ctx.messages, tools, [
            (label, body) for label, (_, body) in zip(names, options)]))
    except AGGREGATOR_FAILURES:
        return None
    label = parse_verdict(call.text, names)
    return options[names.index(label)][0] if label is not None else None


def tool_vote_messages(messages: Sequence[Message], tools: ClientTools,
                       candidates: Sequence[tuple[str, str]]) -> list[Message]:
    """The aggregator's prompt: the conversation, the tools, the labelled *candidates* ``[(label, text)]``
    (each starting with :data:`CALL_CANDIDATE` and one call per line, or :data:`ANSWER_CANDIDATE`)."""
    listed = "\n".join(f"- {t.name}: {t.description or '(no description)'} parameters "
                       f"{json.dumps(t.parameters, ensure_ascii=False)}" for t in tools.specs)
    blocks = "\n\n".join(f'<candidate id="{label}">\n{text}\n</candidate>' for label, text in candidates)
    body = (f"Question:\n<question>\n{render_question(messages)}\n</question>\n\nAvailable tools:\n{listed}\n\n"
            f"Candidates:\n\n{blocks}\n\n{TOOL_VOTE_INSTRUCTION}")
    return [Message(role="system", content=TOOL_VOTE_SYSTEM), Message(role="user", content=body)]


def read_candidates(prompt: str) -> list[tuple[str, str, list[tuple[str, dict]] | None]]:
    """Inverse of :func:`tool_vote_messages` for the simulator: ``(label, answer text, calls)`` per candidate,
    ``calls`` ``[(name, arguments)]`` for a call candidate and ``None`` for an answer."""
    out: list[tuple[str, str, list[tuple[str, dict]] | None]] = []
    for label, body in parse_candidates(prompt)[1]:
        head, _, rest = body.partition("\n")
        if head != CALL_CANDIDATE:
            out.append((label, rest, None))
            continue
        calls = []
        for line in rest.splitlines():
            name, _, args = line.partition(" ")
            try:
                parsed = json.loads(args) if args else {}
            except ValueError:
                parsed = {}
            calls.append((name, parsed if isinstance(parsed, dict) else {}))
        out.append((label, "", calls))
    return out


def _decision(verdict: ToolVerdict, extra: dict[str, Any] | None = None) -> Decision:
    return Decision(method="tool-vote", path=verdict.path, rationale=verdict.rationale, votes=verdict.tally.votes,
                    winner=verdict.winner.index if verdict.winner else None,
                    details={"tool_vote": verdict.summary(), **(extra or {})})


def tool_result(ctx: Context, verdict: ToolVerdict) -> Result:
    """The Result of a turn decided for calling: the winner's calls (fresh ids) and its text, if it wrote any."""
    result = ctx.result(answer=verdict.signature, text=verdict.winner.text if verdict.winner else "",
                        decision=_decision(verdict))
    return result.model_copy(update={"tool_calls": verdict.calls()})


def with_answer(result: Result, verdict: ToolVerdict, ctx: Context) -> Result:
    """The strategy's *result* (decided among the answerers, replayed to it) with the tool vote in front: the
    callers and the failures of the first sampling appended (numbered after the strategy's hypotheses), the
    tool-vote step in the path and details, its aggregator call, the whole run's usage and time."""
    top = max((h.index for h in result.hypotheses), default=-1)
    answered = {id(h) for h in verdict.tally.answerers}
    rest = [h for h in ctx.sampler.hypotheses if id(h) not in answered]
    extra = [h.model_copy(update={"index": top + 1 + i}) for i, h in enumerate(sorted(rest, key=lambda h: h.index))]
    hypotheses = [*result.hypotheses, *extra]
    calls: list[AggregatorCall] = [*ctx.calls, *result.aggregator_calls]
    d = result.decision
    decision = d.model_copy(update={
        "path": [*verdict.path, *[p for p in d.path if p != "sample"]],
        "rationale": f"{verdict.rationale} {d.rationale}".strip(),
        "details": {**d.details, "tool_vote": verdict.summary()}})
    now = time.monotonic()
    total = now - ctx.started
    sampling = min(total, (ctx.sampling_done or now) - ctx.started + result.timings.sampling_s)
    timings = Timings(started_at=time.time() - total, total_s=total, sampling_s=sampling, aggregation_s=total - sampling)
    return result.model_copy(update={
        "hypotheses": hypotheses, "aggregator_calls": calls, "decision": decision, "timings": timings,
        "usage": Usage.sum([h.usage for h in hypotheses] + [c.usage for c in calls]),
        "deadline_hit": result.deadline_hit or verdict.deadline_hit})
