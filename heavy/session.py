"""The long-lived half of heavy: a :class:`Session` owns the connections and limits every run shares.

A run's options (models, n, strategy, sampling, tools...) are a :class:`~heavy.settings.RunSettings`; what must
outlive one run, and be shared by every run of a process, is a session's:

- **one provider stack per endpoint** (preset, base URL, key): ``Retry(RateLimit(ConcurrencyLimit(Adapt(wires))))``
  with the limits of the session's settings (``concurrency``, ``rpm``, ``tpm``; per preset: the config file's
  ``[providers.NAME]``), the models' profiles (:mod:`heavy.profiles`) and its pooled connections. However many runs
  use an endpoint at once, and whatever each asks for (another temperature, another n, another strategy), the
  endpoint sees at most the operator's limits;
- **the tools** runs use (the python sandbox, web search clients): built once per configuration, closed with the
  session.

``session.ask(prompt, settings)`` runs one question with those run options; ``Heavy(**options)`` is a session plus
default settings (it owns its session unless given one), and the shells (``heavy serve``, ``heavy mcp``, ``heavy
eval``, the llm plugin) each hold one session and lay each request's settings over their defaults.

Connections belong to the event loop that opened them: a session used from another loop (``ask_sync`` runs one
per call) opens new ones. :meth:`Session.aclose` closes what is open; the session stays usable afterwards.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .models import ModelSpec, Preset, parse_spec
from .providers.base import Provider
from .providers.factory import build_provider
from .providers.wrappers import ConcurrencyLimit, RateLimit, Retry, RetryPolicy, WrapperProvider
from .settings import ProviderLimits, RunSettings

if TYPE_CHECKING:
    from .events import Event
    from .types import Hypothesis, Result

__all__ = ["Session"]


class Session:
    """Provider stacks (one per endpoint) and tools shared by every run made through it.

    ``settings`` are the session's own options: the limits (``concurrency``, ``rpm``, ``tpm``, ``limits``), the
    endpoint and key of bare specs (``base_url``, ``api_key``), ``background``; the defaults of :meth:`ask`.
    ``retry`` is the retry policy, ``transport`` an httpx transport under every HTTP client (tests, in-process
    servers), ``providers`` model sources of the caller's own (``{"mine": MyProvider()}`` answers ``mine:MODEL``;
    heavy never closes them).
    """

    def __init__(self, settings: RunSettings | None = None, *, retry: RetryPolicy | None = None,
                 transport: Any = None, providers: dict[str, Provider] | None = None) -> None:
        self.settings = settings if settings is not None else RunSettings()
        self.retry = retry or RetryPolicy()
        self._transport = transport
        self._custom = dict(providers or {})
        self._stacks: dict[tuple[str, str, str | None], Provider] = {}
        self._tools: dict[str, list[Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- models and their endpoints ---------------------------------------------------------------------

    def resolve(self, spec: str, *, base_url: str | None = None, api_key: str | None = None) -> ModelSpec:
        """*spec* as a :class:`~heavy.models.ModelSpec`: a provider of the caller's own, or a preset's endpoint."""
        name, sep, model = spec.partition(":")
        if sep and name in self._custom:
            return ModelSpec(spec=spec, preset=Preset(name, "", None, None, key_required=False, wire="custom",
                                                      note="a provider given to the session"),
                             model=model, base_url="", api_key=None)
        return parse_spec(spec, base_url=base_url, api_key=api_key)

    def custom(self, name: str) -> Provider | None:
        """The caller's own provider named *name*, if any."""
        return self._custom.get(name)

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # connections cannot outlive their loop (ask_sync runs a loop per call)
            self._stacks, self._loop = {}, loop

    def provider(self, spec: ModelSpec) -> Provider:
        """The provider stack of *spec*'s endpoint: built once per endpoint (and event loop), shared by every run."""
        self._bind()
        key = (spec.preset.name, spec.base_url, spec.api_key)
        stack = self._stacks.get(key)
        if stack is None:
            s = self.settings
            limits = s.limits.get(spec.preset.name) or ProviderLimits()
            inner = ConcurrencyLimit(self.build(spec), limits.concurrency or s.concurrency)
            gate = RateLimit(inner, rpm=limits.rpm or s.rpm, tpm=limits.tpm or s.tpm)
            stack = self._stacks[key] = Retry(gate, self.retry, gate=gate)
        return stack

    def build(self, spec: ModelSpec) -> Provider:
        """A new wire-side provider for *spec*: the caller's own, or its preset's registered wire format. Without the
        session's limits: what :meth:`provider` wraps, and what batch clients use directly."""
        if spec.preset.wire == "custom":
            return _Borrowed(self._custom[spec.preset.name])
        return build_provider(spec, transport=self._transport, background=self.settings.background)

    # --- tools ------------------------------------------------------------------------------------------

    def tools(self, names: Any, options: dict[str, dict[str, Any]] | None) -> list[Any]:
        """The tools *names* with *options* (:func:`heavy.tools.make_tools`), built once per configuration and
        shared by the runs that ask for them; closed with the session (a tool opens what it needs again, per event
        loop, when used after that)."""
        from .tools import make_tools

        key = json.dumps([names if isinstance(names, (str, list)) else repr(names), options or {}], sort_keys=True,
                         default=repr)
        found = self._tools.get(key)
        if found is None:
            found = self._tools[key] = make_tools(names, options)
        return found

    # --- running ----------------------------------------------------------------------------------------

    def heavy(self, settings: RunSettings | None = None, **options: Any) -> Any:
        """A :class:`heavy.Heavy` over this session: *settings* (default: the session's) with *options* laid over."""
        from .api import Heavy

        return Heavy(settings=settings if settings is not None else self.settings, session=self, **options)

    async def ask(self, prompt: Any, settings: RunSettings | None = None, **kwargs: Any) -> Result:
        """Run *prompt* with *settings* (default: the session's); ``kwargs`` are :meth:`heavy.Heavy.ask`'s
        (``on_event``, ``pool``, ``tools``, ``tool_choice``...)."""
        return await self.heavy(settings).ask(prompt, **kwargs)

    async def sample(self, prompt: Any, settings: RunSettings | None = None, **kwargs: Any) -> list[Hypothesis]:
        """Only sample (:meth:`heavy.Heavy.sample`) with *settings*."""
        return await self.heavy(settings).sample(prompt, **kwargs)

    async def events(self, prompt: Any, settings: RunSettings | None = None, **kwargs: Any) -> AsyncIterator[Event]:
        """The run's progress events as they happen (:meth:`heavy.Heavy.events`)."""
        async for event in self.heavy(settings).events(prompt, **kwargs):
            yield event

    async def aclose(self) -> None:
        """Close every connection and tool (safe to call twice); the session opens new ones if used again."""
        stacks, self._stacks = list(self._stacks.values()), {}
        tools, self._tools = [t for group in self._tools.values() for t in group], {}
        for stack in stacks:
            await stack.aclose()
        for tool in tools:
            await tool.aclose()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class _Borrowed(WrapperProvider):
    """A caller's provider: used, never closed by heavy (its owner decides its lifetime)."""

    async def aclose(self) -> None:
        return None


def check_session_arguments(session: Session | None, **given: Any) -> None:
    """A Heavy given a session takes its connections from it: arguments that configure connections are the
    session's, and giving both is a mistake to report, not to resolve silently."""
    clash = sorted(name for name, value in given.items() if value is not None)
    if session is not None and clash:
        raise ConfigError(f"{', '.join(clash)} configure connections: give them to the Session, not to a Heavy that "
                          "uses one (Session(retry=..., transport=..., providers=...))")
