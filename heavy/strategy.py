"""The strategy extension point, its toolkit, and its entry-point registry.

A strategy gets a :class:`Context` and returns a :class:`~heavy.types.Result`. It reaches models only
through the context, whose methods are the toolkit every built-in strategy uses too:

* sampling: :meth:`Context.sample` (N hypotheses with the quorum check and a stage event),
  :meth:`Context.sample_each` (one hypothesis per prompt: a debate round, a revision);
* aggregator calls: :meth:`Context.call` (``model=`` makes the call as one model, without fallback),
  :meth:`Context.call_parsed` (a reply that must hold a parseable decision);
* deciding: :meth:`Context.decide_by_vote`, :meth:`Context.synthesize`, :meth:`Context.single_success`;
* the answer: :meth:`Context.result` fills in the strategy's name, the run's flags, every hypothesis and call.

Pure helpers over hypotheses sit beside it: :func:`vote_decision`, :func:`labelled`, :func:`int_votes`,
:func:`text_of`, :func:`unanimous`, :func:`answers_of`.

Strategies register in the ``heavy.strategies`` entry-point group; the built-ins in ``strategies/``
register through heavy's own pyproject exactly as a third-party package would::

    [project.entry-points."heavy.strategies"]
    mine = "my_package.mine:Mine"

The core never imports a strategy by name: :func:`load_strategy` looks it up.
"""

from __future__ import annotations

import asyncio
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from . import constants as C
from .errors import BudgetExceeded, OptionsError, ProviderError, QuorumError, StrategyNotFound, describe_validation
from .events import AggregatorDelta, EventSink, StageStarted
from .prompts import decide_now_messages, labels, synthesize_messages
from .registry import load, registered
from .ledger import Ledger, collecting_notes
from .sampler import ModelRef, Sampler, SampleRound, call_model
from .tools.verify import verification_details
from .types import AggregatorCall, Decision, Hypothesis, Message, Result, SamplingParams, Timings, Usage
from .voting import Tally, tally

__all__ = ["Strategy", "NoOptions", "Context", "load_strategy", "registered_strategies", "ENTRY_POINT_GROUP",
           "AGGREGATOR_FAILURES", "vote_decision", "labelled", "int_votes", "text_of", "unanimous", "answers_of"]

ENTRY_POINT_GROUP = "heavy.strategies"

#: What ``Context.call`` raises when no aggregator answer can be had: strategies catch these and fall
#: back (to the vote, then to the first successful hypothesis).
AGGREGATOR_FAILURES = (ProviderError, BudgetExceeded)

T = TypeVar("T")


class NoOptions(BaseModel):
    """Options model of a strategy that takes none (still rejects unknown keys)."""

    model_config = ConfigDict(extra="forbid")


# --- pure helpers over hypotheses ------------------------------------------------------------------


def int_votes(counts: dict[str, Any]) -> dict[str, int]:
    """Decision.votes holds hypothesis counts; weighted tallies report their weights elsewhere."""
    return {a: int(round(c)) if not isinstance(c, int) else c for a, c in counts.items()}


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def vote_decision(t: Tally, *, path: list[str], method: str = "vote", why: str = "") -> Decision:
    """A Decision recording the vote distribution of *t* (and any equivalent forms that were merged), its
    winner, and a rationale that starts with *why*."""
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


def text_of(hypotheses: Sequence[Hypothesis], index: int | None) -> str:
    """The text of the hypothesis numbered *index* ("" if there is none)."""
    return next((h.text for h in hypotheses if h.index == index), "")


def labelled(hypotheses: Sequence[Hypothesis], *, shuffle: bool, seed: int | None) -> list[tuple[str, Hypothesis]]:
    """Successful hypotheses under neutral labels A, B, …, in a shuffled order (position-bias guard)."""
    ok = [h for h in hypotheses if h.ok]
    if shuffle:
        random.Random(seed).shuffle(ok)
    return list(zip(labels(len(ok)), ok))


def unanimous(hypotheses: Sequence[Hypothesis]) -> bool:
    """Two or more answered hypotheses, every one with an extracted answer, all equivalent."""
    t = tally(hypotheses)
    return len(t.counts) == 1 and t.no_answer == 0 and t.total > 1


def answers_of(hypotheses: Sequence[Hypothesis]) -> list[str | None]:
    """Each hypothesis's extracted answer (None for a failure), in order."""
    return [h.answer if h.ok else None for h in hypotheses]


# --- the context -----------------------------------------------------------------------------------


class Context:
    """What a strategy works with for one run, and the toolkit it decides with.

    ``strategy`` is the name of the strategy it runs for (set by whoever runs it: :class:`heavy.Heavy`);
    :meth:`result` puts it in the Result. ``stopped_early`` and ``deadline_hit`` are the run's flags:
    :meth:`sample` sets them from how its sampling ended, a strategy that samples by other means (its own
    ``ctx.sampler.round`` loop) sets them itself, and :meth:`result` reports them.
    """

    def __init__(
        self,
        *,
        strategy: str,
        messages: Sequence[Message],
        n: int,
        sampler: Sampler,
        aggregator: ModelRef,
        emit: EventSink,
        stream_aggregator: bool = False,
        aggregator_timeout: float | None = None,
        max_tokens: int | None = None,
        fallbacks: Sequence[ModelRef] = (),
        ledger: Ledger | None = None,
    ) -> None:
        self.strategy = strategy
        self.messages = list(messages)
        self.fallbacks = [f for f in fallbacks if f.label != aggregator.label]
        self.ledger = ledger or Ledger()
        self.n = n
        self.sampler = sampler
        self.aggregator = aggregator
        self.emit = emit
        self.stream_aggregator = stream_aggregator
        self.aggregator_timeout = aggregator_timeout
        self.max_tokens = max_tokens
        self.calls: list[AggregatorCall] = []
        self.started = time.monotonic()
        self.sampling_done: float | None = None
        self.stopped_early = False
        self.deadline_hit = False

    def stage(self, name: str, **detail: Any) -> None:
        """Announce a strategy step (shown live by the CLI, streamed by the proxy)."""
        if name != "sample" and self.sampling_done is None:
            self.sampling_done = time.monotonic()
        self.emit(StageStarted(name=name, detail=detail or None))

    # --- sampling ----------------------------------------------------------------------------------

    async def sample(self, n: int | None = None, *, stage: str | None = "sample", detail: dict[str, Any] | None = None,
                     models: Sequence[ModelRef] | None = None, params: SamplingParams | None = None,
                     min_successes: int | None = None,
                     until: Callable[[list[Hypothesis]], bool] | None = None) -> SampleRound:
        """Sample *n* hypotheses of the question (default ``ctx.n``), announced as the stage *stage* (its
        *detail*, default ``n=n``, then the models; None announces nothing), and return the finished run.

        *models* are round-robined (default: the run's sampling models), *params* replace the run's
        sampling parameters; ``until(done)`` returning True stops sampling early (the rest is cancelled).
        Raises :class:`~heavy.errors.QuorumError` when fewer than *min_successes* (default: the run's)
        succeed. How it ended (stopped early, deadline) goes into the Result.
        """
        n = self.n if n is None else n
        refs = list(models or self.sampler.models)
        if stage is not None:
            self.stage(stage, **(detail if detail is not None else {"n": n}), models=[m.label for m in refs])
        run = await self.sampler.round(self.messages, n, params=params, models=refs,
                                     min_successes=min_successes).collect(until)
        self.stopped_early |= run.stopped_early
        self.deadline_hit |= run.deadline_hit
        return run

    async def sample_each(self, prompts: Sequence[Sequence[Message]], models: Sequence[ModelRef], *,
                          stage: str) -> list[Hypothesis]:
        """One hypothesis per prompt (prompt *i* to ``models[i]``), all in flight at once: a round of
        agents (a debate round, a revision, an aggregation step).

        Failures and budget cancellations are recorded hypotheses, never raised; the order is the prompts'.
        The Result's flags stay those of :meth:`sample` (how sampling the question itself ended).
        """
        runs = [self.sampler.round(p, 1, models=[m], stage=stage, min_successes=0) for p, m in zip(prompts, models)]
        return [run.hypotheses[0] for run in await asyncio.gather(*(r.collect() for r in runs))]

    def agent_models(self, k: int, offset: int = 0) -> list[ModelRef]:
        """Models of *k* agents, round-robin over the sampling models (starting at *offset*)."""
        models = self.sampler.models
        return [models[(i + offset) % len(models)] for i in range(k)]

    def models_by_label(self, wanted: Sequence[str], option: str) -> list[ModelRef]:
        """The run's models named by *wanted* (labels as given with ``-m``, or the aggregator's); an
        OptionsError naming *option* for unknown ones."""
        known = {m.label: m for m in self.sampler.models}
        known.setdefault(self.aggregator.label, self.aggregator)
        missing = [w for w in wanted if w not in known]
        if missing:
            raise OptionsError(f"option {option}: unknown model label(s) {', '.join(missing)}; "
                               f"the run's models are: {', '.join(known)}")
        return [known[w] for w in wanted]

    def shuffle_seed(self, explicit: int | None) -> int | None:
        """The seed of a candidate order: the explicit option, else the run's sampling seed."""
        return explicit if explicit is not None else self.sampler.params.seed

    def out_of_budget(self, where: str) -> str:
        """Empty while the run's token and cost caps last; once one is spent, the note a multi-round strategy
        ends with (*where*: "before round 2 of 3"). Check it before every round."""
        spent = self.ledger.exhausted()
        return f"the run's {spent} budget was spent {where}; ended with the best answer so far." if spent else ""

    # --- aggregator calls --------------------------------------------------------------------------

    async def call(self, purpose: str, messages: Sequence[Message], *, stream: bool | None = None,
                   temperature: float = C.AGGREGATOR_TEMPERATURE, model: ModelRef | None = None) -> AggregatorCall:
        """One judge/aggregator call; recorded in the Result whatever happens.

        The aggregator model is tried first, then each fallback model in turn; with *model* the call is made
        by that model alone (a peer ranking, a self-critique: who makes it is the point). When all fail
        the last error is raised (so the strategy falls back to the vote); :class:`BudgetExceeded` is
        raised without calling anything when the run's budget is spent. Catch :data:`AGGREGATOR_FAILURES`.
        """
        refs = [model] if model is not None else [self.aggregator, *self.fallbacks]
        spent = self.ledger.exhausted()
        if spent:
            self.calls.append(AggregatorCall(purpose=purpose, model=refs[0].label,
                                             error=f"not called: the run's {spent} budget is spent"))
            raise BudgetExceeded(spent, f"the run's {spent} budget is spent")
        params = SamplingParams(temperature=temperature, max_tokens=self.max_tokens)
        streaming = self.stream_aggregator if stream is None else stream

        def on_delta(text: str, reasoning: str) -> None:
            if text:
                self.emit(AggregatorDelta(purpose=purpose, text=text))

        for i, ref in enumerate(refs):
            started = time.monotonic()
            with collecting_notes() as notes:
                try:
                    c = await call_model(ref, messages, params, stream=streaming, on_delta=on_delta,
                                         timeout=self.aggregator_timeout)
                except ProviderError as exc:
                    self.calls.append(AggregatorCall(purpose=purpose, model=ref.label, error=str(exc),
                                                     latency_s=time.monotonic() - started, trace=list(notes) or None))
                    if i + 1 == len(refs):
                        raise
                    continue
            record = AggregatorCall(purpose=purpose if i == 0 else f"{purpose} (fallback model)", model=ref.label,
                                    text=c.text, usage=c.usage, latency_s=time.monotonic() - started,
                                    trace=list(notes) or None)
            self.ledger.charge(ref.label, c.usage)
            self.calls.append(record)
            return record
        raise AssertionError("unreachable: refs is never empty")

    async def call_parsed(self, purpose: str, prompt: Sequence[Message], parse: Callable[[str], T | None], *,
                          form: str, follow_ups: int = 1, model: ModelRef | None = None,
                          stream: bool | None = False) -> tuple[T | None, list[AggregatorCall], str]:
        """A judge-type call whose reply must hold a parseable decision (a verdict, a ranking): ``(parse's
        value or None, the calls made, why it failed)``; never raises for a failed call.

        A reply without one is followed up in the same conversation, asking only for the decision in *form*.
        On small models the usual cause is an analysis cut at max_tokens: the follow-up costs a few output
        tokens (and re-reads a prompt the server may have cached), where a fresh call would redo the analysis
        and likely be cut again. *model* and *stream* (None: the run's default, so a live view shows the
        analysis) are those of :meth:`call`.
        """
        calls: list[AggregatorCall] = []
        messages = list(prompt)
        for attempt in range(1 + max(0, follow_ups)):
            name = purpose if attempt == 0 else f"{purpose}-retry"
            try:
                call = await self.call(name, messages, stream=stream if attempt == 0 else False, model=model)
            except AGGREGATOR_FAILURES as exc:
                return None, calls, f"{purpose} call failed ({type(exc).__name__})"
            calls.append(call)
            value = parse(call.text)
            if value is not None:
                return value, calls, ""
            messages = decide_now_messages(prompt, calls[0].text, form)
        return None, calls, f"{purpose} reply unparseable (no decision in it, even when asked for it alone)"

    # --- deciding ----------------------------------------------------------------------------------

    def decide_by_vote(self, hypotheses: Sequence[Hypothesis], *, path: list[str], why: str = "",
                       details: dict[str, Any] | None = None) -> Result:
        """Majority vote over *hypotheses* (announced as the stage "vote"); with no extractable answer, the
        first success; with no success at all, a QuorumError. *why* opens the rationale, *details* go into
        the decision's details."""
        ok = _successes(hypotheses)
        t = tally(hypotheses)
        self.stage("vote", votes=int_votes(t.counts))
        if t.winner is None:
            first = ok[0]
            decision = vote_decision(t, path=path + ["first"], method="fallback:first", why=why)
            decision.winner = first.index
            decision.details.update(details or {})
            return self.result(answer=None, text=first.text, decision=decision)
        decision = vote_decision(t, path=path, why=why)
        decision.details.update(details or {})
        checks = verification_details(hypotheses)
        if checks:
            decision.details["verification"] = checks
            lowered = sum(1 for c in checks.values() if c["verdict"] == "disagrees")
            decision.rationale += (f" ({len(checks)} answers checked by a program; {lowered} disagreed and "
                                   "counted with a lower weight)")
        return self.result(answer=t.winner, text=text_of(hypotheses, decision.winner), decision=decision)

    async def synthesize(self, hypotheses: Sequence[Hypothesis], *, path: list[str], shuffle: bool = True,
                         seed: int | None = None, details: dict[str, Any] | None = None) -> Result:
        """The aggregator writes one answer from the successful *hypotheses* (under neutral labels, shuffled
        with *seed*; streamed when live); if it fails, :meth:`decide_by_vote` decides and says so."""
        _successes(hypotheses)
        cands = labelled(hypotheses, shuffle=shuffle, seed=seed)
        self.stage("synthesize", candidates=len(cands), model=self.aggregator.label)
        try:
            call = await self.call("synthesize", synthesize_messages(self.messages, [(lb, h.text) for lb, h in cands]))
        except AGGREGATOR_FAILURES as exc:
            return self.decide_by_vote(hypotheses, path=path + ["synthesize failed", "vote"], details=details,
                                       why=f"aggregator failed ({type(exc).__name__}); fell back to the vote.")
        t = tally(hypotheses)
        answer = self.sampler.extract(call.text)
        agreeing = t.count_of(answer) if answer else 0
        decision = vote_decision(t, path=path + ["synthesize"], method="synthesize")
        decision.rationale = (
            f"{self.aggregator.label} synthesized a final answer from {len(cands)} candidates"
            + (f"; its answer {answer!r} was given by {_num(agreeing)} of them" if answer else "")
        )
        decision.winner = None
        decision.details.update(details or {})
        return self.result(answer=answer, text=call.text, decision=decision)

    def single_success(self, hypotheses: Sequence[Hypothesis], *, method: str, path: list[str],
                       nothing_to: str = "compare") -> Result | None:
        """When exactly one of *hypotheses* succeeded there is nothing to compare: the Result that answers
        with it (the vote recorded, *path* taken). Otherwise None, and the strategy goes on."""
        ok = [h for h in hypotheses if h.ok]
        if len(ok) != 1:
            return None
        only, t = ok[0], tally(hypotheses)
        decision = Decision(method=method, path=path, winner=only.index, votes=int_votes(t.counts),
                            rationale=f"only one hypothesis succeeded; nothing to {nothing_to}", no_answer=t.no_answer)
        return self.result(answer=only.answer, text=only.text, decision=decision)

    def result(self, *, answer: str | None, text: str, decision: Decision) -> Result:
        """The Result of this run: *answer* (None: the text), *text* and *decision*, with the strategy's
        name, the run's flags, every hypothesis sampled, every call, summed usage and timings."""
        now = time.monotonic()
        hyps: list[Hypothesis] = sorted(self.sampler.hypotheses, key=lambda h: h.index)
        sampled_until = self.sampling_done or now
        usage = Usage.sum([h.usage for h in hyps] + [c.usage for c in self.calls])
        return Result(
            answer=answer if answer is not None else text.strip(),
            text=text,
            strategy=self.strategy,
            decision=decision,
            hypotheses=hyps,
            aggregator_calls=list(self.calls),
            usage=usage,
            timings=Timings(started_at=time.time() - (now - self.started), total_s=now - self.started,
                            sampling_s=sampled_until - self.started, aggregation_s=now - sampled_until),
            stopped_early=self.stopped_early,
            deadline_hit=self.deadline_hit,
            budget_hit=self.ledger.exhausted(),
            cost_usd=self.ledger.cost_usd,
            retries=self.ledger.retries_used,
        )


def _successes(hypotheses: Sequence[Hypothesis]) -> list[Hypothesis]:
    """The successful hypotheses; a QuorumError when there are none, since nothing can be decided."""
    ok = [h for h in hypotheses if h.ok]
    if not ok:
        raise QuorumError("no hypothesis succeeded, so there is nothing to decide on", failures=list(hypotheses))
    return ok
class Strategy(ABC):
    """Base class of every strategy: one async method, :meth:`run`.

    Subclasses set ``name`` and, when they take options, ``Options`` (a pydantic model with
    ``extra="forbid"``; the CLI's ``-o key=value`` flags and library ``**options`` validate against it).
    The first line of the class docstring is the one-line summary ``heavy strategies`` prints.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel | dict[str, Any] | None = None) -> None:
        self.options = self.parse_options(options)

    @classmethod
    def parse_options(cls, options: BaseModel | dict[str, Any] | None) -> Any:
        if isinstance(options, cls.Options):
            return options
        data = options.model_dump() if isinstance(options, BaseModel) else dict(options or {})
        try:
            return cls.Options.model_validate(data)
        except ValidationError as exc:
            problems = describe_validation(exc)
            known = ", ".join(cls.Options.model_fields) or "none"
            raise OptionsError(f"strategy {cls.name!r}: {problems} (known options: {known})") from None

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @abstractmethod
    async def run(self, ctx: Context) -> Result:
        """Decide one answer for ``ctx.messages``."""


def registered_strategies() -> dict[str, EntryPoint]:
    """Name → entry point of every installed strategy (nothing is imported)."""
    return registered(ENTRY_POINT_GROUP)


def load_strategy(name: str) -> type[Strategy]:
    """Import and return the strategy class registered as *name*."""
    return load(ENTRY_POINT_GROUP, name, Strategy, StrategyNotFound)
