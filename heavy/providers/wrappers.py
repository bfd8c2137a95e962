"""Providers that wrap providers. Policies — concurrency, rate limits with a shared cooldown, retries —
live here rather than inside each wire format, so every provider gets them the same way::

    Retry(RateLimit(ConcurrencyLimit(provider)))

Retry is outermost so that a call sleeping in backoff holds no concurrency slot, and a retried call
passes the rate limiter (and its cooldown) again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .. import constants as C
from ..errors import ProviderError, StreamInterrupted
from ..ledger import current_ledger, note
from .base import Completion, CompletionRequest, Delta, Provider

__all__ = ["WrapperProvider", "ConcurrencyLimit", "RateLimit", "RetryPolicy", "Retry"]


class WrapperProvider(Provider):
    """Delegates everything to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_choices = inner.max_choices
        #: What the models behind it accept (heavy.profiles.Profiles), when the stack was built with profiles.
        self.profiles = getattr(inner, "profiles", None)

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self.inner.complete(request)

    async def choice_limit(self) -> int:
        return await self.inner.choice_limit()

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


def _estimate_tokens(request: CompletionRequest) -> int:
    """Tokens a request may use, for a tokens-per-minute limit: ~4 characters a token, plus max_tokens."""
    chars = sum(len(m.text()) for m in request.messages)
    return chars // 4 + (request.params.max_tokens or 512) * request.n


class RateLimit(WrapperProvider):
    """Requests-per-minute and tokens-per-minute limits (token buckets) and a **shared cooldown**.

    When one call gets a 429 with Retry-After, :meth:`cool_down` makes every sibling wait until then
    instead of hammering the provider and collecting 429s of its own.
    """

    def __init__(self, inner: Provider, *, rpm: float | None = None, tpm: float | None = None) -> None:
        super().__init__(inner)
        self.rpm, self.tpm = rpm, tpm
        # Buckets hold C.RATE_BURST_SECONDS worth of allowance: a minute's worth at once is exactly the
        # burst that trips providers' own per-second smoothing.
        self._req_cap = max(1.0, (rpm or 0.0) * C.RATE_BURST_SECONDS / 60)
        self._tok_cap = max(1.0, (tpm or 0.0) * C.RATE_BURST_SECONDS / 60)
        self._req_tokens, self._tok_tokens, self._stamp = self._req_cap, self._tok_cap, time.monotonic()
        self.cooldown_until = 0.0
        self._lock = asyncio.Lock()

    def cool_down(self, seconds: float) -> None:
        """Hold every call to this provider for *seconds* from now (extends, never shortens)."""
        self.cooldown_until = max(self.cooldown_until, time.monotonic() + seconds)

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed, self._stamp = now - self._stamp, now
        if self.rpm:
            self._req_tokens = min(self._req_cap, self._req_tokens + elapsed * self.rpm / 60)
        if self.tpm:
            self._tok_tokens = min(self._tok_cap, self._tok_tokens + elapsed * self.tpm / 60)

    async def _acquire(self, request: CompletionRequest) -> None:
        need = min(_estimate_tokens(request), self._tok_cap) if self.tpm else 0
        async with self._lock:  # FIFO: one waiter at a time takes from the buckets
            while True:
                wait = self.cooldown_until - time.monotonic()
                self._refill()
                if self.rpm and self._req_tokens < 1:
                    wait = max(wait, (1 - self._req_tokens) * 60 / self.rpm)
                if self.tpm and self._tok_tokens < need:
                    wait = max(wait, (need - self._tok_tokens) * 60 / self.tpm)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.rpm:
                self._req_tokens -= 1
            if self.tpm:
                self._tok_tokens -= need

    async def complete(self, request: CompletionRequest) -> Completion:
        await self._acquire(request)
        return await self.inner.complete(request)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        await self._acquire(request)
        async for item in self.inner.stream(request):
            yield item


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry (a value object; see heavy.constants for why these defaults)."""

    max_attempts: int = C.RETRY_MAX_ATTEMPTS
    base_delay: float = C.RETRY_BASE_DELAY
    max_delay: float = C.RETRY_MAX_DELAY
    retry_after_cap: float = C.RETRY_AFTER_CAP

    def delay(self, exc: ProviderError, attempt: int, rng: random.Random = random._inst) -> float | None:  # type: ignore[attr-defined]
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up now."""
        if not exc.retryable or attempt + 1 >= self.max_attempts:
            return None
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= self.retry_after_cap else None
        return min(self.max_delay, self.base_delay * 2**attempt) * rng.uniform(0.5, 1.0)


class Retry(WrapperProvider):
    """Retries retryable errors with backoff, honouring Retry-After, within the run's shared retry budget.

    A stream that fails before delivering anything is retried like a plain call; one that fails after
    delivering text raises :class:`StreamInterrupted` (the sampler re-samples it from scratch). On a
    429, the ``gate`` (the provider's RateLimit) cools down for every sibling.
    """

    def __init__(self, inner: Provider, policy: RetryPolicy | None = None, gate: RateLimit | None = None) -> None:
        super().__init__(inner)
        self.policy = policy or RetryPolicy()
        self.gate = gate

    def _wait_for(self, exc: ProviderError, attempt: int) -> float | None:
        delay = self.policy.delay(exc, attempt)
        if delay is None:
            return None
        ledger = current_ledger()
        if ledger is not None and not ledger.take_retry():
            note(f"retry budget of the run spent; not retrying {type(exc).__name__}")
            return None
        if exc.status == 429 and self.gate is not None:
            self.gate.cool_down(delay)
        why = f"HTTP {exc.status}" if exc.status else type(exc).__name__
        note(f"attempt {attempt + 1} failed ({why}); retrying in {delay:.2f}s")
        return delay

    async def complete(self, request: CompletionRequest) -> Completion:
        attempt = 0
        while True:
            try:
                return await self.inner.complete(request)
            except ProviderError as exc:
                delay = self._wait_for(exc, attempt)
                if delay is None:
                    raise
            attempt += 1
            await asyncio.sleep(delay)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        attempt = 0
        while True:
            delivered = False
            try:
                async for item in self.inner.stream(request):
                    if isinstance(item, Delta) and (item.text or item.reasoning):
                        delivered = True
                    yield item
                return
            except ProviderError as exc:
                if delivered:
                    raise StreamInterrupted(
                        f"stream broke after delivering text ({exc})", provider=exc.provider, model=exc.model,
                        status=exc.status, request_id=exc.request_id, retryable=exc.retryable,
                    ) from exc
                delay = self._wait_for(exc, attempt)
                if delay is None:
                    raise
            attempt += 1
            await asyncio.sleep(delay)
