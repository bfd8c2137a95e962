"""heavy as a plugin of Simon Willison's ``llm`` (``pip install 'heavy[llm]'``).

Registers, for every model ``llm`` knows (and every alias of it), one Heavy model per strategy::

    llm -m heavy/vote/gpt-4.1-mini "How many r's are in strawberry?"
    llm -m heavy/judge/4o -o n 5 "..."          # aliases work: heavy/<strategy>/<alias>
    llm -m heavy "..."                           # the default strategy on llm's default model
    llm -m heavy/vote/4o -o strategy debate "..."   # any registered strategy, whatever the name says

So that ``llm models`` stays readable, names are registered for the strategies in
``$HEAVY_LLM_STRATEGIES`` (comma-separated, ``all`` for every registered one; default
``heavy,vote,judge,synthesize``); ``-o strategy NAME`` reaches every registered strategy from any of them.

Hypotheses are sampled through ``llm``'s OWN async models (:class:`LLMProvider`, a heavy
:class:`~heavy.providers.base.Provider` wrapping ``llm.get_async_model(id)``), so the keys, aliases,
endpoints and plugins already set up in ``llm`` are what heavy uses; heavy's own presets and keys are not
involved. While it runs, progress (hypotheses done, the vote tally, the judge) streams as reasoning,
which ``llm`` shows dimmed on stderr (``-R`` hides it); the final answer goes to stdout, and the Result
summary is logged as the response JSON (``llm logs --json``).

Options (``-o name value``): the run options of :class:`heavy.settings.RunSettings` that name a ``plugin``
place (``strategy``, ``n``, ``temperature``, ``max_tokens``, ``seed``, ``timeout``, ``deadline``), plus
``aggregator`` (an llm model id for judge/synthesis calls) and ``strategy_options`` (the strategy's
options as JSON, e.g. ``-o strategy_options '{"early_stop": true}'``). Every other run option comes from
heavy's config file and environment exactly as for ``heavy ask`` (``[defaults]``, ``[prices]``,
``HEAVY_<OPTION>``; :func:`heavy.config.run_settings`), except the models: those are llm's.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import llm
from llm.parts import StreamEvent
from pydantic import Field, create_model, field_validator

from .api import Heavy
from .session import Session
from .errors import (FatalRequestError, HeavyError, ProviderConnectionError, ProviderError, ProviderTimeout,
                     error_for_status)
from .events import AggregatorDelta, Final, TokenDelta
from .profiles import ModelProfile, profile
from .providers.base import Completion, CompletionRequest, Delta, Provider
from .remote.progress import CONTENT_PURPOSES, Progress
from .remote.summary import summary
from .settings import fields_where, plugin_fields, surface
from .strategy import registered_strategies
from .types import Message, SamplingParams, Usage

__all__ = ["LLMProvider", "HeavyModel", "AsyncHeavyModel", "register_models", "PREFIX"]

PREFIX = "heavy"
_PROVIDER = "llm"  # heavy's name for the provider: specs are "llm:<llm model id>"
#: The API an llm model speaks, by the module of its plugin (llm's own OpenAI models, llm-anthropic, llm-gemini,
#: llm-grok...): its models follow that API's profiles (heavy.profiles).
_PLUGIN_APIS = (("openai_models", "openai"), ("anthropic", "anthropic"), ("gemini", "gemini"), ("grok", "xai"),
                ("xai", "xai"), ("deepseek", "deepseek"), ("mistral", "mistral"), ("groq", "groq"))
#: Strategies given model names when $HEAVY_LLM_STRATEGIES is unset (the others: ``-o strategy NAME``).
DEFAULT_NAMED_STRATEGIES = ("heavy", "vote", "judge", "synthesize")
STRATEGIES_ENV = "HEAVY_LLM_STRATEGIES"


# --- sampling through llm's models -------------------------------------------------------------------


class LLMProvider(Provider):
    """A heavy provider whose models are ``llm``'s: ``Heavy(model="llm:gpt-4o", providers={"llm": LLMProvider()})``.

    Async models are streamed on the event loop; a model that ``llm`` only has in a sync version runs in
    a worker thread (not streamed). Errors are translated into heavy's error tree.
    """

    name = _PROVIDER

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}

    def profiles(self, model_id: str) -> ModelProfile:
        """What llm's model *model_id* accepts: the profile of the API its plugin speaks (OpenAI's, Anthropic's,
        Gemini's, xAI's...; :mod:`heavy.profiles`), so that a reasoning model gets no temperature from here either."""
        try:
            model = self.model(model_id)
        except ProviderError:
            return profile(_PROVIDER, model_id)
        module = type(model).__module__.lower()
        preset = next((name for key, name in _PLUGIN_APIS if key in module), _PROVIDER)
        return profile(preset, getattr(model, "model_name", None) or getattr(model, "model_id", model_id))

    def model(self, model_id: str) -> Any:
        """``llm``'s async model for *model_id* (an id or alias), else its sync model."""
        found = self._models.get(model_id)
        if found is None:
            try:
                found = llm.get_async_model(model_id)
            except llm.UnknownModelError:
                try:
                    found = llm.get_model(model_id)
                except llm.UnknownModelError:
                    raise FatalRequestError(f"llm knows no model {model_id!r} (see `llm models`)",
                                            provider=_PROVIDER, model=model_id, status=404) from None
            self._models[model_id] = found
        return found

    async def complete(self, request: CompletionRequest) -> Completion:
        final: Completion | None = None
        async for item in self.stream(request):
            if isinstance(item, Completion):
                final = item
        assert final is not None
        return final

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        model = self.model(request.model)
        request = self.profiles(request.model).shape(request)[0]
        messages = _llm_messages(request.messages)
        options = _llm_options(model, request.params)
        text: list[str] = []
        reasoning: list[str] = []
        try:
            if isinstance(model, (llm.AsyncModel, llm.AsyncKeyModel)):
                response = model.prompt(messages=messages, stream=model.can_stream, **options)
                async for event in response.astream_events():
                    if event.type == "text" and event.chunk:
                        text.append(event.chunk)
                        yield Delta(text=event.chunk)
                    elif event.type == "reasoning" and event.chunk:
                        reasoning.append(event.chunk)
                        yield Delta(reasoning=event.chunk)
            else:
                def blocking() -> Any:
                    r = model.prompt(messages=messages, stream=False, **options)
                    r.text()
                    return r

                response = await asyncio.to_thread(blocking)
                text.append(response.text())
                if text[0]:
                    yield Delta(text=text[0])
        except (HeavyError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise _translate(exc, request.model) from None
        usage = Usage(prompt_tokens=response.input_tokens or 0, completion_tokens=response.output_tokens or 0)
        yield Completion(text="".join(text), reasoning="".join(reasoning) or None, finish_reason="stop", usage=usage,
                         model=request.model, request_id=getattr(response, "id", None))


def _llm_messages(messages: list[Message]) -> list[Any]:
    build = {"system": llm.system, "developer": llm.system, "user": llm.user, "assistant": llm.assistant}
    return [build[m.role](m.text()) for m in messages if m.role in build]


def _llm_options(model: Any, params: SamplingParams) -> dict[str, Any]:
    """heavy's sampling parameters that the llm model's Options declare (others are not sent)."""
    fields = getattr(getattr(model, "Options", None), "model_fields", {})
    stop = params.stop
    if isinstance(stop, list):
        stop = stop[0] if len(stop) == 1 else (stop or None)
    wanted = {"temperature": params.temperature, "max_tokens": params.max_tokens, "top_p": params.top_p,
              "seed": params.seed, "stop": stop}
    return {k: v for k, v in wanted.items() if v is not None and k in fields}


def _translate(exc: Exception, model_id: str) -> ProviderError:
    """An exception of an llm model (or of the API client under it) as heavy's error."""
    where = {"provider": _PROVIDER, "model": model_id}
    name = type(exc).__name__
    text = f"{name}: {exc}" if str(exc) else name
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, llm.errors.NeedsKeyException):
        return FatalRequestError(str(exc), status=401, **where)
    if "Timeout" in name:
        return ProviderTimeout(text, retryable=True, **where)
    if isinstance(status, int):
        return error_for_status(status, text, **where)
    if "Connection" in name:
        return ProviderConnectionError(text, retryable=True, **where)
    if isinstance(exc, ValueError):  # the model refuses these options/messages: same for every sibling
        return FatalRequestError(text, **where)
    return ProviderError(text, **where)


# --- Heavy as llm models ------------------------------------------------------------------------------


class _PluginOptions(llm.Options):
    aggregator: str | None = Field(None, description="llm model id for judge/synthesis (default: the sampling model)")
    strategy_options: dict[str, Any] | None = Field(None, description="the strategy's options as JSON, e.g. "
                                                    "{\"early_stop\": true} (see `heavy strategies`)")

    @field_validator("strategy_options", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("strategy_options must be a JSON object, e.g. '{\"early_stop\": true}'") from None
        return value


#: ``llm -o`` options: the run options that name a plugin place (RunSettings), then aggregator, strategy_options.
HeavyOptions = create_model("HeavyOptions", __base__=_PluginOptions, **plugin_fields())
_PLUGIN = {name: surface(name)["plugin"] for name in fields_where(plugin=True)}


class _HeavyBase:
    """What the sync and async Heavy models share: building the run and turning its events into output."""

    can_stream = True
    Options = HeavyOptions

    def __init__(self, model_id: str, strategy: str | None, base_model: str | None) -> None:
        self.model_id = model_id
        self.strategy = strategy
        self.base_model = base_model  # None: llm's default model, resolved when run
        self._session: Session | None = None  # every prompt of this model shares it (and its limits)

    def _setup(self, options: Any) -> tuple[Heavy, int]:
        from .config import run_settings

        given = {name: getattr(options, exposed) for name, exposed in _PLUGIN.items()}
        given["strategy"] = options.strategy or self.strategy  # else the config file's, else the built-in
        settings = run_settings({**given, "options": options.strategy_options}).merged(
            # llm's models, never heavy's: the config file's model/aggregator name heavy's providers
            model=[f"{_PROVIDER}:{self.base_model or llm.get_default_model()}"],
            aggregator_model=f"{_PROVIDER}:{options.aggregator}" if options.aggregator else None)
        if self._session is None:  # the limits of the first prompt's configuration hold for every later one
            self._session = Session(settings, providers={_PROVIDER: LLMProvider()})
        return Heavy(settings=settings, session=self._session), settings.n

    async def _run(self, prompt: Any, stream: bool, response: Any) -> AsyncIterator[Any]:
        """The model's output: progress as reasoning events (when streaming), then the answer text."""
        try:
            heavy, n = self._setup(prompt.options)
        except HeavyError as exc:
            raise llm.ModelError(f"heavy: {exc}") from None
        messages = _heavy_messages(prompt)
        show = stream and not getattr(prompt, "hide_reasoning", False)
        progress = Progress(n)
        streamed: list[str] = []
        result = None
        try:
            # aclosing: leaving at Final must end the run (and free its clients) now, not when collected
            async with aclosing(heavy.events(messages, seed=prompt.options.seed)) as events:
                async for event in events:
                    if type(event) is TokenDelta:
                        continue
                    if isinstance(event, Final):
                        result = event.result
                        break
                    if stream and isinstance(event, AggregatorDelta) and event.purpose in CONTENT_PURPOSES:
                        if event.text:
                            streamed.append(event.text)
                            yield event.text
                        continue
                    if show:
                        for line in progress.lines(event):
                            yield StreamEvent(type="reasoning", chunk=line)
        except HeavyError as exc:
            raise llm.ModelError(f"heavy: {exc}") from None
        finally:
            await heavy.aclose()
        assert result is not None
        sent = "".join(streamed)
        if not sent:
            if show:
                yield StreamEvent(type="reasoning", chunk=progress.decision(result))
            yield result.text
        elif result.text != sent:
            yield result.text[len(sent):] if result.text.startswith(sent) else (
                "\n\n[heavy: the streamed synthesis failed; final answer:]\n\n" + result.text)
        response.set_usage(input=result.usage.prompt_tokens, output=result.usage.completion_tokens,
                           details={"hypotheses": len(result.hypotheses), "aggregator_calls": len(result.aggregator_calls)})
        response.response_json = {"heavy": summary(result)}


def _heavy_messages(prompt: Any) -> list[dict[str, Any]]:
    """The conversation as heavy messages: the whole chain llm gives (history included), text parts only."""
    out: list[dict[str, Any]] = []
    for m in prompt.messages:
        if m.role not in ("system", "user", "assistant"):
            continue
        text = "".join(p.text for p in m.parts if type(p).__name__ == "TextPart")
        if text or m.role != "assistant":
            out.append({"role": m.role, "content": text})
    if not any(m["role"] == "user" for m in out):
        raise llm.ModelError("heavy: the prompt has no user message")
    return out


class AsyncHeavyModel(_HeavyBase, llm.AsyncModel):
    """Heavy over llm's async models (``llm --async``, ``llm.get_async_model("heavy/vote/...")``)."""

    async def execute(self, prompt: Any, stream: bool, response: Any, conversation: Any) -> AsyncIterator[Any]:
        async for item in self._run(prompt, stream, response):
            yield item


class HeavyModel(_HeavyBase, llm.Model):
    """Heavy for llm's sync API and CLI: the async run happens on an event loop in a worker thread."""

    def execute(self, prompt: Any, stream: bool, response: Any, conversation: Any) -> Iterator[Any]:
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        handle: dict[str, Any] = {}

        async def main() -> None:
            handle["loop"], handle["task"] = asyncio.get_running_loop(), asyncio.current_task()
            try:
                async for item in self._run(prompt, stream, response):
                    items.put(("item", item))
            finally:
                if self._session is not None:  # its connections die with this prompt's private loop
                    await self._session.aclose()
                await _close_orphans()

        def worker() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # handed to the caller's thread
                items.put(("error", exc))
            else:
                items.put(("end", None))

        thread = threading.Thread(target=worker, name="heavy-llm", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = items.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            if thread.is_alive() and "task" in handle:  # the consumer stopped early: cancel the run
                handle["loop"].call_soon_threadsafe(handle["task"].cancel)
            thread.join(timeout=30)


async def _close_orphans() -> None:
    """Let clients that llm's models left open close on this loop, before it is closed.

    Async API clients (e.g. the OpenAI plugin's, one per call) are not closed by the models; when they are
    garbage-collected they schedule their own close on whatever loop is running then. This worker loop is
    about to end, so collect them now and wait for those closes here.
    """
    current = asyncio.current_task()
    for _ in range(3):  # closing one client can free the next (cycles through finished tasks)
        gc.collect()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if not pending:
            return
        await asyncio.wait(pending, timeout=5)


# --- registration ---------------------------------------------------------------------------------------


def named_strategies() -> list[str]:
    """The registered strategies that get ``heavy/<strategy>/<model>`` names (see ``$HEAVY_LLM_STRATEGIES``)."""
    registered = list(registered_strategies())
    wanted = os.environ.get(STRATEGIES_ENV, "").strip()
    if wanted.lower() == "all":
        return registered
    names = [w.strip() for w in wanted.split(",") if w.strip()] if wanted else list(DEFAULT_NAMED_STRATEGIES)
    return [n for n in names if n in registered]


@llm.hookimpl(trylast=True)
def register_models(register: Any, model_aliases: Any = None) -> None:
    """``heavy/<strategy>/<id>`` for every model (and alias) registered before us, and ``heavy``.

    ``trylast`` makes this run after every other plugin, so their models are in ``model_aliases`` (the
    list being built) already.
    """
    strategies = named_strategies()
    seen: set[str] = set()
    for entry in list(model_aliases or []):
        base = entry.model or entry.async_model
        if base is None or base.model_id == PREFIX or base.model_id.startswith(PREFIX + "/"):
            continue
        if base.model_id in seen:
            continue
        seen.add(base.model_id)
        for strategy in strategies:
            model_id = f"{PREFIX}/{strategy}/{base.model_id}"
            aliases = [f"{PREFIX}/{strategy}/{a}" for a in entry.aliases if a != base.model_id]
            register(HeavyModel(model_id, strategy, base.model_id), AsyncHeavyModel(model_id, strategy, base.model_id),
                     aliases=aliases)
    register(HeavyModel(PREFIX, None, None), AsyncHeavyModel(PREFIX, None, None))
