"""OpenAI Chat Completions wire format (``POST {base}/chat/completions``).

Serves OpenAI itself and every server that speaks the same format: xAI, OpenRouter, Together, Groq,
DeepSeek, Mistral, vLLM, Ollama, llama.cpp, LM Studio and heavy's own simulator.

Several choices in one request (``CompletionRequest.n``, sent as ``n``) only where ``max_choices`` allows:
OpenAI, vLLM and the simulator, and llama-server up to its number of slots (``max_choices=0`` asks its
``/props``); Ollama ignores ``n`` and Groq refuses it, so there N hypotheses are N requests
(:mod:`heavy.fanout` decides). Streamed choices arrive interleaved, each chunk naming its ``index``; the
final Completion carries them all in ``choices`` and the request's usage (the prompt counted once).
llama-server reports usage per choice (a usage chunk after each; a complete answer's usage counts the first
choice's completion only). ``prompt_cache_key`` (``cache_key_field``, OpenAI only: other servers may reject
unknown fields) sends requests that share a prefix to the same cache; cached prompt tokens are read from
``usage.prompt_tokens_details.cached_tokens`` (OpenAI, xAI, vLLM, llama-server) or DeepSeek's
``prompt_cache_hit_tokens``.

Reasoning text arrives under different names depending on the server (``reasoning_content`` from
DeepSeek, vLLM and llama.cpp; ``reasoning`` from OpenRouter); both are kept apart from the answer.

Tool use: offered tools go out as ``tools: [{"type": "function", "function": {name, description,
parameters}}]``; calls come back in ``message.tool_calls`` (``function.arguments`` is a JSON *string*)
or, streaming, as ``delta.tool_calls`` fragments keyed by ``index`` (the id and name arrive first, the
arguments in pieces). An assistant message that made calls is sent back with its ``tool_calls`` and
each result as a ``{"role": "tool", "tool_call_id", "content"}`` message. ``tool_choice`` goes out as is
(``auto``, ``none``, ``required`` or ``{"type": "function", "function": {"name"}}``), as does
``parallel_tool_calls``.

Thinking: ``reasoning_effort`` is sent as the request holds it (OpenAI's o-series and GPT-5, xAI's Grok
reasoning models): which efforts a model takes, and which fields it refuses (a temperature other than 1,
``top_p``, ``stop``...), is its profile's (:mod:`heavy.profiles`), applied before the request gets here
(:mod:`heavy.providers.adapt`). Given only a thinking budget, the effort that covers it is sent (0 none, up
to 1024 tokens low, up to 8192 medium, beyond that high). The token limit goes out under the model's field
(``max_completion_tokens`` for OpenAI's models, ``max_tokens`` elsewhere). Reasoning tokens are
read from ``usage.completion_tokens_details.reasoning_tokens`` (they are part of ``completion_tokens``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from ..errors import ProviderError, ProviderResponseError
from ..http import Timeout, decode_json, request_id
from ..profiles import Profiles
from ..types import Message, TokenLogprob, ToolCall, Usage
from .base import Completion, CompletionRequest, Delta, HTTPProvider

__all__ = ["OpenAIProvider"]


class OpenAIProvider(HTTPProvider):
    """An OpenAI-compatible endpoint at ``base_url`` (ending in ``/v1`` for most servers)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        name: str = "openai",
        max_tokens_field: str | None = None,
        timeout: Timeout | None = None,
        transport: Any = None,
        extra_headers: dict[str, str] | None = None,
        auth_hint: str | None = None,
        max_choices: int = 1,
        cache_key_field: str | None = None,
        profiles: Profiles | None = None,
    ) -> None:
        #: What each model accepts (its token-limit field, whether it takes a prompt_cache_key): heavy.profiles.
        self.profiles = profiles or Profiles(name, base_url)
        self.max_tokens_field = max_tokens_field  # None: the model's profile says
        self.max_choices = max_choices
        self.cache_key_field = cache_key_field
        self._asked_limit: asyncio.Future[int] | None = None
        super().__init__(base_url, name=name, headers={"authorization": f"Bearer {api_key}"} if api_key else {},
                         timeout=timeout, transport=transport, extra_headers=extra_headers,
                         auth_hint=auth_hint)

    # --- request --------------------------------------------------------------------------------

    def build_body(self, request: CompletionRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for *request* (public so tests and the proxy can inspect it)."""
        p = request.params
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_message(m) for m in request.messages],
        }
        if request.tools:
            body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                               "parameters": t.parameters}} for t in request.tools]
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice.openai()
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        if p.temperature is not None:
            body["temperature"] = p.temperature
        if p.top_p is not None:
            body["top_p"] = p.top_p
        prof = self.profiles(request.model)
        if p.max_tokens is not None:
            body[self.max_tokens_field or prof.max_tokens_field] = p.max_tokens
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop is not None:
            body["stop"] = p.stop
        if p.logprobs:
            body["logprobs"] = True
            if p.top_logprobs is not None:
                body["top_logprobs"] = p.top_logprobs
        effort = p.effort()
        if effort is not None:
            body["reasoning_effort"] = effort
        if request.n > 1:
            body["n"] = request.n
        cache_key_field = self.cache_key_field or prof.cache_key_field
        if request.cache_key and cache_key_field:
            body[cache_key_field] = request.cache_key
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(request.extra_body)
        return body

    async def choice_limit(self) -> int:
        """``max_choices``; when that is 0, the server's own limit: llama-server generates up to its number of
        slots per request (``total_slots`` of ``GET /props``, asked once); a server that does not say gets 1."""
        if self.max_choices:
            return self.max_choices
        if self._asked_limit is None:  # one question for every caller, however many ask at once
            self._asked_limit = asyncio.ensure_future(self._ask_limit())
        return await asyncio.shield(self._asked_limit)

    async def _ask_limit(self) -> int:
        try:
            root = self.base_url.removesuffix("/v1")
            data = decode_json((await self._http.get_json(f"{root}/props")).text, provider=self.name, model=None)
        except ProviderError:
            return 1  # not a llama-server: one choice per request
        slots = data.get("total_slots") if isinstance(data, dict) else None
        return slots if isinstance(slots, int) and slots > 0 else 1

    # --- response -------------------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        resp = await self._http.post_json(
            "chat/completions", self.build_body(request, stream=False), model=request.model
        )
        data = decode_json(resp.text, provider=self.name, model=request.model)
        return self.parse_completion(data, model=request.model, request_id=request_id(resp.headers), raw=resp.text)

    def parse_completion(self, data: Any, *, model: str, request_id: str | None = None, raw: str = "") -> Completion:
        """A decoded chat completion body as a Completion (also how a batch's output lines are read);
        ``raw`` is the body's text for error excerpts. Several choices (``n``) come back in ``choices``."""
        rid = request_id or (data.get("id") if isinstance(data, dict) else None)
        try:
            raw_choices = sorted(data["choices"], key=lambda c: int(c.get("index") or 0))
            choices = [_choice(c["message"] or {}, c) for c in raw_choices]
            first = choices[0]
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise ProviderResponseError(
                "response has no choices[0].message", provider=self.name, model=model,
                request_id=rid, body=raw[:500],
            ) from None
        return first.model_copy(update={"usage": _usage(data.get("usage")), "model": data.get("model"),
                                        "request_id": rid, "choices": choices if len(choices) > 1 else None})

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        states: dict[int, _ChoiceState] = {}  # by choice index (several with n > 1)
        model = None
        usage: Usage | None = None
        async with self._http.stream_sse(
            "chat/completions", self.build_body(request, stream=True), model=request.model
        ) as (headers, events):
            rid = request_id(headers)
            async for event in events:
                if event.data.strip() == "[DONE]":
                    break
                try:
                    chunk = json.loads(event.data)
                except ValueError:
                    raise ProviderResponseError(
                        "stream chunk is not JSON", provider=self.name, model=request.model,
                        request_id=rid, body=event.data[:500],
                    ) from None
                if isinstance(chunk, dict) and "error" in chunk:  # some servers report errors in-stream
                    err = chunk["error"]
                    msg = err.get("message") if isinstance(err, dict) else str(err)
                    raise ProviderError(f"error inside stream: {msg}", provider=self.name, model=request.model,
                                        request_id=rid, body=event.data[:500], retryable=True)
                model = chunk.get("model") or model
                rid = rid or chunk.get("id")
                if chunk.get("usage"):
                    # OpenAI sends one usage chunk; llama-server one per choice of an n > 1 request, each with
                    # the whole prompt and that choice's completion: the prompt counts once, completions add up.
                    usage = _usage(chunk["usage"]) if usage is None else _merged_usage(usage, _usage(chunk["usage"]))
                for choice in chunk.get("choices") or []:
                    index = int(choice.get("index") or 0)
                    state = states.setdefault(index, _ChoiceState())
                    piece, thought = state.add(choice)
                    if piece or thought:
                        yield Delta(text=piece, reasoning=thought, choice=index)
        choices = [states[i].completion() for i in sorted(states)] or [_ChoiceState().completion()]
        yield choices[0].model_copy(update={"usage": usage or Usage(), "model": model, "request_id": rid,
                                            "choices": choices if len(choices) > 1 else None})


class _ChoiceState:
    """What a stream has said of one choice so far: text, reasoning, tool-call pieces, logprobs, finish."""

    __slots__ = ("text", "reasoning", "logprobs", "finish_reason", "pending")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.logprobs: list[TokenLogprob] = []
        self.finish_reason: str | None = None
        self.pending: dict[int, dict[str, Any]] = {}  # streamed tool calls by index: id, name, argument pieces

    def add(self, choice: dict[str, Any]) -> tuple[str, str]:
        """Take one chunk's entry for this choice; return its new (text, reasoning)."""
        delta = choice.get("delta") or {}
        piece = _content_text(delta.get("content"))
        thought = delta.get("reasoning_content") or delta.get("reasoning") or ""
        if piece or thought:
            self.text.append(piece)
            self.reasoning.append(thought)
        for piece_call in delta.get("tool_calls") or []:
            slot = self.pending.setdefault(int(piece_call.get("index", len(self.pending))),
                                           {"id": None, "name": "", "arguments": []})
            fn = piece_call.get("function") or {}
            slot["id"] = piece_call.get("id") or slot["id"]
            slot["name"] += fn.get("name") or ""
            slot["arguments"].append(fn.get("arguments") or "")
        if choice.get("logprobs"):
            self.logprobs.extend(_logprobs(choice["logprobs"]) or [])
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        return piece, thought

    def completion(self) -> Completion:
        calls = [_tool_call({"id": slot["id"], "function": {"name": slot["name"],
                                                            "arguments": "".join(slot["arguments"])}}, i)
                 for i, slot in sorted(self.pending.items())]
        return Completion(text="".join(self.text), reasoning="".join(self.reasoning) or None,
                          finish_reason=self.finish_reason, logprobs=self.logprobs or None, tool_calls=calls or None)


def _choice(message: dict[str, Any], choice: dict[str, Any]) -> Completion:
    """One choice of a complete (non-streamed) answer."""
    calls = [_tool_call(raw_call, i) for i, raw_call in enumerate(message.get("tool_calls") or [])]
    return Completion(
        text=_content_text(message.get("content")),
        reasoning=message.get("reasoning_content") or message.get("reasoning") or None,
        finish_reason=choice.get("finish_reason"),
        logprobs=_logprobs(choice.get("logprobs")),
        tool_calls=calls or None,
    )


def _merged_usage(a: Usage, b: Usage) -> Usage:
    """Two usage reports of one request's choices: one prompt, both completions."""
    return Usage(prompt_tokens=max(a.prompt_tokens, b.prompt_tokens),
                 completion_tokens=a.completion_tokens + b.completion_tokens,
                 reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
                 cache_read_tokens=max(a.cache_read_tokens, b.cache_read_tokens))


def _message(m: Message) -> dict[str, Any]:
    """One message in OpenAI's shape (tool calls and tool results included)."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["content"] = m.content or None
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                             for c in m.tool_calls]
    if m.role == "tool" and m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def _tool_call(raw: Any, position: int) -> ToolCall:
    """A ``tool_calls`` entry as a ToolCall; arguments that are not a JSON object are reported, not raised."""
    fn = (raw.get("function") or {}) if isinstance(raw, dict) else {}
    text = fn.get("arguments")
    args: Any = {}
    error = None
    if isinstance(text, dict):
        args = text
    elif text:
        try:
            args = json.loads(text)
        except ValueError:
            args, error = {}, f"arguments are not valid JSON: {str(text)[:200]}"
    if not isinstance(args, dict):
        args, error = {}, "arguments are not a JSON object"
    call_id = (raw.get("id") if isinstance(raw, dict) else None) or f"call_{position}"
    return ToolCall(id=str(call_id), name=str(fn.get("name") or ""), arguments=args, arguments_error=error)


def _content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("completion_tokens_details") or {}
    prompt_details = raw.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        reasoning_tokens=int(details.get("reasoning_tokens") or 0),
        # DeepSeek says prompt_cache_hit_tokens where the others say prompt_tokens_details.cached_tokens.
        cache_read_tokens=int(prompt_details.get("cached_tokens") or raw.get("prompt_cache_hit_tokens") or 0),
    )


def _logprobs(raw: Any) -> list[TokenLogprob] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), list):
        return None
    out = []
    for item in raw["content"]:
        if not isinstance(item, dict) or "logprob" not in item:
            continue
        top = item.get("top_logprobs") or None
        out.append(
            TokenLogprob(
                token=str(item.get("token", "")),
                logprob=float(item["logprob"]),
                top={str(t.get("token", "")): float(t.get("logprob", 0.0)) for t in top} if top else None,
            )
        )
    return out
