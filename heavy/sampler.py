"""Fan-out of N hypotheses over one or more models.

The sampler is the only road from strategies to the sampling models. Its promises:

* **Parallel**: all N requests are in flight at once (bounded only by each provider's concurrency
  limit), so N calls of latency L take about L. (The run's fan-out may trade this for a cheaper prompt:
  :mod:`heavy.fanout` staggers them behind the first, or makes them choices of one request.)
* **Isolated failures**: each task ends as a hypothesis, a recorded failure or a recorded
  cancellation; one failure never cancels its siblings.
* **As they complete**: a :class:`SampleRound` yields hypotheses in completion order, so a strategy can
  stop early (leaving the ``async with`` block cancels what is still running).
* **Deadline**: past the run's deadline outstanding calls are cancelled and recorded, and iteration ends
  with what arrived.
* **Quorum**: fewer than ``min_successes`` successes raise :class:`QuorumError` carrying every failure.
* **Routes**: ``run(..., route="program")`` samples program hypotheses (the model writes Python, the
  sandbox runs it, what it printed is the answer); a chain whose reply is only a program is run the same
  way. Both need the python tool (``python=``); without it, no code ever runs.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import constants as C
from .errors import (BudgetExceeded, FatalRequestError, HeavyError, OptionsError, ProviderError, ProviderTimeout,
                     QuorumError, StreamInterrupted)
from .events import (EventSink, HypothesisFailed, HypothesisFinished, HypothesisRestarted, HypothesisStarted,
                     TokenDelta, broadcast)
from .ledger import charge, collecting_notes, current_ledger
from .providers.base import Completion, CompletionRequest, Provider
from .answers import is_code_answer
from .types import PROGRAM_ROUTE, ClientTools, Hypothesis, Message, SamplingParams, ToolChoice, ToolSpec, Usage

if TYPE_CHECKING:
    from .tools.agent import AgentConfig
    from .tools.python import PythonTool
    from .tools.verify import Verifier

__all__ = ["ModelRef", "Sampler", "ReplaySampler", "SampleRound", "call_model", "check_n", "replay_pace"]

#: Set (``heavy tune``), a replay serves each recorded hypothesis after its recorded latency times this factor
#: instead of at once: samples arrive in the order they did when they were sampled, so a strategy that stops
#: early (vote's early_stop, adaptive) stops where it would have live and cancels the rest, as it would have.
replay_pace: ContextVar[float | None] = ContextVar("heavy_replay_pace", default=None)


def check_n(n: object) -> int:
    """*n* if it is a valid number of hypotheses (1 .. ``MAX_N``), else :class:`OptionsError` naming the limit."""
    try:
        if isinstance(n, bool):
            raise TypeError
        n = operator.index(n)  # any integer type (numpy's too), never a float or a string
    except TypeError:
        raise OptionsError(f"n must be a whole number of hypotheses, not {n!r}") from None
    if n < 1:
        raise OptionsError(f"n must be at least 1 (got {n})")
    if n > C.MAX_N:
        raise OptionsError(f"n must be at most {C.MAX_N} (heavy's MAX_N hypotheses per run; got {n})")
    return n


@dataclass(frozen=True)
class ModelRef:
    """A model to sample from: the spec label shown to users, its provider and its model id."""

    label: str
    provider: Provider
    model: str


async def call_model(
    ref: ModelRef,
    messages: Sequence[Message],
    params: SamplingParams,
    *,
    stream: bool,
    on_delta: Callable[[str, str], None] | None = None,
    timeout: float | None = None,
    tools: Sequence[ToolSpec] | None = None,
    tool_choice: ToolChoice | None = None,
    parallel_tool_calls: bool | None = None,
) -> Completion:
    """One call through *ref*'s provider, streaming when asked (``on_delta(text, reasoning)`` per piece);
    *tools* are offered for native tool calls (``tool_choice``, ``parallel_tool_calls`` with them)."""
    request = CompletionRequest(model=ref.model, messages=list(messages), params=params,
                                tools=list(tools) if tools else None, tool_choice=tool_choice if tools else None,
                                parallel_tool_calls=parallel_tool_calls if tools else None)

    async def go() -> Completion:
        if not stream:
            return await ref.provider.complete(request)
        final: Completion | None = None
        async for item in ref.provider.stream(request):
            if isinstance(item, Completion):
                final = item
            elif on_delta is not None:
                on_delta(item.text, item.reasoning)
        if final is None:
            raise ProviderError("stream ended without a final completion", provider=ref.provider.name, model=ref.model)
        return final

    if timeout is None:
        return await go()
    try:
        async with asyncio.timeout(timeout):
            return await go()
    except TimeoutError:
        raise ProviderTimeout(f"no answer within {timeout:g} s", provider=ref.provider.name, model=ref.model) from None


class Sampler:
    """Samples hypotheses for one run.

    ``deadline`` is an absolute ``time.monotonic()`` instant for the whole run; ``timeout`` bounds each
    hypothesis; ``extract`` turns a hypothesis text into its final answer (``None`` if it has none).
    """

    def __init__(
        self,
        models: Sequence[ModelRef],
        *,
        params: SamplingParams,
        extract: Callable[[str], str | None],
        emit: EventSink | None = None,
        stream: bool = False,
        timeout: float | None = None,
        deadline: float | None = None,
        min_successes: int = 1,
        agent: "AgentConfig | None" = None,
        verifier: "Verifier | None" = None,
        python: "PythonTool | None" = None,
        client_tools: ClientTools | None = None,
    ) -> None:
        if not models:
            raise ValueError("the sampler needs at least one model")
        self.models = list(models)
        self.params = params
        self.extract = extract
        self.emit = broadcast(emit)
        self.stream = stream
        self.timeout = timeout
        self.deadline = deadline
        self.min_successes = min_successes
        self.agent = agent  # tools the hypotheses may run (None: plain completions)
        self.verifier = verifier  # checks numeric answers with a program (--verify python)
        self.client_tools = client_tools  # the caller's tools: a hypothesis may answer by calling them
        self.programs = None  # runs program hypotheses; only where the user enabled the python tool
        if python is not None:
            from .tools.program import ProgramRunner

            self.programs = ProgramRunner(python)
        self.hypotheses: list[Hypothesis] = []  # every hypothesis of every SampleRound, for the Result
        self.fatal: dict[str, FatalRequestError] = {}  # model label -> the request error that stops it
        self._streamed: dict[int, list[int]] = {}
        self._next_index = 0

    def round(
        self,
        messages: Sequence[Message],
        n: int,
        *,
        params: SamplingParams | None = None,
        models: Sequence[ModelRef] | None = None,
        stage: str = "sample",
        min_successes: int | None = None,
        route: str | None = None,
        tools: bool = True,
        verify: bool = True,
    ) -> "SampleRound":
        """Start *n* hypotheses (round-robin over *models*); use as ``async with ... as run``.

        ``route=PROGRAM_ROUTE`` asks each for a program and runs it (needs :attr:`can_run_code`);
        ``tools=False`` samples plain completions even when hypotheses may use tools (a reasoning chain
        meant to be independent of executed programs); ``verify=False`` leaves ``--verify``'s checks for
        later (:meth:`verify_later`: a strategy that checks only where its first samples disagree)."""
        check_n(n)
        if route not in (None, PROGRAM_ROUTE):
            raise OptionsError(f"unknown route {route!r}; the routes are chains (None) and {PROGRAM_ROUTE!r}")
        if route == PROGRAM_ROUTE and self.programs is None:
            raise OptionsError("program hypotheses run code: enable the python tool (`--tools python`, "
                               "Heavy(tools=['python']), `heavy serve --tools python`)")
        start = self._next_index
        self._next_index += n
        return SampleRound(
            self, list(messages), n, start, params or self.params, list(models or self.models), stage,
            self.min_successes if min_successes is None else min_successes, route, tools, verify,
        )

    @property
    def can_run_code(self) -> bool:
        """True when the user enabled the python tool, so program hypotheses may run."""
        return self.programs is not None

    async def sample(self, messages: Sequence[Message], n: int, **kwargs: Any) -> list[Hypothesis]:
        """Run *n* hypotheses to completion (or the deadline); return them all in index order."""
        return (await self.round(messages, n, **kwargs).collect()).hypotheses

    async def _one(self, index: int, ref: ModelRef, messages: list[Message], params: SamplingParams,
                   stage: str, route: str | None = None, tools: bool = True, verify: bool = True) -> Hypothesis:
        seed = params.seed + index if params.seed is not None else None
        if seed is not None:
            params = params.with_seed(seed)
        self.emit(HypothesisStarted(index=index, model=ref.label, stage=stage))
        started = time.monotonic()
        streamed = [0]  # characters received, to estimate the usage of a call cancelled mid-stream
        self._streamed[index] = streamed

        def on_delta(text: str, reasoning: str) -> None:
            streamed[0] += len(text) + len(reasoning)
            self.emit(TokenDelta(index=index, text=text, reasoning=reasoning))

        client = self.client_tools if route != PROGRAM_ROUTE else None
        offer: dict[str, Any] = {"tool_choice": client.choice, "parallel_tool_calls": client.parallel} if client else {}

        def call(msgs: list[Message], tools: list[ToolSpec] | None) -> Any:
            return call_model(ref, msgs, params, stream=self.stream, on_delta=on_delta,
                              tools=[*(tools or []), *(client.specs if client else [])], **offer)

        prompt = messages
        if route == PROGRAM_ROUTE:
            from .tools.program import program_messages

            prompt = program_messages(messages)

        with collecting_notes() as notes:
            restarts = 0
            while True:
                steps = None
                try:
                    if self.agent is None or route == PROGRAM_ROUTE or not tools:  # heavy runs a program itself
                        c = await call_model(ref, prompt, params, stream=self.stream, on_delta=on_delta,
                                             timeout=self.timeout, tools=client.specs if client else None, **offer)
                    else:
                        c, steps = await self._agent(ref, messages, call, index)
                except StreamInterrupted as exc:
                    if restarts < C.STREAM_RESTARTS:
                        restarts += 1
                        notes.append(f"stream broke after {streamed[0]} characters ({exc.status or 'no status'}); "
                                     "re-sampled from scratch")
                        self.emit(HypothesisRestarted(index=index, reason=str(exc)))
                        continue
                    h = _failed(index, ref, seed, started, exc)
                except HeavyError as exc:
                    h = _failed(index, ref, seed, started, exc)
                    if isinstance(exc, FatalRequestError):
                        self.fatal.setdefault(ref.label, exc)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a provider bug must not sink the run; record it like any failure
                    h = _failed(index, ref, seed, started, exc)
                else:
                    h = Hypothesis(
                        index=index, model=ref.label, text=c.text, reasoning=c.reasoning,
                        answer=self.extract(c.text), finish_reason=c.finish_reason, usage=c.usage,
                        latency_s=time.monotonic() - started, seed=seed, request_id=c.request_id, logprobs=c.logprobs,
                        steps=steps or None, route=route, tool_calls=(c.tool_calls or None) if client else None,
                    )
                    if not h.tool_calls:  # a hypothesis that calls the caller's tools has no answer to check yet
                        h = await self._checked(h, messages, call, verify=verify)
                    h.latency_s = time.monotonic() - started
                break
            if notes:
                h.trace = list(notes)
        charge(ref.label, h.usage)
        self.emit(HypothesisFinished(hypothesis=h) if h.ok else HypothesisFailed(hypothesis=h))
        return h

    async def _checked(self, h: Hypothesis, messages: list[Message], call: Any, *, verify: bool = True) -> Hypothesis:
        """*h* after what runs on every answer: its program (a program hypothesis, or a chain that answered
        with code) where code may run, then (with *verify*) ``--verify``'s check of a chain's numeric answer."""
        if self.programs is not None and (h.route == PROGRAM_ROUTE or is_code_answer(h.answer)):
            return await self.programs.execute(h, emit=self.emit)
        if verify and self.verifier is not None and h.route != PROGRAM_ROUTE:
            return await self.verifier.check(h, messages, call, emit=self.emit)
        return h

    async def verify_later(self, h: Hypothesis, messages: Sequence[Message]) -> Hypothesis:
        """*h*, sampled with ``verify=False``, checked now by ``--verify`` (its check call is charged to the
        run, and the run's record of *h* is replaced by the checked one). Unchanged when there is no
        verifier, *h* failed, is a program, or was checked already."""
        from .tools.program import program_step

        if (self.verifier is None or not h.ok or h.route == PROGRAM_ROUTE or program_step(h) is not None
                or any(s.protocol == "verify" for s in h.steps or [])):
            return h
        ref = next((m for m in self.models if m.label == h.model), self.models[0])
        params = self.params.with_seed(h.seed) if h.seed is not None else self.params

        def call(msgs: list[Message], tools: list[ToolSpec] | None) -> Any:
            return call_model(ref, msgs, params, stream=False, tools=tools)

        checked = await self.verifier.check(h, messages, call, emit=self.emit)
        if checked.usage != h.usage:
            charge(ref.label, checked.usage - h.usage)
        self.hypotheses = [checked if x.index == h.index else x for x in self.hypotheses]
        return checked

    async def _agent(self, ref: ModelRef, messages: list[Message], call: Any, index: int) -> Any:
        """The hypothesis as an agent loop (the timeout bounds the whole loop, tool runs included)."""
        assert self.agent is not None
        client = self.client_tools.names if self.client_tools else set()
        if self.timeout is None:
            return await self.agent.run(ref.label, messages, call, index=index, emit=self.emit, client=client)
        try:
            async with asyncio.timeout(self.timeout):
                return await self.agent.run(ref.label, messages, call, index=index, emit=self.emit, client=client)
        except TimeoutError:
            raise ProviderTimeout(f"no answer within {self.timeout:g} s (agent loop)", provider=ref.provider.name,
                                  model=ref.model) from None

    def cancelled(self, index: int, ref: ModelRef, why: str, messages: Sequence[Message],
                  route: str | None = None) -> Hypothesis:
        """The record of a hypothesis cancelled before it finished, with its usage estimated (and charged):
        the prompt was sent and whatever streamed was generated, so both are paid for."""
        chars = self._streamed.get(index, [0])[0]
        sent = index in self._streamed
        usage = Usage(prompt_tokens=sum(len(m.text()) for m in messages) // 4 if sent else 0,
                      completion_tokens=chars // 4)
        charge(ref.label, usage)
        return Hypothesis(index=index, model=ref.label, status="cancelled", error=why, error_type="Cancelled",
                          usage=usage, usage_estimated=sent, route=route)


class ReplaySampler(Sampler):
    """A sampler that first serves recorded hypotheses of the same question, in order (per route: chains
    and programs each from their own part of the pool), and samples live only once the pool is used up
    (``live=False``: never for that prompt) or for other prompts: the later rounds of generating
    strategies (a debate round, a revision) are new work, like a judge's call.

    What runs on an answer runs again on a replayed one: answers are extracted anew, programs are
    executed anew, and ``--verify`` checks answers the pool has no check for (its calls are live, like
    a judge's). So replays are decided by today's code on identical samples.

    This is how strategies are compared on identical samples, and how accuracy-vs-N curves cost no new
    sampling calls: every strategy sees the same pool, and only judge/aggregator calls are made.
    """

    def __init__(self, models: Sequence[ModelRef], *, pool: Sequence[Hypothesis], pool_messages: Sequence[Message],
                 live: bool = True, **kwargs: Any) -> None:
        super().__init__(models, **kwargs)
        self._pools: dict[str | None, list[Hypothesis]] = {}
        for h in pool:
            if h.status != "cancelled":
                self._pools.setdefault(h.route, []).append(h)
        self._pool_messages = list(pool_messages)
        self.live = live
        self._served: dict[str | None, int] = {}

    @property
    def replayed(self) -> int:
        """Recorded hypotheses served so far (all routes)."""
        return sum(self._served.values())

    async def _one(self, index: int, ref: ModelRef, messages: list[Message], params: SamplingParams,
                   stage: str, route: str | None = None, tools: bool = True, verify: bool = True) -> Hypothesis:
        pool = self._pools.get(route, [])
        served = self._served.get(route, 0)
        if messages == self._pool_messages and served < len(pool):
            recorded = pool[served]
            self._served[route] = served + 1
            # The answer is extracted again: a pool keeps the text, and extraction may have improved since.
            update: dict[str, Any] = {"index": index}
            if recorded.ok:
                update["answer"] = self.extract(recorded.text)
            h = recorded.model_copy(update=update)
            self.emit(HypothesisStarted(index=index, model=h.model, stage=stage))
            pace = replay_pace.get()
            if pace:
                await asyncio.sleep(recorded.latency_s * pace)
            if h.ok:
                h = await self._replay_checks(h, ref, messages, params, verify)
            self.emit(HypothesisFinished(hypothesis=h) if h.ok else HypothesisFailed(hypothesis=h))
            return h
        if not self.live and messages == self._pool_messages:
            h = Hypothesis(index=index, model=ref.label, status="failed", error="the recorded pool has no more "
                           "hypotheses for this prompt and live sampling is off", error_type="PoolExhausted",
                           route=route)
            self.emit(HypothesisFailed(hypothesis=h))
            return h
        return await super()._one(index, ref, messages, params, stage, route, tools, verify)

    async def _replay_checks(self, h: Hypothesis, ref: ModelRef, messages: list[Message],
                             params: SamplingParams, verify: bool = True) -> Hypothesis:
        if self.verifier is not None and any(s.protocol == "verify" for s in h.steps or []):
            return h  # checked when it was recorded: that check was made on this very sample

        def call(msgs: list[Message], tools: list[ToolSpec] | None) -> Any:
            return call_model(ref, msgs, params, stream=False, tools=tools)

        checked = await self._checked(h, messages, call, verify=verify)
        if checked.usage != h.usage:  # a verify call was made now: it is paid now
            charge(ref.label, checked.usage - h.usage)
        return checked


def _failed(index: int, ref: ModelRef, seed: int | None, started: float, exc: BaseException) -> Hypothesis:
    return Hypothesis(
        index=index, model=ref.label, status="failed", latency_s=time.monotonic() - started, seed=seed,
        error=str(exc) or type(exc).__name__, error_type=type(exc).__name__,
        request_id=getattr(exc, "request_id", None),
    )


class SampleRound:
    """A batch of hypotheses in flight; iterate to receive them as they complete."""

    def __init__(self, sampler: Sampler, messages: list[Message], n: int, start: int, params: SamplingParams,
                 models: list[ModelRef], stage: str, min_successes: int, route: str | None = None,
                 tools: bool = True, verify: bool = True) -> None:
        self._sampler = sampler
        self._spec = (messages, n, start, params, models, stage)
        self.route = route
        self.tools = tools
        self.verify = verify
        self.min_successes = min_successes
        self._tasks: dict[asyncio.Task[Hypothesis], tuple[int, ModelRef]] = {}
        self._pending: set[asyncio.Task[Hypothesis]] = set()
        self._done: dict[int, Hypothesis] = {}
        self.deadline_hit = False
        self.stopped_early = False
        self.budget_hit: str | None = None

    async def __aenter__(self) -> "SampleRound":
        messages, n, start, params, models, stage = self._spec
        ledger = current_ledger()
        spent = ledger.exhausted() if ledger is not None else None
        if spent:  # the run's budget is gone: start nothing, and say why
            self.budget_hit = spent
            for i in range(n):
                ref = models[i % len(models)]
                self._record(Hypothesis(index=start + i, model=ref.label, status="cancelled", error_type="Cancelled",
                                        error=f"not started: the run's {spent} budget is spent", route=self.route))
            return self
        for i in range(n):
            index = start + i
            ref = models[i % len(models)]
            task = asyncio.create_task(self._sampler._one(index, ref, messages, params, stage, self.route,
                                                                self.tools, self.verify))
            self._tasks[task] = (index, ref)
        self._pending = set(self._tasks)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._pending:
            self.stopped_early = not self.deadline_hit
            await self._cancel_pending("stopped early: the strategy had enough" if self.stopped_early
                                       else "cancelled at the run's deadline")

    async def _cancel_pending(self, why: str, only: str | None = None) -> None:
        """Cancel the outstanding hypotheses (of model *only*, if given) and record them as cancelled."""
        victims = {t for t in self._pending if only is None or self._tasks[t][1].label == only}
        for task in victims:
            task.cancel()
        await asyncio.gather(*victims, return_exceptions=True)
        for task in sorted(victims, key=lambda t: self._tasks[t][0]):
            index, ref = self._tasks[task]
            if task.cancelled() or task.exception() is not None:
                self._record(self._sampler.cancelled(index, ref, why, self._spec[0], self.route))
            else:  # finished in the instant between the deadline and the cancel: keep it
                self._record(task.result())
        self._pending -= victims

    def _record(self, h: Hypothesis) -> None:
        self._done[h.index] = h
        self._sampler.hypotheses.append(h)

    def __aiter__(self) -> "SampleRound":
        return self

    async def __anext__(self) -> Hypothesis:
        if not self._pending:
            raise StopAsyncIteration
        deadline = self._sampler.deadline
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, _ = await asyncio.wait(self._pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            self.deadline_hit = True
            await self._cancel_pending("cancelled at the run's deadline")
            raise StopAsyncIteration
        # Deliver one now; the others stay "pending" until the next call picks them up instantly.
        task = min(done, key=lambda t: self._tasks[t][0])
        self._pending.discard(task)
        h = task.result()
        self._record(h)
        if h.error_type == "FatalRequestError" and self._pending:
            await self._cancel_pending(f"cancelled: {h.model} rejected the request, every sibling would fail the "
                                       "same way", only=h.model)
        ledger = current_ledger()
        spent = ledger.exhausted() if ledger is not None and self._pending else None
        if spent:
            self.budget_hit = spent
            await self._cancel_pending(f"cancelled: the run's {spent} budget is spent")
        return h

    async def collect(self, until: Callable[[list[Hypothesis]], bool] | None = None) -> "SampleRound":
        """Run the batch to its end (every hypothesis, or the deadline, or until ``until(done)`` says enough:
        leaving cancels the rest), check the quorum, and return it."""
        async with self:
            async for _ in self:
                if until is not None and until(self.hypotheses):
                    break
        self.check_quorum()
        return self

    @property
    def hypotheses(self) -> list[Hypothesis]:
        """Every hypothesis of this batch so far (ok, failed and cancelled), in index order."""
        return [self._done[i] for i in sorted(self._done)]

    @property
    def successes(self) -> list[Hypothesis]:
        return [h for h in self.hypotheses if h.ok]

    def check_quorum(self) -> None:
        """Raise QuorumError when fewer than ``min_successes`` hypotheses succeeded."""
        ok = len(self.successes)
        if ok >= self.min_successes:
            return
        if self._sampler.fatal:  # one clear error, not N copies of it
            raise next(iter(self._sampler.fatal.values()))
        if self.budget_hit and not ok:
            raise BudgetExceeded(self.budget_hit, f"the run's {self.budget_hit} budget was spent before any "
                                                  "hypothesis finished")
        failed = [h for h in self.hypotheses if not h.ok]
        first = "; ".join(f"#{h.index} {h.model}: {h.error}" for h in failed[:3])
        more = f" (+{len(failed) - 3} more)" if len(failed) > 3 else ""
        raise QuorumError(
            f"only {ok} of {len(self.hypotheses)} hypotheses succeeded (need {self.min_successes}): {first}{more}",
            failures=failed,
        )
