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
from . import toolvote
from .answers import final_answer
from .errors import OptionsError, describe_validation
from .events import (Event, EventSink, Final, HypothesisFailed, HypothesisFinished, HypothesisStarted, TokenDelta,
                     broadcast)
from .models import ModelSpec
from .providers.base import CompletionRequest, Provider
from .profiles import Profiles
from .fanout import arrange as arrange_fanout
from .pricing import model_cost, price_for, saved_usd
from .providers.wrappers import RetryPolicy
from .ledger import Budget, Ledger, using_ledger
from .session import Session, check_session_arguments
from .settings import RunSettings
from .sampler import ModelRef, ReplaySampler, Sampler, check_n
from .strategy import Context, Strategy, load_strategy
from .types import (PROGRAM_ROUTE, ClientTools, Hypothesis, Message, Result, SamplingParams, ToolChoice, as_messages,
                    as_tool_specs)

__all__ = ["Heavy", "ask", "aask"]

Prompt = str | Message | Sequence[Message] | Sequence[dict[str, Any]]


class Heavy:
    """A configured Heavy ensemble: which models sample, how many hypotheses, which strategy decides.

    Its run options are a :class:`~heavy.settings.RunSettings` (``settings=``), or keyword arguments that
    build one over the built-in defaults (``Heavy(model=..., n=8, strategy="vote", timeout=30)``; both
    together: the keywords win). Every option, its default and bounds: ``heavy.settings`` and the table
    in docs/architecture.md. ``model`` is one spec or a list (round-robined over the N hypotheses);
    ``timeout`` bounds each hypothesis (retries included), ``deadline`` the whole sampling phase (what
    arrived by then is used); ``rpm``/``tpm`` rate-limit each provider (``limits`` per preset name);
    ``max_total_tokens`` and ``max_cost_usd`` cap a run (the strategy decides on what arrived); ``tools``
    lets every hypothesis run tools as an agent (``["python"]``, ``"python,web_search"``, Tool instances;
    see :mod:`heavy.tools.agent`); ``verify="python"`` checks every numeric answer with a program the
    model writes. Keyword arguments that are not run options are strategy options, validated by the
    strategy's options model.

    The rest are objects, not options: ``retry`` (a RetryPolicy), ``on_event`` (a listener of every run),
    ``transport`` (under the HTTP clients) and ``providers``, model sources of your own:
    ``Heavy(model="mine:some-model", providers={"mine": MyProvider()})`` samples ``some-model`` through
    ``MyProvider`` (a :class:`~heavy.providers.base.Provider`). Those configure connections, which live in a
    :class:`~heavy.session.Session`: a Heavy owns one built from its settings (its limits: ``concurrency``, ``rpm``,
    ``tpm``, ``limits``), or shares ``session=`` with other Heavys, whose runs then share its connections and limits
    (``session.heavy(settings)``, ``session.ask(prompt, settings)``).
    """

    def __init__(self, model: str | Sequence[str] | None = None, n: int | None = None, strategy: str | None = None,
                 *, settings: RunSettings | None = None, retry: RetryPolicy | None = None,
                 on_event: EventSink | None = None, transport: Any = None,
                 providers: dict[str, Provider] | None = None, session: Session | None = None,
                 **options: Any) -> None:
        given = {k: v for k, v in (("model", model), ("n", n), ("strategy", strategy)) if v is not None}
        self.settings = s = RunSettings.build(settings, **given, **options)
        check_session_arguments(session, retry=retry, transport=transport, providers=providers)
        #: Where the connections, limits and tools live (heavy.session): this Heavy's own unless it was given one.
        self.session = session or Session(s, retry=retry, transport=transport, providers=providers)
        self._owns_session = session is None
        self.specs: list[ModelSpec] = [self._resolve(spec) for spec in s.model]
        self.aggregator_spec = self._resolve(s.aggregator_model) if s.aggregator_model else self.specs[0]
        self.budget = Budget(max_total_tokens=s.max_total_tokens, max_cost_usd=s.max_cost_usd)
        unpriced = [x.label for x in {*self.specs, self.aggregator_spec} if price_for(x.preset.name, x.model) is None]
        if s.max_cost_usd is not None and unpriced:
            raise OptionsError(f"a dollar cap needs prices, and none is known for {', '.join(sorted(unpriced))}; "
                               "add them under [prices] in the config file (see `heavy config`)")
        self.strategy_cls: type[Strategy] = load_strategy(s.strategy)
        self.options = self.strategy_cls.parse_options(s.options)
        self.params = SamplingParams(**s.model_dump(include=set(SamplingParams.model_fields)))
        self.on_event = on_event
        self.agent, self.verifier = _tooling(self.session, s.tools, s.tool_protocol, s.max_steps, s.tool_options,
                                             s.verify)
        # The python tool, where the user enabled it (tools or --verify): program hypotheses may run.
        self.python = self.verifier.tool if self.verifier is not None else \
            next((t for t in (self.agent.tools if self.agent else []) if t.name == "python"), None)

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of this Heavy's session."""
        return self.session.retry

    @property
    def n(self) -> int:
        """Hypotheses per run unless a call says otherwise."""
        return self.settings.n

    @property
    def strategy_name(self) -> str:
        """The strategy a call runs unless it names another."""
        return self.settings.strategy

    def _resolve(self, spec: str) -> ModelSpec:
        return self.session.resolve(spec, base_url=self.settings.base_url, api_key=self.settings.api_key)

    def _build(self, spec: ModelSpec) -> Provider:
        """A new wire-side provider for *spec*, outside the session's limits (batch clients use it)."""
        return self.session.build(spec)

    def _ref(self, spec: ModelSpec) -> ModelRef:
        return ModelRef(label=spec.label, provider=self.session.provider(spec), model=spec.model)

    async def aclose(self) -> None:
        """Close the connections and tools of this Heavy's own session (safe to call twice; a Heavy given a
        session leaves it open: its owner closes it)."""
        if self._owns_session:
            await self.session.aclose()

    async def __aenter__(self) -> "Heavy":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # --- asking ---------------------------------------------------------------------------------

    def _sampler(self, messages: list[Message], n: int, emit: EventSink, stream: bool, seed: int | None,
                 pool: Sequence[Hypothesis] | None, live: bool, client: ClientTools | None = None) -> Sampler:
        params = self.params if seed is None else self.params.merged(seed=seed)
        s = self.settings
        kwargs: dict[str, Any] = dict(
            params=params, extract=final_answer, emit=emit, stream=stream, timeout=s.timeout,
            deadline=(time.monotonic() + s.deadline) if s.deadline else None,
            min_successes=min(s.min_successes, n), agent=self.agent, verifier=self.verifier, python=self.python,
            client_tools=client,
        )
        refs = arrange_fanout([self._ref(x) for x in self.specs], s.fanout, siblings=n)
        if pool is not None:
            return ReplaySampler(refs, pool=pool, pool_messages=messages, live=live, **kwargs)
        return Sampler(refs, **kwargs)

    def _messages(self, prompt: Prompt, system: str | None) -> list[Message]:
        try:
            return as_messages(prompt, system if system is not None else self.settings.system)  # type: ignore[arg-type]
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
        tools: Sequence[Any] | None = None,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
    ) -> Result:
        """Run the strategy on *prompt* (a question, a message or a message list) and return the Result.

        Per-call overrides: ``n``, ``seed``, ``system``, ``strategy`` and its ``options``. ``pool`` replays
        recorded hypotheses of this prompt before sampling live (``live=False``: never sample this prompt
        beyond the pool; later rounds of generating strategies are still sampled), so strategies can be
        compared on identical samples.

        ``tools`` are *your* functions (OpenAI-style definitions, or :class:`~heavy.types.ToolSpec`), offered
        to every hypothesis with ``tool_choice`` (``"auto"``, ``"none"``, ``"required"`` or one function) and
        ``parallel_tool_calls``: heavy never runs them. When the hypotheses rather call them than answer, the
        Result carries the voted calls in ``tool_calls`` (see :mod:`heavy.toolvote`); you run them and ask
        again with the assistant's calls and ``tool`` messages appended. Heavy's own tools, which hypotheses
        run themselves, are ``Heavy(tools=["python"])``.
        """
        messages = self._messages(prompt, system)
        client = self._client_tools(tools, tool_choice, parallel_tool_calls)
        emit = broadcast(self.on_event, on_event)
        listening = self.on_event is not None or on_event is not None
        stream = self.settings.stream if self.settings.stream is not None else listening
        n = self.n if n is None else check_n(n)  # n=0 is a mistake to report, not a request for the default
        if strategy is None or strategy == self.strategy_name:
            strategy_cls = self.strategy_cls
            opts = self.options if options is None else strategy_cls.parse_options(options)
        else:
            strategy_cls = load_strategy(strategy)
            opts = strategy_cls.parse_options(options)
        state = Ledger(self.budget, retries=C.RETRY_BUDGET_PER_HYPOTHESIS * n, price=model_cost)
        with using_ledger(state):
            ctx = self._context(strategy_cls.name, messages, n,
                                self._sampler(messages, n, emit, stream, seed, pool, live, client), emit, stream, state)
            if client is None or client.choice.mode == "none":
                result = await strategy_cls(opts).run(ctx)
            else:
                result = await self._tool_turn(ctx, strategy_cls, opts, client, seed=seed, stream=stream)
        result.saved_usd = saved_usd([(h.model, h.usage) for h in result.hypotheses]
                                     + [(c.model, c.usage) for c in result.aggregator_calls])
        result.notes = list(dict.fromkeys([*self.profile_notes(seed=seed), *state.notes, *result.notes]))
        emit(Final(result=result))
        return result

    def profile_notes(self, *, seed: int | None = None) -> list[str]:
        """What the sampling models' profiles leave out of what the caller set explicitly, in words
        (``openai:gpt-5-mini: temperature=0.9 not sent: ...``): the Result's notes (:mod:`heavy.profiles`)."""
        explicit = set(self.settings.model_fields_set) | ({"seed"} if seed is not None else set())
        params = self.params if seed is None else self.params.merged(seed=seed)
        probe = CompletionRequest(model="", messages=[Message(role="user", content="?")], params=params)
        notes = []
        for spec in dict.fromkeys(self.specs):
            profiles = getattr(self.session.custom(spec.preset.name), "profiles", None) if spec.preset.wire == "custom" \
                else Profiles(spec.preset.name, spec.base_url)
            if profiles is None:  # a caller's provider that says nothing of its models
                continue
            _, drops = profiles(spec.model).shape(probe.model_copy(update={"model": spec.model}))
            notes += [d.note(spec.label) for d in drops if d.field in explicit]
        return notes

    def _context(self, strategy: str, messages: list[Message], n: int, sampler: Sampler, emit: EventSink,
                 stream: bool, state: Ledger) -> Context:
        return Context(strategy=strategy, messages=messages, n=n, sampler=sampler,
                       aggregator=self._ref(self.aggregator_spec), emit=emit, stream_aggregator=stream,
                       aggregator_timeout=self.settings.timeout, max_tokens=self.params.max_tokens, ledger=state,
                       fallbacks=[self._ref(s) for s in dict.fromkeys(self.specs)])

    def _client_tools(self, tools: Sequence[Any] | None, tool_choice: Any,
                      parallel_tool_calls: bool | None) -> ClientTools | None:
        """The caller's tools of one ask, checked: definitions, the choice, no clash with heavy's own tools."""
        if not tools:
            if tool_choice not in (None, "none", "auto"):
                raise OptionsError(f"tool_choice={tool_choice!r} needs tools to choose from")
            return None
        try:
            specs = as_tool_specs(tools)
            choice = ToolChoice.parse(tool_choice)
        except ValueError as exc:
            raise OptionsError(str(exc)) from None
        if choice.name is not None and choice.name not in {t.name for t in specs}:
            raise OptionsError(f"tool_choice names {choice.name!r}, which is not among the tools "
                               f"({', '.join(t.name for t in specs)})")
        own = {t.name for t in self.agent.tools} if self.agent is not None else set()
        clash = sorted(own & {t.name for t in specs})
        if clash:
            raise OptionsError(f"the tool {', '.join(map(repr, clash))} has the name of a tool heavy runs itself "
                               f"here (tools={sorted(own)}); rename yours")
        return ClientTools(specs=specs, choice=choice, parallel=parallel_tool_calls)

    async def _tool_turn(self, ctx: Context, strategy_cls: type[Strategy], opts: Any, client: ClientTools, *,
                         seed: int | None, stream: bool) -> Result:
        """A turn where the hypotheses may call the caller's tools: sample, let the tool vote decide between
        calling and answering (:mod:`heavy.toolvote`); an answer is the strategy's to decide among the
        hypotheses that answered, replayed to it."""
        verdict = await toolvote.decide(ctx, tools=client, ignore=self.settings.ignore_args or (),
                                        use_aggregator=self.settings.aggregator_model is not None)
        if verdict.call:
            return toolvote.tool_result(ctx, verdict)
        answers = verdict.tally.answerers
        k = len(answers)

        def unheard(event: Event) -> None:  # the replayed hypotheses were reported when they were sampled
            index = getattr(event, "index", None)
            if isinstance(event, (HypothesisFinished, HypothesisFailed)):
                index = event.hypothesis.index
            if not (isinstance(event, (HypothesisStarted, HypothesisFinished, HypothesisFailed, TokenDelta))
                    and index is not None and index < k):
                ctx.emit(event)

        # Later rounds of the strategy (a debate turn, a revision) answer: the tools stay in the request (a
        # conversation with calls needs them, for Anthropic) but may not be called.
        quiet = client.model_copy(update={"choice": ToolChoice(mode="none")})
        replay = self._sampler(ctx.messages, k, unheard, stream, seed, answers, True, quiet)
        result = await strategy_cls(opts).run(self._context(ctx.strategy, ctx.messages, k, replay, unheard, stream,
                                                            ctx.ledger))
        return toolvote.with_answer(result, verdict, ctx)

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
        with using_ledger(Ledger(self.budget, retries=C.RETRY_BUDGET_PER_HYPOTHESIS * total, price=model_cost)):
            sampler = self._sampler(messages, total, broadcast(self.on_event, on_event), self.settings.stream or False, seed,
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
                await self.session.aclose()  # its connections die with this call's private loop

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


def _tooling(session: Session, tools: Any, protocol: str, max_steps: int,
             options: dict[str, dict[str, Any]] | None, verify: str | None) -> tuple[Any, Any]:
    """The agent config and the verifier of a Heavy (``None`` each when not asked for); their tools are the
    session's (built once per configuration, closed with it)."""
    agent = verifier = None
    if tools:
        from .tools.agent import AgentConfig

        agent = AgentConfig(session.tools(tools, options), protocol=protocol, max_steps=max_steps)  # type: ignore[arg-type]
    if verify is not None:
        if verify != "python":
            raise OptionsError(f"verify={verify!r}: the only verifier is 'python'")
        from .tools.verify import Verifier

        python = next((t for t in (agent.tools if agent else []) if t.name == "python"), None)
        verifier = Verifier(python or session.tools("python", options)[0])  # type: ignore[arg-type]
    return agent, verifier


def ask(prompt: Prompt, **kwargs: Any) -> Result:
    """One call, blocking: ``heavy.ask("question", model="openai:gpt-4.1", n=8)`` (see :class:`Heavy`)."""
    return Heavy(**kwargs).ask_sync(prompt)


async def aask(prompt: Prompt, **kwargs: Any) -> Result:
    """One call, async: ``await heavy.aask("question", model=..., n=8)``."""
    async with Heavy(**kwargs) as h:
        return await h.ask(prompt)
