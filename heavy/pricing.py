"""Prices per million tokens, and the cost of a call.

The table holds list prices of common models (USD per 1M tokens) as published by their vendors in
2025; prices change, so every entry can be overridden (``[prices]`` in the config file, or
``heavy.pricing.set_price``). A model is matched by the longest table key that prefixes its id, so
``gpt-4.1-mini-2025-04-14`` finds ``gpt-4.1-mini``. Local and simulated models cost nothing: the presets
that need no API key (``key_required=False`` in :mod:`heavy.models`) are the ones on the user's own machine.

Reasoning tokens are billed as output tokens (they are included in ``completion_tokens`` by every
provider heavy speaks). Prompt tokens are billed three ways (:class:`~heavy.types.Usage`): read from the
provider's prompt cache at ``cached_input``, written to it at ``cache_write`` (Anthropic: 1.25x the input price
for its 5-minute cache; OpenAI and Gemini charge nothing extra for their automatic caches), the rest at
``input``. :func:`list_cost` is what the same calls would cost with none of that and none of a native-``n``
request's sharing: each hypothesis sending its whole prompt at the input price; :func:`model_savings` the
difference, which ``Result.saved_usd`` adds up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .models import PRESETS
from .profiles import profile
from .types import Usage

__all__ = ["Price", "PRICES", "price_for", "cost", "list_cost", "model_cost", "model_savings", "saved_usd",
           "set_price", "FREE_PRESETS", "BATCH_MULTIPLIERS", "batch_cost"]


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens: ``input`` (uncached prompt), ``output``, ``cached_input`` (a cache read; ``None``:
    the input price) and ``cache_write`` (a cache write; ``None``: the input price)."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


def _anthropic(input: float, output: float) -> Price:
    """An Anthropic price: cache reads at 0.1x the input price, 5-minute cache writes at 1.25x."""
    return Price(input, output, round(input * 0.1, 6), round(input * 1.25, 6))


PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-5": Price(1.25, 10.0, 0.125),
    "gpt-5-mini": Price(0.25, 2.0, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-4.1": Price(2.0, 8.0, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4o": Price(2.50, 10.0, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "o3": Price(2.0, 8.0, 0.50),
    "o4-mini": Price(1.10, 4.40, 0.275),
    # Anthropic
    "claude-opus-4": _anthropic(15.0, 75.0),
    "claude-opus-4-5": _anthropic(5.0, 25.0),
    "claude-sonnet-4": _anthropic(3.0, 15.0),
    "claude-haiku-4": _anthropic(1.0, 5.0),
    "claude-3-5-haiku": _anthropic(0.80, 4.0),
    # Google
    "gemini-2.5-pro": Price(1.25, 10.0, 0.31),
    "gemini-2.5-flash": Price(0.30, 2.50, 0.075),
    "gemini-2.5-flash-lite": Price(0.10, 0.40, 0.025),
    # xAI
    "grok-4": Price(3.0, 15.0, 0.75),
    "grok-3-mini": Price(0.30, 0.50, 0.075),
    # DeepSeek
    "deepseek-chat": Price(0.27, 1.10, 0.07),
    "deepseek-reasoner": Price(0.55, 2.19, 0.14),
}

#: Presets whose models run on the user's own machine (or are simulated): always free (their profiles say
#: so: a server on this machine is the kind that needs no key).
FREE_PRESETS = frozenset(name for name in PRESETS if not profile(name, "").paid)


#: What a provider's batch API charges, as a share of its interactive price (the profiles' ``batch_discount``:
#: OpenAI's Batch API and Anthropic's Message Batches bill every token at half the list price). A preset not
#: named here has no batch API heavy speaks.
BATCH_MULTIPLIERS: dict[str, float] = {name: d for name in PRESETS if (d := profile(name, "").batch_discount)}


def set_price(model_prefix: str, input: float, output: float, cached_input: float | None = None,
              cache_write: float | None = None) -> None:
    """Add or override a price (USD per 1M tokens) for models whose id starts with *model_prefix*."""
    PRICES[model_prefix] = Price(input, output, cached_input, cache_write)


def price_for(preset: str, model: str) -> Price | None:
    """The price of *model* on *preset*; ``Price(0, 0)`` when local; ``None`` when unknown."""
    if preset in FREE_PRESETS:
        return Price(0.0, 0.0, 0.0)
    bare = model.split("/")[-1]  # openrouter-style "openai/gpt-4.1"
    keys = [k for k in PRICES if bare.startswith(k)]
    return PRICES[max(keys, key=len)] if keys else None


def cost(usage: Usage, price: Price) -> float:
    """USD for *usage* at *price*: uncached input, cache reads, cache writes and output each at their rate."""
    read = min(usage.cache_read_tokens, usage.prompt_tokens)
    write = min(usage.cache_write_tokens, usage.prompt_tokens - read)
    read_rate = price.cached_input if price.cached_input is not None else price.input
    write_rate = price.cache_write if price.cache_write is not None else price.input
    return ((usage.prompt_tokens - read - write) * price.input + read * read_rate + write * write_rate
            + usage.completion_tokens * price.output) / 1e6


def list_cost(usage: Usage, price: Price) -> float:
    """USD for *usage* at the list price, as a naive fan-out would have paid it: every prompt token (the
    shared ones of a native-``n`` request included) at the input price, no cache reads or writes."""
    sent = usage.prompt_tokens + usage.shared_prompt_tokens
    return (sent * price.input + usage.completion_tokens * price.output) / 1e6


def model_cost(label: str, usage: Usage) -> float | None:
    """USD for *usage* on the model *label* (``preset:model``, as hypotheses and calls name it); ``None``
    when its price is unknown. What a run charges each call (:class:`heavy.ledger.Ledger`)."""
    preset, _, model = label.partition(":")
    p = price_for(preset, model)
    return None if p is None else cost(usage, p)


def model_savings(label: str, usage: Usage) -> float | None:
    """USD that caching and native ``n`` saved on *usage* of the model *label* (:func:`list_cost` minus
    :func:`cost`; negative when cache writes cost more than they saved); ``None`` when the price is unknown."""
    preset, _, model = label.partition(":")
    p = price_for(preset, model)
    return None if p is None else list_cost(usage, p) - cost(usage, p)


def saved_usd(calls: "Iterable[tuple[str, Usage]]") -> float | None:
    """What caching and native ``n`` saved over *calls* (``(model label, usage)`` each, e.g. every hypothesis
    and aggregator call of a Result); ``None`` when a price is unknown."""
    total = 0.0
    for label, usage in calls:
        saved = model_savings(label, usage)
        if saved is None:
            return None
        total += saved
    return total


def batch_cost(label: str, usage: Usage) -> float | None:
    """USD for *usage* on the model *label* when it was sampled through its provider's batch API
    (:data:`BATCH_MULTIPLIERS` of :func:`model_cost`); ``None`` when the price is unknown or the provider has
    no batch API."""
    multiplier = BATCH_MULTIPLIERS.get(label.partition(":")[0])
    price = model_cost(label, usage)
    return None if price is None or multiplier is None else price * multiplier
