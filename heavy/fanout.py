"""How the N requests of a run reach a model: all at once, staggered behind one, or as choices of one request.

A Heavy run sends one prompt N times. Sent as N separate requests at once (``parallel``), the prompt is paid
N times. Two ways make N hypotheses cost about one prompt (``fanout`` run option, :func:`arrange`):

- ``stagger``: one request goes first; the others wait until it starts answering (its first streamed piece,
  at most :data:`STAGGER_MAX_WAIT` seconds) and then read the prefix it put in the provider's prompt cache.
  Anthropic caches only a prefix marked with ``cache_control`` and only once the writing response has begun,
  so without staggering every request writes (1.25x) and none reads; OpenAI and Gemini cache by themselves
  but a request can only hit an entry a finished prefill left. The shared prefix (the prompt the siblings
  have in common) is marked for Anthropic (``CompletionRequest.cache_prefix``) and named for OpenAI
  (``prompt_cache_key``). The price: one time-to-first-token of added latency.
- ``n``: the requests that are identical but for their seed (the N first turns, sent together) become one
  request with ``n`` choices, split into as many requests as the endpoint allows (OpenAI 128, vLLM; llama-server
  as many as it has slots): the prompt is paid once per request. What a separate request per hypothesis kept
  and this does not: hypotheses of one request finish together when it ends (the API reports usage once per
  request; their text still streams live, each to its own hypothesis); one failure fails all of them; an early
  stop or a timeout cancels the request only when all of its hypotheses are cancelled; one seed per request
  (the first hypothesis's; choices differ by sampling). An endpoint that refuses ``n`` (400/422) or answers
  fewer choices is asked once per hypothesis instead, and not asked for ``n`` again by this process (the model's
  profile remembers it).
- ``auto`` (the default) picks per model, by its profile (:mod:`heavy.profiles`): ``n`` on OpenAI's own endpoint
  and vLLM (no added latency; not for the Responses API, which has no ``n``);
  ``stagger`` on a paid API whose cache the shared prefix is long enough for (:mod:`heavy.caching`: Anthropic,
  Gemini, OpenAI where ``n`` does not apply), and on heavy's own local server for a prefix of 1024 tokens or
  more (its llama-server reuses a prefix evaluated in one slot in the others: measured, it evaluated the
  prompt once instead of twice and answered in a third of the time); only with siblings to read the cache;
  ``parallel`` otherwise, and for the simulated model. Not ``n`` on llama-server by default: it admits an
  n-request only once that many of its slots are free at the same time, which a busy server may not offer for
  minutes (ask for ``n`` explicitly).

Only sampling goes through here (a run's sampler); judge and aggregator calls are single requests. The
measured trade-off (input cost and added latency per provider, the local server's prompt evaluations) is in
docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from .caching import estimate_tokens
from .errors import ProviderError
from .profiles import Lesson, ModelProfile, Profiles
from .providers.base import Completion, CompletionRequest, Delta, Provider
from .providers.wrappers import WrapperProvider
from .ledger import note
from .sampler import ModelRef
from .types import Message, Usage

__all__ = ["FANOUTS", "Fanout", "arrange", "split_usage", "STAGGER_MAX_WAIT"]

Mode = Literal["auto", "parallel", "stagger", "n"]
FANOUTS: tuple[str, ...] = ("auto", "parallel", "stagger", "n")
#: Seconds the staggered requests wait at most for the first one to start answering (a thinking model that
#: streams nothing while it thinks would otherwise hold them back for its whole answer).
STAGGER_MAX_WAIT = 30.0
#: Choices asked of an endpoint whose own limit is unknown, when ``n`` was asked for explicitly.
_UNKNOWN_LIMIT = 128
_REFUSED = frozenset({400, 422})


def arrange(refs: Sequence[ModelRef], mode: str, *, siblings: int) -> list[ModelRef]:
    """*refs* with each model's provider wrapped in one :class:`Fanout` (shared by the refs of that model) that
    sends its requests as *mode* says; *siblings* is how many hypotheses a run samples at once."""
    if mode not in FANOUTS:
        raise ValueError(f"unknown fanout {mode!r}; one of {', '.join(FANOUTS)}")
    wrapped: dict[tuple[int, str], Fanout] = {}
    out = []
    for ref in refs:
        key = (id(ref.provider), ref.model)
        if key not in wrapped:
            wrapped[key] = Fanout(ref.provider, label=ref.label, mode=mode, siblings=siblings)  # type: ignore[arg-type]
        out.append(ModelRef(label=ref.label, provider=wrapped[key], model=ref.model))
    return out


class Fanout(WrapperProvider):
    """One model's provider as one run's sampler uses it: plans each request (see the module docstring),
    marks and names its shared prefix, holds staggered requests behind their leader and gathers identical
    requests into one with several choices. Closing it leaves the provider open (the Heavy owns that)."""

    def __init__(self, inner: Provider, *, label: str, mode: Mode = "auto", siblings: int = 2) -> None:
        super().__init__(inner)
        preset, _, self.model = label.partition(":")
        self.preset = preset
        # What the model takes (n, its cache, whether it is paid) and what its endpoint refused: its profile.
        self._profiles: Profiles = getattr(inner, "profiles", None) or Profiles(preset)
        self.mode: Mode = mode
        self.siblings = siblings
        self._bases: set[tuple[int, str]] = set()  # (messages, digest of them) of every prompt seen
        self._gates: dict[str, asyncio.Event] = {}  # shared-prefix digest -> opened when its leader answers
        self._forming: dict[str, _Group] = {}  # request fingerprint -> the n-request gathering its members

    async def aclose(self) -> None:
        return None

    # --- planning ---------------------------------------------------------------------------------

    def _shared(self, request: CompletionRequest) -> tuple[int, str]:
        """The prefix this request shares with its siblings (the first prompt seen that it starts with, else
        its whole prompt) as (messages, digest)."""
        msgs = request.messages
        for length in sorted({n for n, _ in self._bases}, reverse=True):
            if length <= len(msgs):
                digest = _digest(self.model, msgs[:length])
                if (length, digest) in self._bases:
                    return length, digest
        digest = _digest(self.model, msgs)
        self._bases.add((len(msgs), digest))
        return len(msgs), digest

    async def _plan(self, request: CompletionRequest, shared: int) -> str:
        prof = self._profiles(self.model)
        if self.mode == "n" or (self.mode == "auto" and prof.auto_n):
            if "n" not in prof.refuses and await self._limit() > 1:
                return "n"
            if self.mode == "n":
                return self._auto_cache(request, shared, prof)
        if self.mode in ("parallel", "stagger"):
            return self.mode
        return self._auto_cache(request, shared, prof)

    def _auto_cache(self, request: CompletionRequest, shared: int, prof: ModelProfile) -> str:
        """``stagger`` where a paid API's cache (or heavy's local server) can hold the shared prefix and siblings
        will read it."""
        rules = prof.cache
        if rules is None or not (prof.paid or prof.stagger_free) or self.siblings < 2:
            return "parallel"
        chars = sum(len(m.text()) for m in request.messages[:shared])
        return "stagger" if estimate_tokens(chars) >= rules.min_tokens else "parallel"

    async def _limit(self) -> int:
        limit = await self.inner.choice_limit()
        return limit if limit > 1 or self.mode != "n" else _UNKNOWN_LIMIT

    def refuses_n(self, why: str) -> None:
        """The endpoint refused or ignored ``n`` for this model: ask once per hypothesis from now on (the whole
        process: :class:`~heavy.profiles.Profiles` remembers)."""
        self._profiles.learn(self.model, Lesson("n", None, why))

    def _shaped(self, request: CompletionRequest, plan: str, shared: int, digest: str) -> CompletionRequest:
        update: dict[str, Any] = {"cache_key": f"heavy-{digest[:24]}"}
        if plan == "stagger":  # a mark without staggering makes every request write (and pay 1.25x)
            update["cache_prefix"] = shared
        return request.model_copy(update=update)

    # --- the provider interface ---------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        final: Completion | None = None
        async for item in self._send(request, stream=False):
            if isinstance(item, Completion):
                final = item
        assert final is not None
        return final

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        async for item in self._send(request, stream=True):
            yield item

    async def _send(self, request: CompletionRequest, *, stream: bool) -> AsyncIterator[Delta | Completion]:
        shared, digest = self._shared(request)
        plan = await self._plan(request, shared)
        request = self._shaped(request, plan, shared, digest)
        if plan == "n":
            async for item in self._join(request, stream):
                yield item
            return
        if plan == "stagger":
            async for item in self._staggered(request, digest, stream):
                yield item
            return
        async for item in _call(self.inner, request, stream):
            yield item

    # --- stagger ----------------------------------------------------------------------------------

    async def _staggered(self, request: CompletionRequest, digest: str,
                         stream: bool) -> AsyncIterator[Delta | Completion]:
        gate = self._gates.get(digest)
        if gate is None:  # the leader: streamed, so its first piece tells when the cache entry is there
            gate = self._gates[digest] = asyncio.Event()
            opener = asyncio.get_running_loop().call_later(STAGGER_MAX_WAIT, gate.set)
            try:
                async for item in self.inner.stream(request):
                    gate.set()
                    if stream or isinstance(item, Completion):
                        yield item
            finally:
                gate.set()
                opener.cancel()
            return
        if not gate.is_set():
            started = time.monotonic()
            await gate.wait()
            note(f"staggered fan-out: waited {time.monotonic() - started:.2f}s for the first request of this "
                 "prompt to start answering")
        async for item in _call(self.inner, request, stream):
            yield item

    # --- native n ---------------------------------------------------------------------------------

    async def _join(self, request: CompletionRequest, stream: bool) -> AsyncIterator[Delta | Completion]:
        key, limit = _fingerprint(request, stream), await self._limit()
        group = self._forming.get(key)
        if group is None or len(group.members) >= group.limit:
            group = self._forming[key] = _Group(self, key, request, stream, limit)
        member = group.join()
        try:
            while True:
                item = await member.get()
                if item is _ALONE:  # the endpoint would not give this hypothesis its own choice
                    async for piece in _call(self.inner, request, stream):
                        yield piece
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Completion):
                    if group.size > 1:
                        note(f"one of {group.size} choices of one request (n={group.size}): the prompt was sent "
                             "once and the request's usage is shared out")
                    return
        finally:
            group.leave(member)


class _Member:
    """One hypothesis waiting on a shared request: what is meant for it arrives in its queue."""

    __slots__ = ("queue", "gone")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.gone = False

    async def get(self) -> Any:
        return await self.queue.get()


_ALONE = object()  # tells a member to send its own request


class _Group:
    """Requests identical but for their seed, gathered in one event-loop turn into one request with ``n``."""

    def __init__(self, owner: Fanout, key: str, request: CompletionRequest, stream: bool, limit: int) -> None:
        self.owner, self.key, self.request, self.stream, self.limit = owner, key, request, stream, limit
        self.members: list[_Member] = []
        self.size = 0
        self.task: asyncio.Task[None] | None = None
        # Siblings are started together and reach here in the same turn of the loop; the request leaves a
        # turn later, with everyone who came.
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._launch)

    def join(self) -> _Member:
        member = _Member()
        self.members.append(member)
        return member

    def leave(self, member: _Member) -> None:
        member.gone = True
        if self.task is not None and not self.task.done() and all(m.gone for m in self.members):
            self.task.cancel()  # nobody is waiting for any of its choices any more

    def _launch(self) -> None:
        if self.owner._forming.get(self.key) is self:
            del self.owner._forming[self.key]
        self.members = [m for m in self.members if not m.gone]
        self.size = len(self.members)
        if not self.members:
            return
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        k = self.size
        if k == 1:
            request = self.request
        else:
            request = self.request.model_copy(update={"n": k})
        try:
            final: Completion | None = None
            async for item in _call(self.owner.inner, request, self.stream):
                if isinstance(item, Completion):
                    final = item
                elif item.choice < k:
                    self.members[item.choice].queue.put_nowait(Delta(text=item.text, reasoning=item.reasoning))
            assert final is not None
        except ProviderError as exc:
            if k > 1 and exc.status in _REFUSED:
                self.owner.refuses_n(f"n={k} refused: {exc}")
                for m in self.members:
                    m.queue.put_nowait(_ALONE)
                return
            for m in self.members:
                m.queue.put_nowait(exc)
            return
        except Exception as exc:  # a provider bug: each hypothesis records it as its failure
            for m in self.members:
                m.queue.put_nowait(exc)
            return
        choices = (final.choices or [final])[:k]
        if len(choices) < k:  # the endpoint ignored n: the others ask on their own
            self.owner.refuses_n(f"n={k} answered with {len(choices)} choice(s)")
        usages = split_usage(final.usage, choices)
        for member, choice, usage in zip(self.members, choices, usages):
            member.queue.put_nowait(choice.model_copy(update={"usage": usage, "model": final.model,
                                                              "request_id": final.request_id, "choices": None}))
        for member in self.members[len(choices):]:
            member.queue.put_nowait(_ALONE)


def split_usage(total: Usage, choices: Sequence[Completion]) -> list[Usage]:
    """One request's usage shared out over its *choices*: the prompt (and its cache reads and writes) evenly,
    each choice's ``shared_prompt_tokens`` the rest of the prompt it used; completion and reasoning tokens
    in proportion to each choice's text (the API reports them for the request only). The shares add up to
    *total*."""
    k = len(choices)
    if k == 1:
        return [total]
    text = [len(c.text) + len(json.dumps([t.arguments for t in c.tool_calls or []])) + 1 for c in choices]
    thought = [len(c.reasoning or "") + 1 for c in choices]
    prompt = _even(total.prompt_tokens, k)
    read, write = _even(total.cache_read_tokens, k), _even(total.cache_write_tokens, k)
    completion = _proportional(total.completion_tokens, [a + b for a, b in zip(text, thought)])
    reasoning = _proportional(total.reasoning_tokens, thought)
    shared = _even(total.shared_prompt_tokens, k)
    return [Usage(prompt_tokens=prompt[i], completion_tokens=completion[i], reasoning_tokens=reasoning[i],
                  cache_read_tokens=read[i], cache_write_tokens=write[i],
                  shared_prompt_tokens=shared[i] + total.prompt_tokens - prompt[i]) for i in range(k)]


def _even(total: int, k: int) -> list[int]:
    base, extra = divmod(total, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def _proportional(total: int, weights: list[int]) -> list[int]:
    """*total* split in proportion to *weights* (largest remainders), adding up exactly."""
    whole = sum(weights)
    raw = [total * w / whole for w in weights]
    out = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[: total - sum(out)]:
        out[i] += 1
    return out


async def _call(provider: Provider, request: CompletionRequest, stream: bool) -> AsyncIterator[Delta | Completion]:
    if stream:
        async for item in provider.stream(request):
            yield item
    else:
        yield await provider.complete(request)


def _digest(model: str, messages: Sequence[Message]) -> str:
    h = hashlib.blake2b(model.encode(), digest_size=16)
    for m in messages:
        h.update(m.model_dump_json().encode())
    return h.hexdigest()


def _fingerprint(request: CompletionRequest, stream: bool) -> str:
    """What makes requests one ``n``-request: everything but the seed."""
    data = request.model_dump_json(exclude={"params": {"seed"}})
    return hashlib.blake2b(f"{stream}:{data}".encode(), digest_size=16).hexdigest()
