"""Build the provider for a resolved model spec: the one place that maps a preset's wire format
(openai, anthropic, gemini) to a provider class, so the API layer never names one.

Presets answered in-process rather than over a wire format (a provider given to ``Heavy(providers=...)``,
the simulated model) are resolved above the providers, in :mod:`heavy.api`.
"""

from __future__ import annotations

from typing import Any

from ..models import ModelSpec
from .anthropic import AnthropicProvider
from .base import Provider
from .gemini import GeminiProvider
from .openai import OpenAIProvider

__all__ = ["build_provider"]


def build_provider(spec: ModelSpec, *, transport: Any = None) -> Provider:
    """A new provider (with its own pooled HTTP client) for *spec*; ``transport`` injects an httpx transport."""
    wire = spec.preset.wire
    # A key held back from this endpoint explains the 401 it may cause (heavy.models: where a key goes).
    hint = spec.withheld_key_hint()
    if wire == "openai":
        return OpenAIProvider(spec.base_url, spec.api_key, name=spec.preset.name,
                              max_tokens_field=spec.preset.max_tokens_field, transport=transport, auth_hint=hint)
    if wire == "anthropic":
        return AnthropicProvider(spec.base_url, spec.api_key, name=spec.preset.name, transport=transport,
                                 auth_hint=hint)
    if wire == "gemini":
        return GeminiProvider(spec.base_url, spec.api_key, name=spec.preset.name, transport=transport, auth_hint=hint)
    raise ValueError(f"no provider for wire format {wire!r} (preset {spec.preset.name!r})")
