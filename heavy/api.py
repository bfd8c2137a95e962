"""The library API: :class:`Heavy` and the one-call :func:`ask` / :func:`aask`.

::

    from heavy import Heavy
    h = Heavy(model="openai:gpt-4.1-mini", n=8, strategy="vote")
    result = h.ask_sync("What is 17 * 23?")       # or: await h.ask(...)
    print(result.answer, result.explain())

The shells (CLI, proxy) use exactly this API.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from . import constants as C
from .answers import final_answer
from .errors import ConfigError, OptionsError, describe_validation
from .events import Event, EventSink, Final, fanout
from .models import ModelSpec, Preset, parse_spec
from .providers.base import Provider
from .providers.factory import build_provider
from .pricing import cost, price_for
from .providers.wrappers import ConcurrencyLimit, RateLimit, Retry, RetryPolicy, WrapperProvider
from .run import Budget, RunState, using_run
from .sampler import ModelRef, ReplaySampler, Sampler, check_n
from .strategy import Context, Strategy, load_strategy
from .types import PROGRAM_ROUTE, Hypothesis, Message, Result, SamplingParams, Usage, as_messages

__all__ = ["Heavy", "ask", "aask"]

Prompt = str | Message | Sequence[Message] | Sequence[dict[str, Any]]


class Heavy:
    """A configured Heavy ensemble: which models sample, how many hypotheses, which strategy decides.

    ``model`` is one spec or a list (round-robined over the N hypotheses). ``timeout`` bounds each
    hypothesis (retries included), ``deadline`` the whole sampling phase (what arrived by then is used).
    ``rpm``/``tpm`` rate-limit each provider (``limits`` sets concurrency/rpm/tpm per preset name); ``retry`` sets the retry policy; ``max_total_tokens`` and
    ``max_cost_usd`` cap a run (reaching a cap stops sampling and the strategy decides on what arrived).
    ``providers`` adds model sources of your own: ``Heavy(model="mine:some-model", providers={"mine":
    MyProvider()})`` samples ``some-model`` through ``MyProvider`` (a :class:`~heavy.providers.base.Provider`).
    ``tools`` lets every hypothesis run tools as an agent (``["python"]``, ``"python,web_search"``, Tool
    instances; see :mod:`heavy.tools.agent`): ``tool_protocol`` (``native``, ``text`` or ``auto``) says how
    they are offered, ``max_steps`` caps tool runs per hypothesis, ``tool_options`` configures each tool by
    name (e.g. ``{"python": {"limits": {"timeout": 5}}}``). ``verify="python"`` checks every numeric answer
    with a program the model writes and lowers the vote weight of answers the check contradicts.
    Extra keyword arguments are strategy options, validated by the strategy's options model.
    """

    def __init__(
        self,
        model: str | Sequence[str] = "sim",
        n: int = C.DEFAULT_N,
        strategy: str = C.DEFAULT_STRATEGY,
        *,
        aggregator_model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        system: str | None = None,
        temperature: float | None = C.DEFAULT_TEMPERATURE,
        max_tokens: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        min_successes: int = 1,
        concurrency: int = C.DEFAULT_PROVIDER_CONCURRENCY,
        rpm: float | None = None,
        tpm: float | None = None,
        limits: dict[str, dict[str, float]] | None = None,
        retry: RetryPolicy | None = None,
        max_total_tokens: int | None = None,
        max_cost_usd: float | None = None,
        stream: bool | None = None,
        on_event: EventSink | None = None,
        transport: Any = None,
        providers: dict[str, Provider] | None = None,
        tools: Any = None,
        tool_protocol: str = "auto",
        max_steps: int = 4,
        tool_options: dict[str, dict[str, Any]] | None = None,
        verify: str | None = None,
        options: dict[str, Any] | None = None,
        **strategy_options: Any,
    ) -> None:
        specs = [model] if isinstance(model, str) else list(model)
        if not specs:
            raise ConfigError("no model given; e.g. model='openai:gpt-4.1' or model='sim'")
        check_n(n)
        if not 1 <= min_successes <= n:
            raise OptionsError(f"min_successes must be between 1 and n ({n})")
        if concurrency < 1:
            raise OptionsError("concurrency must be at least 1")
        for name, value in (("timeout", timeout), ("deadline", deadline)):
            if value is not None and value <= 0:
                raise OptionsError(f"{name} must be a positive number of seconds")
        self._custom = dict(providers or {})

        def resolve(spec: str) -> ModelSpec:
            name, sep, model = spec.partition(":")
            if sep and name in self._custom:
                return ModelSpec(spec=spec, preset=Preset(name, "", None, None, key_required=False, wire="custom",
                                                          note="a provider given to Heavy(providers=...)"),
                                 model=model, base_url="", api_key=None)
            return parse_spec(spec, base_url=base_url, api_key=api_key)

        self.specs: list[ModelSpec] = [resolve(s) for s in specs]
        self.aggregator_spec = resolve(aggregator_model) if aggregator_model else self.specs[0]
        try:
            self.budget = Budget(max_tokens=max_total_tokens, max_cost_usd=max_cost_usd)
        except ValueError as exc:
            raise OptionsError(f"invalid budget: {describe_validation(exc)}") from None
        if max_cost_usd is not None:
            unpriced = [s.label for s in {*self.specs, self.aggregator_spec}
                        if price_for(s.preset.name, s.model) is None]
            if unpriced:
                raise OptionsError(f"a dollar cap needs prices, and none is known for {', '.join(sorted(unpriced))}; "
                                   "add them under [prices] in the config file (see `heavy config`)")
        self.rpm, self.tpm = rpm, tpm
        self.limits = limits or {}
        self.retry = retry or RetryPolicy()
        self.n = n
        self.strategy_name = strategy
        self.strategy_cls: type[Strategy] = load_strategy(strategy)
        self.options = self.strategy_cls.parse_options({**(options or {}), **strategy_options})
        try:
            self.params = SamplingParams(temperature=temperature, max_tokens=max_tokens, top_p=top_p, seed=seed,
                                         stop=stop, logprobs=logprobs, top_logprobs=top_logprobs)
        except ValueError as exc:
            raise OptionsError(f"invalid sampling parameter: {describe_validation(exc)}") from None
        self.system = system
        self.timeout = timeout
        self.deadline = deadline
        self.min_successes = min_successes
        self.concurrency = concurrency
        self.stream = stream
        self.on_event = on_event
        self._transport = transport
        self.agent, self.verifier = _tooling(tools, tool_protocol, max_steps, tool_options, verify)
        # The python tool, where the user enabled it (tools or --verify): program hypotheses may run.
        self.python = self.verifier.tool if self.verifier is not None else \
            next((t for t in (self.agent.tools if self.agent else []) if t.name == "python"), None)
        self._providers: dict[tuple[str, str, bool], Provider] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- providers, one pooled client each, bound to the running event loop ------------------

    def _provider(self, spec: ModelSpec) -> Provider:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # clients cannot outlive their loop (ask_sync runs a loop per call)
            self._providers, self._loop = {}, loop
        key = (spec.preset.name, spec.base_url, bool(spec.api_key))
        if key not in self._providers:
            lim = self.limits.get(spec.preset.name, {})
            base = _Borrowed(self._custom[spec.preset.name]) if spec.preset.wire == "custom" else None
            inner = ConcurrencyLimit(base or build_provider(spec, transport=self._transport),
                                     int(lim.get("concurrency", self.concurrency)))
            gate = RateLimit(inner, rpm=lim.get("rpm", self.rpm), tpm=lim.get("tpm", self.tpm))
            self._providers[key] = Retry(gate, self.retry, gate=gate)
        return self._providers[key]

    @staticmethod
    def _price(label: str, usage: Usage) -> float | None:
        preset, _, model = label.partition(":")
        p = price_for(preset, model)
        return None if p is None else cost(usage, p)

    def _ref(self, spec: ModelSpec) -> ModelRef:
        return ModelRef(label=spec.label, provider=self._provider(spec), model=spec.model)

    async def aclose(self) -> None:
        """Close every provider's connections (safe to call twice)."""
        providers, self._providers = list(self._providers.values()), {}
        for p in providers:
            await p.aclose()
        for tool in self.agent.tools if self.agent is not None else []:
            await tool.aclose()

    async def __aenter__(self) -> "Heavy":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # --- asking ---------------------------------------------------------------------------------

    def _sampler(self, messages: list[Message], n: int, emit: EventSink, stream: bool, seed: int | None,
                 pool: Sequence[Hypothesis] | None, live: bool) -> Sampler:
        params = self.params if seed is None else self.params.merged(seed=seed)
        kwargs: dict[str, Any] = dict(
            params=params, extract=final_answer, emit=emit, stream=stream, timeout=self.timeout,
            deadline=(time.monotonic() + self.deadline) if self.deadline else None,
            min_successes=min(self.min_successes, n), agent=self.agent, verifier=self.verifier, python=self.python,
        )
        refs = [self._ref(s) for s in self.specs]
        if pool is not None:
            return ReplaySampler(refs, pool=pool, pool_messages=messages, live=live, **kwargs)
        return Sampler(refs, **kwargs)

    def _messages(self, prompt: Prompt, system: str | None) -> list[Message]:
        try:
            return as_messages(prompt, system if system is not None else self.system)  # type: ignore[arg-type]
        except ValueError as exc:
            raise OptionsError(f"invalid messages: {describe_validation(exc)}") from None

    async def ask(
        self,
        prompt: Prompt,
        *,
        system: str | None = None,
        n: int | None = None,
        on_event: EventSink | None = None,
        seed: int | None = None,
        strategy: str | None = None,
        options: dict[str, Any] | None = None,
        pool: Sequence[Hypothesis] | None = None,
        live: bool = True,
    ) -> Result:
        """Run the strategy on *prompt* (a question, a message or a message list) and return the Result.

        Per-call overrides: ``n``, ``seed``, ``system``, ``strategy`` and its ``options``. ``pool`` replays
        recorded hypotheses of this prompt before sampling live (``live=False``: never sample this prompt
        beyond the pool; later rounds of generating strategies are still sampled), so strategies can be
        compared on identical samples.
        """
        messages = self._messages(prompt, system)
        emit = fanout(self.on_event, on_event)
        stream = self.stream if self.stream is not None else (self.on_event is not None or on_event is not None)
        n = self.n if n is None else check_n(n)  # n=0 is a mistake to report, not a request for the default
        if strategy is None or strategy == self.strategy_name:
            strategy_cls = self.strategy_cls
            opts = self.options if options is None else strategy_cls.parse_options(options)
        else:
            strategy_cls = load_strategy(strategy)
            opts = strategy_cls.parse_options(options)
        state = RunState(self.budget, retries=C.RETRY_BUDGET_PER_HYPOTHESIS * n, price=self._price)
        with using_run(state):
            sampler = self._sampler(messages, n, emit, stream, seed, pool, live)
            ctx = Context(messages=messages, n=n, sampler=sampler, aggregator=self._ref(self.aggregator_spec),
                          emit=emit, stream_aggregator=stream, aggregator_timeout=self.timeout,
                          max_tokens=self.params.max_tokens, run=state,
                          fallbacks=[self._ref(s) for s in dict.fromkeys(self.specs)])
            result = await strategy_cls(opts).run(ctx)
        emit(Final(result=result))
        return result

    async def sample(self, prompt: Prompt, *, n: int | None = None, system: str | None = None,
                     seed: int | None = None, on_event: EventSink | None = None,
                     programs: int = 0) -> list[Hypothesis]:
        """Only sample: *n* hypotheses of *prompt* (ok, failed or cancelled), in index order, no decision.

        *programs* more are sampled at the same time as program hypotheses (``route="program"``: the
        model writes Python, the sandbox runs it); they need the python tool (``tools=["python"]``), and
        the chains are then plain completions, as the ``crosscheck`` strategy samples them."""
        messages = self._messages(prompt, system)
        n = self.n if n is None else check_n(n)
        if programs:
            check_n(programs)
        total = n + programs
        with using_run(RunState(self.budget, retries=C.RETRY_BUDGET_PER_HYPOTHESIS * total, price=self._price)):
            sampler = self._sampler(messages, total, fanout(self.on_event, on_event), self.stream or False, seed,
                                    None, True)
            if not programs:
                return await sampler.sample(messages, n, min_successes=0)
            chains, progs = await asyncio.gather(  # chains as crosscheck samples them: without tools
                sampler.sample(messages, n, min_successes=0, tools=False),
                sampler.sample(messages, programs, min_successes=0, route=PROGRAM_ROUTE))
            return [*chains, *progs]

    async def events(self, prompt: Prompt, **kwargs: Any) -> AsyncIterator[Event]:
        """Run *prompt* and yield its progress events as they happen; the last one is :class:`Final`."""
        queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        task = asyncio.create_task(self.ask(prompt, on_event=queue.put_nowait, **kwargs))
        task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or queue.put_nowait(t.exception()))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Final):
                    return
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def ask_sync(self, prompt: Prompt, **kwargs: Any) -> Result:
        """Blocking :meth:`ask` for plain scripts; also works where an event loop already runs (Jupyter)."""

        async def once() -> Result:
            try:
                return await self.ask(prompt, **kwargs)
            finally:
                await self.aclose()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(once())
        box: dict[str, Any] = {}

        def worker() -> None:
            try:
                box["result"] = asyncio.run(once())
            except BaseException as exc:  # handed back to the caller's thread below
                box["error"] = exc

        thread = threading.Thread(target=worker, name="heavy-ask-sync")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["result"]


def _tooling(tools: Any, protocol: str, max_steps: int, options: dict[str, dict[str, Any]] | None,
             verify: str | None) -> tuple[Any, Any]:
    """The agent config and the verifier of a Heavy (``None`` each when not asked for)."""
    agent = verifier = None
    if tools:
        from .tools import make_tools
        from .tools.agent import AgentConfig

        agent = AgentConfig(make_tools(tools, options), protocol=protocol, max_steps=max_steps)  # type: ignore[arg-type]
    if verify is not None:
        if verify != "python":
            raise OptionsError(f"verify={verify!r}: the only verifier is 'python'")
        from .tools import make_tools
        from .tools.verify import Verifier

        python = next((t for t in (agent.tools if agent else []) if t.name == "python"), None)
        verifier = Verifier(python or make_tools("python", options)[0])  # type: ignore[arg-type]
    return agent, verifier


class _Borrowed(WrapperProvider):
    """A caller's provider: used, never closed by heavy (its owner decides its lifetime)."""

    async def aclose(self) -> None:
        return None


def ask(prompt: Prompt, **kwargs: Any) -> Result:
    """One call, blocking: ``heavy.ask("question", model="openai:gpt-4.1", n=8)`` (see :class:`Heavy`)."""
    return Heavy(**kwargs).ask_sync(prompt)


async def aask(prompt: Prompt, **kwargs: Any) -> Result:
    """One call, async: ``await heavy.aask("question", model=..., n=8)``."""
    async with Heavy(**kwargs) as h:
        return await h.ask(prompt)
