"""One :class:`heavy.Heavy` (and so one set of pooled provider clients) per distinct configuration.

A configuration is everything that is a ``Heavy(...)`` argument (models, aggregator, sampling parameters,
limits); per-call values (n, seed, strategy and its options, the messages) are not part of it, so one
Heavy serves every strategy and every n. Rate and concurrency limits of a provider are shared by all
requests that use the same configuration.

The pool is bounded: past ``max_size`` configurations, the least recently used idle one is closed.
A Heavy in use by a request is never closed under it.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from ..api import Heavy

__all__ = ["HeavyPool"]


class HeavyPool:
    """``acquire(key, kwargs)`` → a Heavy built by ``factory(**kwargs)`` once per key; ``release(key)`` after."""

    def __init__(self, factory: Callable[..., Heavy] = Heavy, max_size: int = 32) -> None:
        self.factory = factory
        self.max_size = max_size
        self._items: OrderedDict[str, Heavy] = OrderedDict()
        self._busy: Counter[str] = Counter()
        self.built = 0  #: Heavy instances constructed so far (tests check reuse with it)

    def __len__(self) -> int:
        return len(self._items)

    def acquire(self, key: str, kwargs: dict[str, Any]) -> Heavy:
        """The Heavy of *key*, built on first use (construction errors propagate: ConfigError etc.)."""
        h = self._items.get(key)
        if h is None:
            h = self.factory(**kwargs)
            self.built += 1
            self._items[key] = h
        self._items.move_to_end(key)
        self._busy[key] += 1
        return h

    def prebuild(self, key: str, kwargs: dict[str, Any]) -> Heavy:
        """Build (and keep, idle) the Heavy of *key* now: a server checks its defaults at startup this way."""
        h = self.acquire(key, kwargs)
        self._busy[key] -= 1
        if self._busy[key] <= 0:
            del self._busy[key]
        return h

    async def release(self, key: str) -> None:
        self._busy[key] -= 1
        if self._busy[key] <= 0:
            del self._busy[key]
        await self.trim()

    async def trim(self) -> None:
        """Close least recently used idle configurations beyond ``max_size``."""
        while len(self._items) > self.max_size:
            victim = next((k for k in self._items if not self._busy.get(k)), None)
            if victim is None:
                return  # all busy: over the bound until some request finishes
            await self._items.pop(victim).aclose()

    async def aclose(self) -> None:
        """Close every Heavy (server shutdown)."""
        items, self._items = list(self._items.values()), OrderedDict()
        for h in items:
            await h.aclose()
