"""Providers that wrap providers: policies (concurrency now; retry, rate limits, fallback later) live
here rather than inside each wire format, so every provider gets them the same way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .base import Completion, CompletionRequest, Delta, Provider

__all__ = ["WrapperProvider", "ConcurrencyLimit"]


class WrapperProvider(Provider):
    """Delegates everything to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self.inner.complete(request)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        async for item in self.inner.stream(request):
            yield item

    async def aclose(self) -> None:
        await self.inner.aclose()


class ConcurrencyLimit(WrapperProvider):
    """At most ``limit`` calls to ``inner`` in flight; the rest wait their turn (FIFO)."""

    def __init__(self, inner: Provider, limit: int) -> None:
        if limit < 1:
            raise ValueError("concurrency limit must be at least 1")
        super().__init__(inner)
        self.limit = limit
        self._sem = asyncio.Semaphore(limit)

    async def complete(self, request: CompletionRequest) -> Completion:
        async with self._sem:
            return await self.inner.complete(request)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        async with self._sem:
            async for item in self.inner.stream(request):
                yield item
