"""Build the provider for a resolved model spec: the one place that maps a preset's wire format to a provider class,
found in the ``heavy.providers`` entry-point group (openai, responses, anthropic, gemini, sim), so neither the API
layer nor the session names one.

Every provider built here is an endpoint's whole wire side: the wire provider(s) over one pooled HTTP client,
under :class:`~heavy.providers.adapt.Adapt`, which shapes requests by the models' profiles and learns
refusals (:mod:`heavy.profiles`). On OpenAI's own API and Azure, one endpoint serves two wires: Chat
Completions and the Responses API; :class:`Routed` sends each model's requests to the one its profile names
(the pro and codex models exist only on the Responses API, and an endpoint that says so for another model
moves it there too).

A provider given to ``Heavy(providers=...)`` is the caller's own and is resolved above, in :mod:`heavy.session`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..errors import ConfigError
from ..models import ModelSpec
from ..profiles import Profiles
from ..registry import load, registered
from .adapt import Adapt
from .base import Completion, CompletionRequest, Delta, Provider
from .openai import OpenAIProvider
from .responses import ResponsesProvider

__all__ = ["build_provider", "registered_wires", "Routed", "RESPONSES_PRESETS", "ENTRY_POINT_GROUP"]

#: The entry-point group wire formats register in (``name = "module:ProviderClass"``, with ``from_spec``).
ENTRY_POINT_GROUP = "heavy.providers"

#: Presets whose endpoint serves OpenAI's Responses API beside Chat Completions.
RESPONSES_PRESETS = frozenset({"openai", "openai-responses", "azure"})


class Routed(Provider):
    """One endpoint's wires (``{"openai": chat, "responses": responses}``, sharing one HTTP client): each request
    goes to the wire its model's profile names. Closing it closes each wire once. Registered as the ``openai`` and
    ``responses`` wires: OpenAI's own API, Azure and ``openai-responses`` serve both, another vendor's OpenAI-compatible
    server Chat Completions only."""

    def __init__(self, wires: dict[str, Provider], profiles: Profiles, *, default: str = "openai") -> None:
        self.wires, self.profiles, self.default = wires, profiles, default
        first = wires[default]
        self.name, self.max_choices = first.name, first.max_choices

    @classmethod
    def from_spec(cls, spec: ModelSpec, profiles: Profiles, *, transport: Any = None,
                  background: bool = False) -> Provider:
        preset = spec.preset
        hint = spec.withheld_key_hint()  # a key held back from this endpoint explains the 401 it may cause
        bearer = spec.api_key if preset.auth == "bearer" else None
        headers = {preset.auth: spec.api_key} if spec.api_key and preset.auth != "bearer" else None
        chat = OpenAIProvider(spec.base_url, bearer, name=preset.name, transport=transport, auth_hint=hint,
                              extra_headers=headers, max_choices=profiles("").max_choices, profiles=profiles)
        if preset.name not in RESPONSES_PRESETS:
            return cls({"openai": chat}, profiles)
        responses = ResponsesProvider(spec.base_url, bearer, name=preset.name, extra_headers=headers, auth_hint=hint,
                                      http=chat.http, background=background,
                                      summaries=lambda model: profiles(model).thinking.default,
                                      streams=lambda model: profiles(model).streams)
        return cls({"openai": chat, "responses": responses}, profiles)

    def _wire(self, model: str) -> Provider:
        return self.wires.get(self.profiles(model).wire) or self.wires[self.default]

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self._wire(request.model).complete(request)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        async for item in self._wire(request.model).stream(request):
            yield item

    async def choice_limit(self) -> int:
        return await self.wires[self.default].choice_limit()

    @property
    def http(self) -> Any:
        """The endpoint's HTTP client (shared by its wires), for its other APIs (batches)."""
        return getattr(self.wires[self.default], "http", None)

    async def aclose(self) -> None:
        for wire in self.wires.values():
            await wire.aclose()


def registered_wires() -> dict[str, Any]:
    """Name → entry point of every wire format installed (``heavy.providers``; nothing is imported)."""
    return registered(ENTRY_POINT_GROUP)


def build_provider(spec: ModelSpec, *, transport: Any = None, background: bool = False) -> Provider:
    """A new provider (with its own pooled HTTP client) for *spec*: the wire its preset names, from the
    ``heavy.providers`` entry points (the built-ins register there like a plugin would: openai, responses,
    anthropic, gemini, sim), under :class:`~heavy.providers.adapt.Adapt`. ``transport`` injects an httpx
    transport; ``background`` runs Responses API requests in background mode (polled: long pro-model runs)."""
    cls = load(ENTRY_POINT_GROUP, spec.preset.wire, Provider, ConfigError)
    profiles = Profiles(spec.preset.name, spec.base_url)
    wire = cls.from_spec(spec, profiles, transport=transport, background=background)
    routes = frozenset(wire.wires) if isinstance(wire, Routed) else frozenset({spec.preset.wire})
    return Adapt(wire, profiles, label=spec.preset.name, routes=routes)
