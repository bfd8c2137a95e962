"""The simulated server's prompt cache: each wire format caches as its API documents (:mod:`heavy.caching`).

A prompt is the sequence of its words (the simulator's tokens: ``SimRequest.prompt_tokens`` counts them), each
message's first word tagged with its role. Entries are kept per wire, model and prefix (a hash of the prefix's
tokens), at the prefix lengths the API can cache:

- **Anthropic**: only at the request's ``cache_control`` marks, and only marks at or beyond the model's
  minimum length. The longest marked prefix with a readable entry is read (``cache_read_input_tokens``); the
  longest marked prefix beyond it is written (``cache_creation_input_tokens``, the tokens between the two), by
  every request that finds no readable entry, even while another request is writing the same one.
- **OpenAI** and **Gemini**: every prompt from the minimum length on, at the minimum plus whole ``step``s (so
  OpenAI's ``cached_tokens`` comes in 128-token increments); no write is reported or charged.

An entry written by a request becomes readable when that request's first token is due (the API's "available
once the first response begins"; requests sent at the same moment all miss), and lives ``ttl`` seconds after
its last use. The simulator is one machine: OpenAI's routing (``prompt_cache_key``, the first 256 tokens) never
sends a request elsewhere. Automatic lookback before a mark (Anthropic checks ~20 blocks back) is not simulated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from ..caching import CacheRules, cache_rules
from .wire import SimRequest

__all__ = ["PromptCache", "CacheOutcome", "prompt_tokens"]

_MAX_ENTRIES = 200_000  # beyond this, expired entries are dropped first, then the oldest


@dataclass(frozen=True)
class CacheOutcome:
    """What one request did with the cache: prompt tokens read from it and written to it (the rest is
    processed afresh)."""

    read: int = 0
    write: int = 0


def prompt_tokens(request: SimRequest) -> list[str]:
    """The request's prompt as the simulator's tokens: every word, each message's first tagged with its role."""
    out: list[str] = []
    for role, text in request.messages:
        words = text.split()
        if words:
            words[0] = f"{role}:{words[0]}"
        out += words
    return out


class PromptCache:
    """Prefix cache entries of one simulated server (see the module docstring)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, int, bytes], list[float]] = {}  # key -> [readable_at, expires_at]

    def __len__(self) -> int:
        return len(self._entries)

    def account(self, wire: str, model: str, request: SimRequest, *, now: float,
                first_token: Callable[[int], float]) -> CacheOutcome:
        """Read and write the cache for *request* arriving at *now*; ``first_token(read)`` is when its first
        token is due once *read* prompt tokens came from the cache (what it writes is readable from then)."""
        rules = cache_rules(wire, model)
        if rules is None:
            return CacheOutcome()
        tokens = prompt_tokens(request)
        points = _points(rules, len(tokens), list(request.cache_marks))
        if not points:
            return CacheOutcome()
        digests = _digests(tokens, points)
        read = 0
        for p in reversed(points):
            entry = self._entries.get((wire, model, p, digests[p]))
            if entry is not None and entry[0] <= now < entry[1]:
                entry[1] = max(entry[1], now + request.cache_marks.get(p, rules.ttl))  # a hit refreshes it
                read = p
                break
        written = [p for p in points if p > read]
        ready = first_token(read)
        for p in written:
            key = (wire, model, p, digests[p])
            ttl = request.cache_marks.get(p, rules.ttl)
            entry = self._entries.get(key)
            if entry is None or entry[1] <= now:
                self._entries[key] = [ready, ready + ttl]
            else:  # being written by an earlier request: readable at whichever first token comes first
                entry[0] = min(entry[0], ready)
                entry[1] = max(entry[1], ready + ttl)
        if len(self._entries) > _MAX_ENTRIES:
            self._prune(now)
        write = (written[-1] - read) if written and rules.marked else 0
        return CacheOutcome(read=read, write=write)

    def _prune(self, now: float) -> None:
        live = {k: v for k, v in self._entries.items() if v[1] > now}
        if len(live) > _MAX_ENTRIES:
            live = dict(sorted(live.items(), key=lambda kv: kv[1][1])[len(live) - _MAX_ENTRIES // 2:])
        self._entries = live


def _points(rules: CacheRules, total: int, marks: list[int]) -> list[int]:
    """The prefix lengths of a *total*-token prompt that can have an entry, ascending."""
    if rules.marked:
        return sorted({m for m in marks if rules.min_tokens <= m <= total})
    if total < rules.min_tokens:
        return []
    return list(range(rules.min_tokens, total + 1, rules.step))


def _digests(tokens: list[str], points: list[int]) -> dict[int, bytes]:
    """The hash of ``tokens[:p]`` for every p of *points* (ascending), hashing each token once."""
    h = hashlib.blake2b(digest_size=16)
    out: dict[int, bytes] = {}
    done = 0
    for p in points:
        h.update(" ".join(tokens[done:p]).encode("utf-8") + b" ")
        done = p
        out[p] = h.copy().digest()
    return out
