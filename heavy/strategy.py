"""The strategy extension point and its entry-point registry.

A strategy gets a :class:`Context` and returns a :class:`~heavy.types.Result`. It reaches models only
through the context: ``ctx.sampler`` for hypotheses and ``ctx.call`` for judge/aggregator prompts.

Strategies register in the ``heavy.strategies`` entry-point group; the built-ins in ``strategies/``
register through heavy's own pyproject exactly as a third-party package would::

    [project.entry-points."heavy.strategies"]
    mine = "my_package.mine:Mine"

The core never imports a strategy by name: :func:`load_strategy` looks it up.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from importlib.metadata import EntryPoint
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from . import constants as C
from .errors import BudgetExceeded, OptionsError, ProviderError, StrategyNotFound, describe_validation
from .events import AggregatorDelta, EventSink, StageStarted
from .registry import load, registered
from .run import RunState, collecting_notes
from .sampler import ModelRef, Sampler, call_model
from .types import AggregatorCall, Decision, Hypothesis, Message, Result, SamplingParams, Timings, Usage

__all__ = ["Strategy", "NoOptions", "Context", "load_strategy", "registered_strategies", "ENTRY_POINT_GROUP",
           "AGGREGATOR_FAILURES"]

ENTRY_POINT_GROUP = "heavy.strategies"

#: What ``Context.call`` raises when no aggregator answer can be had: strategies catch these and fall
#: back (to the vote, then to the first successful hypothesis).
AGGREGATOR_FAILURES = (ProviderError, BudgetExceeded)


class NoOptions(BaseModel):
    """Options model of a strategy that takes none (still rejects unknown keys)."""

    model_config = ConfigDict(extra="forbid")


class Context:
    """What a strategy works with for one run."""

    def __init__(
        self,
        *,
        messages: Sequence[Message],
        n: int,
        sampler: Sampler,
        aggregator: ModelRef,
        emit: EventSink,
        stream_aggregator: bool = False,
        aggregator_timeout: float | None = None,
        max_tokens: int | None = None,
        fallbacks: Sequence[ModelRef] = (),
        run: RunState | None = None,
    ) -> None:
        self.messages = list(messages)
        self.fallbacks = [f for f in fallbacks if f.label != aggregator.label]
        self.run = run or RunState()
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

    def stage(self, name: str, **detail: Any) -> None:
        """Announce a strategy step (shown live by the CLI, streamed by the proxy)."""
        if name != "sample" and self.sampling_done is None:
            self.sampling_done = time.monotonic()
        self.emit(StageStarted(name=name, detail=detail or None))

    async def call(self, purpose: str, messages: Sequence[Message], *, stream: bool | None = None,
                   temperature: float = C.AGGREGATOR_TEMPERATURE) -> AggregatorCall:
        """One judge/aggregator call; recorded in the Result whatever happens.

        The aggregator model is tried first, then each fallback model in turn. When all fail the last
        error is raised (so the strategy falls back to the vote); :class:`BudgetExceeded` is raised
        without calling anything when the run's budget is spent. Catch :data:`AGGREGATOR_FAILURES`.
        """
        spent = self.run.exhausted()
        if spent:
            self.calls.append(AggregatorCall(purpose=purpose, model=self.aggregator.label,
                                             error=f"not called: the run's {spent} budget is spent"))
            raise BudgetExceeded(spent, f"the run's {spent} budget is spent")
        params = SamplingParams(temperature=temperature, max_tokens=self.max_tokens)
        streaming = self.stream_aggregator if stream is None else stream

        def on_delta(text: str, reasoning: str) -> None:
            if text:
                self.emit(AggregatorDelta(purpose=purpose, text=text))

        refs = [self.aggregator, *self.fallbacks]
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
            self.run.charge(ref.label, c.usage)
            self.calls.append(record)
            return record
        raise AssertionError("unreachable: refs is never empty")

    def result(self, *, strategy: str, answer: str | None, text: str, decision: Decision,
               stopped_early: bool = False, deadline_hit: bool = False) -> Result:
        """Assemble the Result: all hypotheses sampled in this run, all calls, usage and timings."""
        now = time.monotonic()
        hyps: list[Hypothesis] = sorted(self.sampler.hypotheses, key=lambda h: h.index)
        sampled_until = self.sampling_done or now
        usage = Usage.sum([h.usage for h in hyps] + [c.usage for c in self.calls])
        return Result(
            answer=answer if answer is not None else text.strip(),
            text=text,
            strategy=strategy,
            decision=decision,
            hypotheses=hyps,
            aggregator_calls=list(self.calls),
            usage=usage,
            timings=Timings(started_at=time.time() - (now - self.started), total_s=now - self.started,
                            sampling_s=sampled_until - self.started, aggregation_s=now - sampled_until),
            stopped_early=stopped_early,
            deadline_hit=deadline_hit,
            budget_hit=self.run.exhausted(),
            cost_usd=self.run.cost_usd,
            retries=self.run.retries_used,
        )


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
