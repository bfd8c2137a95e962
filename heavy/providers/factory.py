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

__all__ = ["build_provider", "NATIVE_CHOICES", "CACHE_KEY_FIELD"]

#: Presets whose endpoint generates several choices in one request (``n``), and how many at most: OpenAI's
#: documented ceiling; vLLM has none of its own (heavy's MAX_N bounds a run anyway); llama-server as many as
#: it has slots (0: ask its /props). Ollama ignores ``n``, Groq refuses it; the others are not known to honour it.
NATIVE_CHOICES: dict[str, int] = {"openai": 128, "vllm": 128, "llamacpp": 0, "local": 0}
#: Presets that route requests sharing a prefix to the same cache by a key in the body (only OpenAI's own API
#: documents it; another server may refuse an unknown field).
CACHE_KEY_FIELD: dict[str, str] = {"openai": "prompt_cache_key"}


def build_provider(spec: ModelSpec, *, transport: Any = None) -> Provider:
    """A new provider (with its own pooled HTTP client) for *spec*; ``transport`` injects an httpx transport."""
    wire = spec.preset.wire
    # A key held back from this endpoint explains the 401 it may cause (heavy.models: where a key goes).
    hint = spec.withheld_key_hint()
    if wire == "openai":
        name = spec.preset.name
        # OpenAI's preset may point anywhere (OPENAI_BASE_URL, --base-url): its n and prompt_cache_key are known
        # only of its own endpoint. The local presets name the server itself, wherever it listens.
        own = name != "openai" or spec.base_url == spec.preset.base_url.rstrip("/")
        return OpenAIProvider(spec.base_url, spec.api_key, name=name, max_tokens_field=spec.preset.max_tokens_field,
                              transport=transport, auth_hint=hint,
                              max_choices=NATIVE_CHOICES.get(name, 1) if own else 1,
                              cache_key_field=CACHE_KEY_FIELD.get(name) if own else None)
    if wire == "anthropic":
        return AnthropicProvider(spec.base_url, spec.api_key, name=spec.preset.name, transport=transport,
                                 auth_hint=hint)
    if wire == "gemini":
        return GeminiProvider(spec.base_url, spec.api_key, name=spec.preset.name, transport=transport, auth_hint=hint)
    raise ValueError(f"no provider for wire format {wire!r} (preset {spec.preset.name!r})")
