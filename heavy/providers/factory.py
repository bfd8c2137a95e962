"""Build the provider for a resolved model spec: the one place that maps a preset's wire format (openai,
responses, anthropic, gemini) to provider classes, so the API layer never names one.

Every provider built here is an endpoint's whole wire side: the wire provider(s) over one pooled HTTP client,
under :class:`~heavy.providers.adapt.Adapt`, which shapes requests by the models' profiles and learns
refusals (:mod:`heavy.profiles`). On OpenAI's own API and Azure, one endpoint serves two wires: Chat
Completions and the Responses API; :class:`Routed` sends each model's requests to the one its profile names
(the pro and codex models exist only on the Responses API, and an endpoint that says so for another model
moves it there too).

Presets answered in-process rather than over a wire format (a provider given to ``Heavy(providers=...)``,
the simulated model) are resolved above the providers, in :mod:`heavy.api`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..models import ModelSpec
from ..profiles import Profiles
from .adapt import Adapt
from .anthropic import AnthropicProvider
from .base import Completion, CompletionRequest, Delta, Provider
from .gemini import GeminiProvider
from .openai import OpenAIProvider
from .responses import ResponsesProvider

__all__ = ["build_provider", "Routed", "RESPONSES_PRESETS"]

#: Presets whose endpoint serves OpenAI's Responses API beside Chat Completions.
RESPONSES_PRESETS = frozenset({"openai", "openai-responses", "azure"})


class Routed(Provider):
    """One endpoint's wires (``{"openai": chat, "responses": responses}``, sharing one HTTP client): each request
    goes to the wire its model's profile names. Closing it closes each wire once."""

    def __init__(self, wires: dict[str, Provider], profiles: Profiles, *, default: str = "openai") -> None:
        self.wires, self.profiles, self.default = wires, profiles, default
        first = wires[default]
        self.name, self.max_choices = first.name, first.max_choices

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


def build_provider(spec: ModelSpec, *, transport: Any = None, background: bool = False) -> Provider:
    """A new provider (with its own pooled HTTP client) for *spec*; ``transport`` injects an httpx transport;
    ``background`` runs Responses API requests in background mode (polled: long pro-model runs)."""
    preset = spec.preset
    name = preset.name
    # A key held back from this endpoint explains the 401 it may cause (heavy.models: where a key goes).
    hint = spec.withheld_key_hint()
    profiles = Profiles(name, spec.base_url)
    defaults = profiles("")
    if preset.wire in ("openai", "responses"):
        bearer = spec.api_key if preset.auth == "bearer" else None
        headers = {preset.auth: spec.api_key} if spec.api_key and preset.auth != "bearer" else None
        chat = OpenAIProvider(spec.base_url, bearer, name=name, transport=transport, auth_hint=hint,
                              extra_headers=headers, max_choices=defaults.max_choices, profiles=profiles)
        if name not in RESPONSES_PRESETS:
            return Adapt(chat, profiles, label=name, routes=frozenset({"openai"}))
        responses = ResponsesProvider(spec.base_url, bearer, name=name, extra_headers=headers, auth_hint=hint,
                                      http=chat.http, background=background,
                                      summaries=lambda model: profiles(model).thinking.default,
                                      streams=lambda model: profiles(model).streams)
        routed = Routed({"openai": chat, "responses": responses}, profiles)
        return Adapt(routed, profiles, label=name, routes=frozenset({"openai", "responses"}))
    if preset.wire == "anthropic":
        provider: Provider = AnthropicProvider(spec.base_url, spec.api_key, name=name, transport=transport,
                                               auth_hint=hint, profiles=profiles)
    elif preset.wire == "gemini":
        provider = GeminiProvider(spec.base_url, spec.api_key, name=name, transport=transport, auth_hint=hint,
                                  profiles=profiles)
    else:
        raise ValueError(f"no provider for wire format {preset.wire!r} (preset {name!r})")
    return Adapt(provider, profiles, label=name)
