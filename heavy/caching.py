"""What each provider documents about its prompt cache, in one place.

A Heavy run sends one prompt N times; a provider's prompt cache can make the N-1 repeats cheap. The rules
differ per API, and both :mod:`heavy.fanout` (whether staggering the fan-out can pay off) and the simulator
(:mod:`heavy.sim.cache`, which behaves by them) read them from here:

- **Anthropic** caches only a prefix marked with ``cache_control`` (up to 4 breakpoints), from a minimum length
  that depends on the model (1024 tokens for most; 2048 for Claude Haiku 3/3.5 and Sonnet 4.6; 4096 for Opus
  4.5/4.6 and Haiku 4.5). A write costs 1.25x the input price (5-minute entry, refreshed by every hit), a read
  0.1x; usage says ``cache_creation_input_tokens`` and ``cache_read_input_tokens``. An entry can be read only
  once the response that writes it has begun: requests sent at the same moment all miss (and all write).
- **OpenAI** caches every prompt of 1024 tokens or more by itself, matching a prefix in 128-token steps
  beyond the first 1024 (``usage.prompt_tokens_details.cached_tokens``); no write charge; requests are routed
  by a hash of the first ~256 tokens and the optional ``prompt_cache_key``. Entries live 5-10 minutes idle.
- **Gemini** (2.5 and later) caches implicitly from a minimum length per model (1024 tokens for 2.5 Flash,
  2048 for 2.5 Pro and 2.5 Flash-Lite, 4096 for Gemini 3) and reports ``usageMetadata.cachedContentTokenCount``;
  no write charge; its step and lifetime are not documented (the simulator assumes 128 tokens and 5 minutes).

Only what the documentation states is used to decide; the rest is marked as the simulator's assumption.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheRules", "cache_rules", "estimate_tokens"]


@dataclass(frozen=True)
class CacheRules:
    """One API's prompt cache: from ``min_tokens`` on, in ``step``-token increments beyond that, an entry lives
    ``ttl`` seconds after its last use; ``marked``: only a prefix marked by the request is cached;
    ``write_multiplier``: what a cache write costs relative to the input price (1: no surcharge)."""

    wire: str
    min_tokens: int
    step: int
    ttl: float
    marked: bool
    write_multiplier: float = 1.0


# (model id prefix, minimum tokens): the longest matching prefix wins.
_ANTHROPIC_MIN = (("claude-opus-4-5", 4096), ("claude-opus-4-6", 4096), ("claude-haiku-4-5", 4096),
                  ("claude-sonnet-4-6", 2048), ("claude-3-5-haiku", 2048), ("claude-3-haiku", 2048))
_GEMINI_MIN = (("gemini-2.5-flash", 1024), ("gemini-2.5-flash-lite", 2048), ("gemini-2.5-pro", 2048),
               ("gemini-3", 4096))
_DEFAULT_MIN = 1024


def _min_tokens(table: tuple[tuple[str, int], ...], model: str) -> int:
    bare = model.split("/")[-1].partition("@")[0]  # "openai/..." routes; the simulator's "name@overrides"
    hits = [(prefix, n) for prefix, n in table if bare.startswith(prefix)]
    return max(hits, key=lambda hit: len(hit[0]))[1] if hits else _DEFAULT_MIN


def cache_rules(wire: str, model: str) -> CacheRules | None:
    """The prompt cache of *model* behind the wire format *wire* (``openai``, ``anthropic``, ``gemini``);
    ``None`` for a wire heavy knows no cache rules of."""
    if wire == "anthropic":
        return CacheRules("anthropic", _min_tokens(_ANTHROPIC_MIN, model), 1, 300.0, True, 1.25)
    if wire == "openai":
        return CacheRules("openai", _DEFAULT_MIN, 128, 300.0, False)
    if wire == "gemini":
        return CacheRules("gemini", _min_tokens(_GEMINI_MIN, model), 128, 300.0, False)
    return None


def estimate_tokens(chars: int) -> int:
    """Tokens of *chars* characters of text, roughly (4 characters a token, as heavy estimates elsewhere)."""
    return chars // 4
