"""OpenAI Responses API wire format (``POST {base}/responses``).

The "pro" and codex models (gpt-5-pro, o3-pro, o1-pro, gpt-5-codex, …) exist only here, not on Chat
Completions; ``base_url`` ends in ``/v1`` (OpenAI) or ``/openai/v1`` (Azure's v1 API). One request is one
answer: there is no ``n`` (``max_choices = 1``; N hypotheses are N requests).

What differs from Chat Completions (:mod:`heavy.providers.openai`), and how heavy bridges it:

- Messages become ``input`` items. System and developer messages before the first other message are
  joined (blank line between) into ``instructions``, which the API places as its model wants (some refuse a
  ``system`` role); one that comes later in the conversation stays where it is, as a ``system``/``developer``
  message item. User text is an ``input_text`` part, assistant text an ``output_text`` part; OpenAI
  chat-style ``image_url`` parts become ``input_image`` parts (``detail`` ``auto`` unless given); other parts
  (native ``input_image``, ``input_file``, …) go as they are. An assistant's tool calls become
  ``function_call`` items (``call_id``, ``name``, ``arguments`` as a JSON string), each ``tool`` message a
  ``function_call_output`` item (``call_id`` = its ``tool_call_id``). Nothing is stored between requests
  (``store: false``; no ``previous_response_id``): every request carries the whole conversation.
- ``max_tokens`` is sent as ``max_output_tokens`` (it counts reasoning tokens too); ``temperature``/``top_p``
  as given (reasoning models refuse them: heavy's model profiles leave them out). **Seed and stop sequences
  do not exist on this API and are never sent** (the profiles report them as dropped).
- Reasoning: an effort (``reasoning_effort``, or the one covering a ``thinking_budget``) goes out as
  ``reasoning: {"effort": E, "summary": "auto"}`` (effort ``none``: no summary); a model that reasons by
  itself (the constructor's ``summaries(model)`` says so) gets ``reasoning: {"summary": "auto"}`` alone.
  The API never returns its raw chain of thought, only these summaries: they (and ``reasoning_text``
  parts, from gpt-oss-style servers) become ``Completion.reasoning`` (summaries joined by a blank line),
  never part of the text.
  ``usage.output_tokens`` includes ``output_tokens_details.reasoning_tokens``.
- Logprobs are asked for with ``include: ["message.output_text.logprobs"]`` (and ``top_logprobs``).
- Tools are flat: ``{"type": "function", "name", "description", "parameters", "strict": false}``. ``strict``
  is sent as false because the Responses API, unlike Chat Completions, otherwise rewrites a schema into
  strict mode (every property required): heavy's tools mean what they mean on Chat Completions.
  ``tool_choice`` is ``auto``/``none``/``required`` or ``{"type": "function", "name"}``.
- ``request.cache_key`` goes out as ``prompt_cache_key``; ``usage.input_tokens_details.cached_tokens`` are
  the cache reads (and ``cache_write_tokens``, where reported, the writes).
- The answer is a list of output items: ``message`` items (``output_text`` parts joined form the text),
  ``reasoning`` items and ``function_call`` items (``call_id`` is the ToolCall's id). A **refusal** part
  (``{"type": "refusal", "refusal"}``) is the text as the model wrote it (no prefix), and the finish reason
  is ``refusal``, so a refusal reads as itself and never counts as an answer that stopped normally.
  Finish reasons in OpenAI's words: ``stop``; ``tool_calls`` when calls were made; ``length`` for status
  ``incomplete`` with reason ``max_output_tokens``, ``content_filter`` for reason ``content_filter``.
  Status ``failed`` raises a :class:`ProviderError` from the response's ``error`` (``rate_limit_exceeded``,
  ``server_error`` retryable), ``cancelled`` a ProviderError that is not.
- Streaming uses typed events (``event:`` lines, no ``[DONE]``): ``response.output_text.delta`` (and
  ``response.refusal.delta``) are text deltas, ``response.reasoning_summary_text.delta`` and
  ``response.reasoning_text.delta`` reasoning deltas; function-call arguments are assembled per output item.
  The stream ends at ``response.completed``, ``response.incomplete`` or ``response.failed``, whose full
  response (with the usage) makes the final Completion; its text and reasoning are the deltas joined. An
  ``error`` event (flat as the spec has it, or nested under ``error`` as seen live) raises a ProviderError
  whose ``status`` is what the code would have as an HTTP answer (429 for ``rate_limit_exceeded``), retryable
  when transient. Errors before the stream starts are plain HTTP answers (:mod:`heavy.http` maps them).
- Background mode (``background=True``, for models that think for many minutes): the request is created with
  ``background: true, store: true`` and answered at once (``queued``); heavy then polls ``GET
  responses/{id}`` every ``poll_interval`` seconds until the status is terminal (each poll is one request under
  the read timeout, so the wait is bounded by the caller's deadline, not by it; a few failed polls in a row
  are tolerated). Cancelled or abandoned (the task is cancelled, say by a deadline, or polling failed), it
  sends ``POST responses/{id}/cancel`` best-effort before re-raising, so the job stops costing. A response
  that comes back ``queued``/``in_progress`` is polled the same way whatever asked for it. In background
  mode ``stream()`` polls too and yields the finished text as one delta (after the reasoning as one delta).
- Models that cannot stream (``streams(model)`` is false, e.g. o1-pro) are asked with ``complete()`` and
  their answer is yielded as deltas.

``http=`` shares an existing :class:`~heavy.http.HTTPClient` (a sibling OpenAIProvider's ``.http`` on the same
endpoint): its base URL, credentials and headers are used (``api_key``, ``transport``, ``extra_headers`` and
``auth_hint`` are then not used), and it stays its owner's: :meth:`ResponsesProvider.aclose` closes only a
client this provider made itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

from .. import constants as C
from ..errors import OptionsError, ProviderError, ProviderResponseError
from ..http import Timeout, decode_json, request_id
from ..types import Message, TokenLogprob, ToolCall, Usage
from .base import Completion, CompletionRequest, Delta, HTTPProvider, Provider
from .openai import _logprobs, _tool_call

__all__ = ["ResponsesProvider", "RESPONSES_PATH"]

RESPONSES_PATH = "responses"
_PENDING = frozenset({"queued", "in_progress"})
_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
#: Error codes (``error.code``, else ``error.type``) with the HTTP status the same error has as a plain answer.
_ERROR_STATUS = {"invalid_request_error": 400, "invalid_prompt": 400, "data_residency_mismatch": 400,
                 "bio_policy": 400, "model_not_found": 400, "authentication_error": 401, "invalid_api_key": 401,
                 "permission_error": 403, "not_found_error": 404, "rate_limit_exceeded": 429,
                 "insufficient_quota": 429, "server_error": 500, "api_error": 500, "vector_store_timeout": 504}
_TRANSIENT = frozenset({"rate_limit_exceeded", "server_error", "api_error", "vector_store_timeout"})
_REASONING_SEPARATOR = "\n\n"


def _always(model: str) -> bool:
    return True


def _never(model: str) -> bool:
    return False


class ResponsesProvider(HTTPProvider):
    """OpenAI's Responses API at ``base_url`` (``https://api.openai.com/v1``, or Azure's ``…/openai/v1``).

    ``background``: create responses in background mode and poll them (``poll_interval`` seconds apart,
    default :data:`heavy.constants.RESPONSES_POLL_INTERVAL`). ``summaries(model)``: whether the model reasons
    by itself, so reasoning summaries are asked for even without an effort (default: never). ``streams(model)``:
    whether the model can stream (default: always). ``http``: an existing client to share (see the module).
    """

    max_choices = 1

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        name: str = "openai",
        timeout: Timeout | None = None,
        transport: Any = None,
        extra_headers: dict[str, str] | None = None,
        auth_hint: str | None = None,
        background: bool = False,
        poll_interval: float | None = None,
        summaries: Callable[[str], bool] | None = None,
        streams: Callable[[str], bool] | None = None,
        http: Any = None,
    ) -> None:
        self.background = background
        self.poll_interval = C.RESPONSES_POLL_INTERVAL if poll_interval is None else float(poll_interval)
        if self.poll_interval < 0:
            raise ValueError("poll_interval must be at least 0 seconds")
        self.summaries = summaries or _never
        self.streams = streams or _always
        self._timeout = timeout  # per call: it also applies to a shared client
        self._cancels: set[asyncio.Task[None]] = set()
        self._owns_http = http is None
        if http is None:
            super().__init__(base_url, name=name, headers={"authorization": f"Bearer {api_key}"} if api_key else {},
                             timeout=timeout, transport=transport, extra_headers=extra_headers,
                             auth_hint=auth_hint)
        else:
            if base_url.rstrip("/") != http.base_url:
                raise ValueError(f"http= is a client of {http.base_url}, not of {base_url}")
            self.name = name
            self._http = http

    # --- request --------------------------------------------------------------------------------

    def build_body(self, request: CompletionRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for *request* (public so tests and the proxy can inspect it). Seed and stop are not
        sent: the Responses API has neither."""
        if request.n > 1:
            raise OptionsError(f"{self.name}: the Responses API generates one answer per request (n={request.n})")
        p = request.params
        instructions, items = _input(request.messages)
        body: dict[str, Any] = {"model": request.model}
        if instructions is not None:
            body["instructions"] = instructions
        body["input"] = items
        if request.tools:
            body["tools"] = [{"type": "function", "name": t.name, "description": t.description,
                              "parameters": t.parameters, "strict": False} for t in request.tools]
            if request.tool_choice is not None:
                choice = request.tool_choice
                body["tool_choice"] = {"type": "function", "name": choice.name} if choice.name else choice.mode
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        if p.temperature is not None:
            body["temperature"] = p.temperature
        if p.top_p is not None:
            body["top_p"] = p.top_p
        if p.max_tokens is not None:
            body["max_output_tokens"] = p.max_tokens
        effort = p.effort()
        if effort == "none":  # no reasoning, so no summary to ask for
            body["reasoning"] = {"effort": "none"}
        elif effort is not None:
            body["reasoning"] = {"effort": effort, "summary": "auto"}
        elif self.summaries(request.model):
            body["reasoning"] = {"summary": "auto"}
        if p.logprobs:
            body["include"] = ["message.output_text.logprobs"]
            if p.top_logprobs is not None:
                body["top_logprobs"] = p.top_logprobs
        if request.cache_key:
            body["prompt_cache_key"] = request.cache_key
        if self.background:
            body["background"] = True
            body["store"] = True
        else:
            body["store"] = False
        if stream:
            body["stream"] = True
        body.update(request.extra_body)
        return body

    # --- response -------------------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        resp = await self._http.post_json(RESPONSES_PATH, self.build_body(request, stream=False),
                                          model=request.model, timeout=self._timeout)
        data = decode_json(resp.text, provider=self.name, model=request.model)
        rid, raw = request_id(resp.headers), resp.text
        if isinstance(data, dict) and data.get("status") in _PENDING:
            data, raw = await self._wait(data, request.model, rid)
        return self.parse_response(data, model=request.model, request_id=rid, raw=raw)

    async def _wait(self, data: dict[str, Any], model: str, rid: str | None) -> tuple[Any, str]:
        """Poll the background response *data* until its status is terminal; cancel it if abandoned."""
        response_id = data.get("id")
        if not isinstance(response_id, str) or not response_id:
            raise ProviderResponseError(f"a {data.get('status')} response without an id cannot be polled",
                                        provider=self.name, model=model, request_id=rid,
                                        body=json.dumps(data)[: C.ERROR_BODY_EXCERPT])
        path = f"{RESPONSES_PATH}/{quote(response_id, safe='')}"
        raw, failures = "", 0
        try:
            while isinstance(data, dict) and data.get("status") in _PENDING:
                await asyncio.sleep(self.poll_interval)
                try:
                    resp = await self._http.get_json(path, model=model, timeout=self._timeout)
                except ProviderError as exc:
                    failures += 1
                    if not exc.retryable or failures >= C.RESPONSES_POLL_ATTEMPTS:
                        raise
                    continue
                failures, raw = 0, resp.text
                data = decode_json(raw, provider=self.name, model=model)
        except BaseException:
            await self._cancel(path, model)
            raise
        return data, raw

    async def _cancel(self, path: str, model: str) -> None:
        """``POST {path}/cancel``, best-effort: its failure is not the caller's error. It runs as its own task,
        so a second cancellation of the caller does not cut it off (:meth:`aclose` waits for it)."""
        async def send() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http.post_json(f"{path}/cancel", {}, model=model,
                                                            timeout=self._timeout), C.RESPONSES_CANCEL_TIMEOUT)

        task = asyncio.ensure_future(send())
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)
        with contextlib.suppress(Exception):
            await asyncio.shield(task)

    def parse_response(self, data: Any, *, model: str, request_id: str | None = None, raw: str = "") -> Completion:
        """A decoded Response object as a Completion (also how a stream's terminal event is read); ``raw`` is
        the body's text for error excerpts."""
        rid = request_id or (data.get("id") if isinstance(data, dict) else None)
        if not isinstance(data, dict):
            raise ProviderResponseError("response is not a JSON object", provider=self.name, model=model,
                                        request_id=rid, body=raw[: C.ERROR_BODY_EXCERPT])
        status = data.get("status") or "completed"
        if status == "failed" or (isinstance(data.get("error"), dict) and "output" not in data):
            raise self._api_error(data.get("error"), model, rid, raw, "response failed")
        if status == "cancelled":
            raise ProviderError("the response was cancelled", provider=self.name, model=model, request_id=rid,
                                body=raw[: C.ERROR_BODY_EXCERPT])
        output = data.get("output")
        if not isinstance(output, list) or status not in ("completed", "incomplete"):
            raise ProviderResponseError(f"response has no output (status {status!r})", provider=self.name,
                                        model=model, request_id=rid, body=raw[: C.ERROR_BODY_EXCERPT])
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        logprobs: list[TokenLogprob] = []
        refused = False
        for item in output:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "message":
                for part in item.get("content") or []:
                    if not isinstance(part, dict):
                        continue
                    if part.get("type") == "output_text":
                        text.append(str(part.get("text") or ""))
                        logprobs += _logprobs({"content": part.get("logprobs")}) or []
                    elif part.get("type") == "refusal":
                        text.append(str(part.get("refusal") or ""))
                        refused = True
            elif kind == "reasoning":
                reasoning += [str(part["text"]) for part in [*(item.get("summary") or []), *(item.get("content") or [])]
                              if isinstance(part, dict) and part.get("text")]
            elif kind == "function_call":
                calls.append(_call(item, len(calls)))
        if status == "incomplete":
            reason = (data.get("incomplete_details") or {}).get("reason")
            finish = _INCOMPLETE.get(reason, reason or "length")
        else:
            finish = "tool_calls" if calls else "refusal" if refused else "stop"
        return Completion(text="".join(text), reasoning=_REASONING_SEPARATOR.join(reasoning) or None,
                          finish_reason=finish, usage=_usage(data.get("usage")), logprobs=logprobs or None,
                          model=data.get("model"), request_id=rid, tool_calls=calls or None)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        if self.background or not self.streams(request.model):
            async for item in Provider.stream(self, request):  # complete(), then its text as deltas
                yield item
            return
        state = _StreamState()
        terminal: Any = None
        raw = ""
        async with self._http.stream_sse(RESPONSES_PATH, self.build_body(request, stream=True), model=request.model,
                                         timeout=self._timeout) as (headers, events):
            rid = request_id(headers)
            async for event in events:
                raw = event.data
                try:
                    data = json.loads(raw)
                except ValueError:
                    raise ProviderResponseError("stream event is not JSON", provider=self.name, model=request.model,
                                                request_id=rid or state.response_id,
                                                body=raw[: C.ERROR_BODY_EXCERPT]) from None
                if not isinstance(data, dict):
                    continue
                kind = data.get("type") or event.event
                if kind == "error":  # nested ({"error": {...}}, seen live) or flat (the spec's shape)
                    err = data["error"] if isinstance(data.get("error"), dict) else data
                    raise self._api_error(err, request.model, rid or state.response_id, raw, "error inside stream")
                if kind in _TERMINAL_EVENTS:
                    terminal = data.get("response")
                    break
                delta = state.add(kind, data)
                if delta is not None:
                    yield delta
        if not isinstance(terminal, dict):
            raise ProviderResponseError("stream ended before response.completed (truncated response)",
                                        provider=self.name, model=request.model, request_id=rid or state.response_id,
                                        retryable=True)
        done = self.parse_response(terminal, model=request.model, request_id=rid or state.response_id, raw=raw)
        yield state.completion(done)

    def _api_error(self, err: Any, model: str, rid: str | None, raw: str, where: str) -> ProviderError:
        """A response's (or stream's) ``error`` object as a ProviderError with the status its code implies."""
        err = err if isinstance(err, dict) else {}
        code, kind = str(err.get("code") or err.get("type") or "error"), str(err.get("type"))
        status = _ERROR_STATUS.get(code) or _ERROR_STATUS.get(kind)
        if status is None and "image" in code:  # invalid_image, image_too_large, …: the request's content
            status = 400
        return ProviderError(f"{where}: {code}: {err.get('message') or code}", provider=self.name, model=model,
                             status=status, request_id=rid, body=raw[: C.ERROR_BODY_EXCERPT],
                             retryable=code in _TRANSIENT or kind in _TRANSIENT)

    async def aclose(self) -> None:
        """Wait for pending cancels of background responses; close the client if this provider made it."""
        if self._cancels:
            await asyncio.gather(*list(self._cancels), return_exceptions=True)
        if self._owns_http:
            await self._http.aclose()


class _StreamState:
    """What a stream has said so far: text and reasoning pieces, function calls by output item, logprobs."""

    __slots__ = ("text", "reasoning", "reasoning_part", "calls", "logprobs", "response_id")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.reasoning_part: tuple[Any, ...] | None = None  # the summary/reasoning part the last piece was of
        self.calls: dict[Any, dict[str, Any]] = {}  # by output_index (else item id): call_id, name, argument pieces
        self.logprobs: list[TokenLogprob] = []
        self.response_id: str | None = None

    def add(self, kind: str, data: dict[str, Any]) -> Delta | None:
        """Take one event; return the delta it carries, if any."""
        if kind in ("response.created", "response.in_progress", "response.queued"):
            response = data.get("response")
            self.response_id = (response.get("id") if isinstance(response, dict) else None) or self.response_id
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            piece = str(data.get("delta") or "")
            if isinstance(data.get("logprobs"), list):
                self.logprobs += _logprobs({"content": data["logprobs"]}) or []
            if piece:
                self.text.append(piece)
                return Delta(text=piece)
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            piece = str(data.get("delta") or "")
            part = (data.get("item_id"), kind, data.get("summary_index"), data.get("content_index"))
            if piece and self.reasoning and part != self.reasoning_part:
                piece = _REASONING_SEPARATOR + piece  # a new summary: as parse_response joins them
            if piece:
                self.reasoning_part = part
                self.reasoning.append(piece)
                return Delta(reasoning=piece)
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = data.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                slot = self._slot(data, item)
                slot["call_id"] = item.get("call_id") or slot["call_id"]
                slot["name"] = item.get("name") or slot["name"]
                if isinstance(item.get("arguments"), str) and (item["arguments"] or kind.endswith(".done")):
                    slot["arguments"] = [item["arguments"]]
        elif kind == "response.function_call_arguments.delta":
            self._slot(data)["arguments"].append(str(data.get("delta") or ""))
        elif kind == "response.function_call_arguments.done":
            slot = self._slot(data)
            slot["name"] = data.get("name") or slot["name"]  # the spec has it; live streams may not
            if isinstance(data.get("arguments"), str):
                slot["arguments"] = [data["arguments"]]
        return None  # other events (content_part.*, *.done, annotations, …) add nothing new

    def _slot(self, data: dict[str, Any], item: dict[str, Any] | None = None) -> dict[str, Any]:
        key = data.get("output_index")
        if not isinstance(key, int):
            key = data.get("item_id") or (item or {}).get("id")
        return self.calls.setdefault(key, {"call_id": None, "name": "", "arguments": []})

    def completion(self, done: Completion) -> Completion:
        """The terminal response's Completion *done*, its text and reasoning those the deltas showed (its own
        where the stream sent none: a server that sends only whole items)."""
        update: dict[str, Any] = {}
        if self.text:
            update["text"] = "".join(self.text)
        if self.reasoning:
            update["reasoning"] = "".join(self.reasoning)
        if not done.tool_calls and self.calls:
            update["tool_calls"] = [_call({"call_id": s["call_id"], "name": s["name"],
                                           "arguments": "".join(s["arguments"])}, i)
                                    for i, s in enumerate(self.calls.values())]
            if done.finish_reason == "stop":
                update["finish_reason"] = "tool_calls"
        if not done.logprobs and self.logprobs:
            update["logprobs"] = self.logprobs
        return done.model_copy(update=update)


# --- conversions ------------------------------------------------------------------------------------


def _input(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """heavy's messages as (``instructions``, ``input`` items): leading system/developer messages become the
    instructions; later ones stay in place as message items."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role in ("system", "developer"):
            if not items:
                instructions.append(m.text())
            else:
                items.append({"type": "message", "role": m.role, "content": _parts(m.content, "input_text")})
        elif m.role == "tool":
            output = m.content if isinstance(m.content, str) else _parts(m.content, "input_text")
            items.append({"type": "function_call_output", "call_id": m.tool_call_id or "", "output": output})
        elif m.role == "assistant":
            if m.content:
                items.append({"type": "message", "role": "assistant", "content": _parts(m.content, "output_text")})
            items += [{"type": "function_call", "call_id": c.id, "name": c.name, "arguments": json.dumps(c.arguments)}
                      for c in m.tool_calls or []]
        else:
            items.append({"type": "message", "role": "user", "content": _parts(m.content, "input_text")})
    return ("\n\n".join(instructions) if instructions else None), items


def _parts(content: str | list[dict[str, Any]], text_type: str) -> list[dict[str, Any]]:
    """Message content as Responses content parts; text parts become *text_type* (``input_text`` for what the
    caller wrote, ``output_text`` for an assistant's turn)."""
    if isinstance(content, str):
        return [{"type": text_type, "text": content}]
    out: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            out.append({"type": text_type, "text": str(part.get("text") or "")})
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            detail = ref.get("detail") if isinstance(ref, dict) else None
            out.append({"type": "input_image", "image_url": str(url or ""), "detail": detail or "auto"})
        else:
            out.append(part)  # a native Responses part (input_image, input_file, …) as the caller wrote it
    return out


def _call(item: dict[str, Any], position: int) -> ToolCall:
    """A ``function_call`` item as a ToolCall (its ``call_id`` is the id; arguments parsed as Chat's are)."""
    return _tool_call({"id": item.get("call_id"), "function": {"name": item.get("name"),
                                                               "arguments": item.get("arguments")}}, position)


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    inputs = raw.get("input_tokens_details") or {}
    outputs = raw.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0),
        completion_tokens=int(raw.get("output_tokens") or 0),
        reasoning_tokens=int(outputs.get("reasoning_tokens") or 0),
        cache_read_tokens=int(inputs.get("cached_tokens") or 0),
        cache_write_tokens=int(inputs.get("cache_write_tokens") or 0),
    )
