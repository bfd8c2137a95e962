"""The OpenAI Responses API's shapes in the simulator (``POST /v1/responses``; routes in :mod:`heavy.sim.responses`).

Requests: ``input`` as a string or items (messages whose content is a string or ``input_text``/``output_text``
parts, ``function_call`` and ``function_call_output`` items; ``reasoning`` and ``item_reference`` items are
accepted and ignored), ``instructions`` (a system message first), ``max_output_tokens``, ``temperature``,
``top_p``, ``top_logprobs``, ``reasoning {effort, summary}``, flat function tools (``{"type": "function",
"name", "description", "parameters", "strict"}``; other tool types are accepted and not used), ``tool_choice``,
``parallel_tool_calls``, ``store``, ``background``, ``stream``, ``include``, ``previous_response_id``,
``prompt_cache_key``, ``text.format`` and the other documented fields. A field the API does not have is refused
("Unknown parameter: 'x'."), as are the model-name rules of :mod:`heavy.sim.rules.openai`.

Responses are the Response object as documented (``id`` ``resp_…``, ``object: "response"``, ``status``,
``output`` items ``reasoning`` (``rs_…``), ``message`` (``msg_…``) and ``function_call`` (``fc_…`` with a
``call_…`` call_id), ``usage`` with ``input_tokens_details.cached_tokens`` and
``output_tokens_details.reasoning_tokens``); cut by ``max_output_tokens`` it is ``incomplete`` with
``incomplete_details.reason: "max_output_tokens"``. Streams are typed server-sent events (an ``event:`` line,
``sequence_number`` from 0, no ``[DONE]``); an injected mid-stream failure is an ``error`` event then
``response.failed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .openai_wire import openai_validation_error
from .rules import base_name
from .rules.openai import R_UNKNOWN, check_responses, openai_model
from .wire import Choice, Generation, SimHTTPError, SimRequest, Wire, json_object, sse

if TYPE_CHECKING:
    from .responses import ResponsesAPI

__all__ = ["ResponsesWire", "ResponsesRequest", "RESPONSE_FIELDS", "INCLUDABLE"]

#: The request fields of ``POST /v1/responses`` (SPEC CreateResponse with its merged properties).
RESPONSE_FIELDS = frozenset((
    "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "top_logprobs", "reasoning",
    "tools", "tool_choice", "parallel_tool_calls", "store", "background", "stream", "stream_options", "include",
    "previous_response_id", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "text", "metadata",
    "user", "safety_identifier", "service_tier", "truncation", "max_tool_calls", "conversation",
    "context_management", "prompt", "moderation"))
_NESTED = {"reasoning": {"effort", "summary", "generate_summary", "context", "mode"},
           "text": {"format", "verbosity"}, "stream_options": {"include_obfuscation"}}
#: The values ``include`` takes (SPEC IncludeEnum).
INCLUDABLE = frozenset(("reasoning.encrypted_content", "message.output_text.logprobs", "file_search_call.results",
                        "web_search_call.results", "web_search_call.action.sources", "message.input_image.image_url",
                        "computer_call_output.output.image_url", "code_interpreter_call.outputs"))


class _Reasoning(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    effort: str | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class _CreateResponse(BaseModel):
    # strict types as OpenAI checks them; unknown names were refused before this runs
    model_config = ConfigDict(strict=True, extra="allow")
    model: str
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    reasoning: _Reasoning | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    include: list[str] | None = None
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None


@dataclass
class ResponsesRequest(SimRequest):
    """A Responses API request: the generation request plus what the Response object echoes and how it is kept."""

    echo: dict[str, Any] = field(default_factory=dict)  #: the request's fields the Response object repeats
    store: bool = True
    background: bool = False
    include: list[str] = field(default_factory=list)
    seq: int = 0  #: the next stream event's sequence_number


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise SimHTTPError(400, f"Invalid type for '{where}': expected one of a string or array of input items, but "
                           "got an object instead.", "invalid_type", param=where)
    return "\n".join(str(p.get("text", "")) for p in content
                     if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text"))


class ResponsesWire(Wire):
    """The Responses API's request and response shapes; responses are kept in the API's store as they finish."""

    name = "responses"
    cache_wire = "openai"  # OpenAI caches prompts the same way on both endpoints

    def __init__(self, api: ResponsesAPI) -> None:
        self.api = api

    # --- requests ---------------------------------------------------------------------------------------

    def parse(self, body: bytes, path_model: str | None = None, stream: bool = False) -> ResponsesRequest:
        data = json_object(body, "We could not parse the JSON body of your request. The body must be valid JSON.",
                           "The request body must be a JSON object.")
        for key in data:  # unknown names first, as OpenAI reports them
            if key not in RESPONSE_FIELDS:
                raise R_UNKNOWN.error(name=key)
        for key, allowed in _NESTED.items():
            for sub in data[key] if isinstance(data.get(key), dict) else ():
                if sub not in allowed:
                    raise R_UNKNOWN.error(name=f"{key}.{sub}")
        try:
            r = _CreateResponse.model_validate(data)
        except ValidationError as exc:
            raise openai_validation_error(exc) from None
        for i, value in enumerate(r.include or []):
            if value not in INCLUDABLE:
                raise SimHTTPError(400, f"Invalid value: '{value}'. Supported values are: "
                                   + ", ".join(f"'{v}'" for v in sorted(INCLUDABLE)) + ".", "invalid_value",
                                   param=f"include[{i}]")
        name = base_name(r.model)
        thinking = check_responses(name, openai_model(name), data)
        messages, called = self.api.conversation(r.previous_response_id) if r.previous_response_id else ([], [])
        if r.instructions:
            messages = [("system", r.instructions), *messages]
        calls = {c for _, c in called}
        for i, item in enumerate([{"role": "user", "content": r.input}] if isinstance(r.input, str) else r.input or []):
            kind = item.get("type", "message")
            if kind == "message":
                if item.get("role") not in ("user", "assistant", "system", "developer"):
                    raise SimHTTPError(400, f"Invalid value: '{item.get('role')}'. Supported values are: 'assistant', "
                                       "'system', 'developer', and 'user'.", "invalid_value", param=f"input[{i}].role")
                messages.append((item["role"], _text_of(item.get("content"), f"input[{i}].content")))
            elif kind == "function_call":
                if not messages or messages[-1] != ("assistant", ""):  # one assistant turn per run of calls
                    messages.append(("assistant", ""))
                called.append((str(item.get("name")), str(item.get("call_id"))))
                calls.add(str(item.get("call_id")))
            elif kind == "function_call_output":
                if str(item.get("call_id")) not in calls:
                    raise SimHTTPError(400, f"No tool call found for function call output with call_id "
                                       f"{item.get('call_id')}.", None, param="input")
                output = item.get("output")
                messages.append(("tool", output if isinstance(output, str) else _text_of(output, f"input[{i}]")))
            elif kind not in ("reasoning", "item_reference"):
                raise SimHTTPError(400, f"Invalid value: '{kind}'.", "invalid_value", param=f"input[{i}].type")
        if not messages:
            raise SimHTTPError(400, "Missing required parameter: 'input'.", "missing_required_parameter", param="input")
        specs: dict[str, dict] = {}
        for i, tool in enumerate(r.tools or []):
            if tool.get("type") != "function":
                continue  # built-in tools (web_search, file_search, …) are accepted, never used
            if not isinstance(tool.get("name"), str):  # a chat-shaped {"function": {...}} tool lands here
                raise SimHTTPError(400, f"Missing required parameter: 'tools[{i}].name'.",
                                   "missing_required_parameter", param=f"tools[{i}].name")
            specs[tool["name"]] = {"description": tool.get("description") or "",
                                   "parameters": tool.get("parameters") or {}}
        choice = r.tool_choice
        include = list(r.include or [])
        echo = {"instructions": r.instructions, "max_output_tokens": r.max_output_tokens,
                "max_tool_calls": data.get("max_tool_calls"), "parallel_tool_calls": r.parallel_tool_calls is not False,
                "previous_response_id": r.previous_response_id, "prompt_cache_key": r.prompt_cache_key,
                "reasoning": {"effort": (r.reasoning.effort if r.reasoning else None)
                              or (thinking.effort if thinking else None),
                              "summary": r.reasoning.summary if r.reasoning else None},
                "safety_identifier": data.get("safety_identifier"), "service_tier": data.get("service_tier") or "auto",
                "temperature": 1.0 if r.temperature is None else r.temperature,
                "text": {"format": {"type": "text"}, "verbosity": "medium", **(r.text or {})},
                "tool_choice": choice if choice is not None else "auto", "tools": r.tools or [],
                "top_logprobs": r.top_logprobs or 0, "top_p": 1.0 if r.top_p is None else r.top_p,
                "truncation": data.get("truncation") or "disabled", "user": data.get("user"),
                "metadata": r.metadata or {}}
        return ResponsesRequest(
            model=r.model, messages=messages, stream=bool(r.stream), max_tokens=r.max_output_tokens,
            logprobs="message.output_text.logprobs" in include, top_logprobs=r.top_logprobs or 0,
            tools=list(specs), tool_specs=specs, called=[name for name, _ in called],
            tool_choice=choice if isinstance(choice, str) else "required" if isinstance(choice, dict) else "auto",
            tool_choice_name=str(choice.get("name")) if isinstance(choice, dict) else None,
            parallel_tool_calls=r.parallel_tool_calls is not False, cache_key=r.prompt_cache_key, thinking=thinking,
            echo=echo, store=r.store is not False, background=bool(r.background), include=include)

    # --- the Response object ----------------------------------------------------------------------------

    def envelope(self, exc: SimHTTPError, request_id: str) -> dict:
        return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}

    def items(self, gen: Generation, request: ResponsesRequest, *, done: bool = True) -> list[dict]:
        """The output items of *gen*: reasoning, then the message, then function calls (complete when *done*)."""
        c = gen.choices[0]
        out: list[dict] = []
        if request.thinking:
            out.append(self._reasoning_item(gen, c, request, done))
        if self._has_message(c):
            status = ("incomplete" if c.finish_reason == "length" else "completed") if done else "in_progress"
            content = [self._text_part(c, c.text)] if done else []
            out.append({"id": f"msg_{gen.id}", "type": "message", "status": status, "role": "assistant",
                        "content": content})
        for i, call in enumerate(c.tool_calls or []):
            out.append({"id": f"fc_{gen.id}{i}", "type": "function_call", "status": "completed" if done else
                        "in_progress", "arguments": json.dumps(call["arguments"]) if done else "",
                        "call_id": call["id"], "name": call["name"]})
        return out

    @staticmethod
    def _has_message(c: Choice) -> bool:
        """A reply has a message item unless it only calls tools, or its thoughts used up every token."""
        return bool(c.tokens) or not (c.tool_calls or (c.reasoning and c.finish_reason == "length"))

    @staticmethod
    def _text_part(c: Choice, text: str) -> dict:
        return {"type": "output_text", "annotations": [], "logprobs": c.logprobs or [], "text": text}

    @staticmethod
    def _summary(c: Choice) -> str:
        return "**Simulated reasoning**\n\n" + "".join(c.reasoning)

    def _reasoning_item(self, gen: Generation, c: Choice, request: ResponsesRequest, done: bool) -> dict:
        thinking = request.thinking
        item: dict[str, Any] = {"id": f"rs_{gen.id}", "type": "reasoning", "summary": [
            {"type": "summary_text", "text": self._summary(c)}] if done and thinking and thinking.summary else []}
        if thinking and thinking.encrypted:
            item["encrypted_content"] = f"gAAAA-simulated-{gen.id}"
        return item

    def usage(self, gen: Generation) -> dict:
        """Responses usage: output tokens include the reasoning tokens, which the details count apart."""
        return {"input_tokens": gen.prompt_tokens, "input_tokens_details": {"cached_tokens": gen.cache_read},
                "output_tokens": gen.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": gen.reasoning_tokens},
                "total_tokens": gen.prompt_tokens + gen.completion_tokens}

    def response_object(self, gen: Generation, request: ResponsesRequest, status: str, *, output: list | None = None,
                        error: dict | None = None, usage: bool = False) -> dict:
        """The Response object of *gen* in *status* (``output`` defaults to none; ``usage`` when finished)."""
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        out = {"id": f"resp_{gen.id}", "object": "response", "created_at": gen.created, "status": status,
               "background": request.background, "error": error, "incomplete_details": incomplete,
               **request.echo, "model": gen.model, "output": output or [], "store": request.store,
               "usage": self.usage(gen) if usage else None}
        if status == "completed":
            out["completed_at"] = int(gen.created)
        return out

    def final(self, gen: Generation, request: ResponsesRequest) -> dict:
        """The finished Response object: completed, or incomplete when max_output_tokens cut it."""
        status = "incomplete" if gen.choices[0].finish_reason == "length" else "completed"
        return self.response_object(gen, request, status, output=self.items(gen, request), usage=True)

    def failed(self, gen: Generation, request: ResponsesRequest, exc: SimHTTPError) -> dict:
        """The Response object of *gen* ended by the failure *exc*."""
        return self.response_object(gen, request, "failed", error={"code": exc.code or "server_error",
                                                                   "message": exc.message})

    def response(self, gen: Generation, request: SimRequest) -> dict:
        assert isinstance(request, ResponsesRequest)
        out = self.final(gen, request)
        self.api.keep(out, request, gen)
        return out

    # --- streams ----------------------------------------------------------------------------------------

    @staticmethod
    def _event(request: ResponsesRequest, kind: str, **fields: Any) -> str:
        frame = sse({"type": kind, "sequence_number": request.seq, **fields}, kind)
        request.seq += 1
        return frame

    def opening(self, gen: Generation, request: SimRequest) -> list[str]:
        assert isinstance(request, ResponsesRequest)
        c = gen.choices[0]
        first = "queued" if request.background else "in_progress"
        frames = [self._event(request, "response.created", response=self.response_object(gen, request, first))]
        if request.background:
            frames.append(self._event(request, "response.queued", response=self.response_object(gen, request, first)))
        frames.append(self._event(request, "response.in_progress",
                                  response=self.response_object(gen, request, "in_progress")))
        at = 0
        if request.thinking:
            rid = f"rs_{gen.id}"
            frames.append(self._event(request, "response.output_item.added", output_index=0,
                                      item=self._reasoning_item(gen, c, request, False)))
            if request.thinking.summary:
                summary = self._summary(c)
                part = {"item_id": rid, "output_index": 0, "summary_index": 0}
                frames.append(self._event(request, "response.reasoning_summary_part.added", **part,
                                          part={"type": "summary_text", "text": ""}))
                cut = len(summary) // 2
                frames += [self._event(request, "response.reasoning_summary_text.delta", **part, delta=piece,
                                       obfuscation="sim") for piece in (summary[:cut], summary[cut:])]
                frames.append(self._event(request, "response.reasoning_summary_text.done", **part, text=summary))
                frames.append(self._event(request, "response.reasoning_summary_part.done", **part,
                                          part={"type": "summary_text", "text": summary}))
            frames.append(self._event(request, "response.output_item.done", output_index=0,
                                      item=self._reasoning_item(gen, c, request, True)))
            at = 1
        if self._has_message(c):
            frames.append(self._event(request, "response.output_item.added", output_index=at,
                                      item=self.items(gen, request, done=False)[at]))
            frames.append(self._event(request, "response.content_part.added", item_id=f"msg_{gen.id}",
                                      output_index=at, content_index=0, part=self._text_part(c, "")))
        return frames

    def piece(self, gen: Generation, request: SimRequest, choice: Choice, begin: int, end: int) -> list[str]:
        assert isinstance(request, ResponsesRequest)
        logprobs = choice.logprobs[begin:end] if choice.logprobs is not None else []
        return [self._event(request, "response.output_text.delta", item_id=f"msg_{gen.id}",
                            output_index=1 if request.thinking else 0, content_index=0,
                            delta="".join(choice.tokens[begin:end]), logprobs=logprobs, obfuscation="sim")]

    def closing(self, gen: Generation, request: SimRequest) -> list[str]:
        assert isinstance(request, ResponsesRequest)
        c = gen.choices[0]
        final = self.final(gen, request)
        frames: list[str] = []
        at = 1 if request.thinking else 0
        if self._has_message(c):
            item = final["output"][at]
            where = {"item_id": item["id"], "output_index": at, "content_index": 0}
            frames += [self._event(request, "response.output_text.done", **where, text=c.text,
                                   logprobs=c.logprobs or []),
                       self._event(request, "response.content_part.done", **where, part=item["content"][0]),
                       self._event(request, "response.output_item.done", output_index=at, item=item)]
            at += 1
        for item in final["output"][at:]:
            added = {**item, "status": "in_progress", "arguments": ""}
            frames.append(self._event(request, "response.output_item.added", output_index=at, item=added))
            cut = len(item["arguments"]) // 2
            frames += [self._event(request, "response.function_call_arguments.delta", item_id=item["id"],
                                   output_index=at, delta=piece, obfuscation="sim")
                       for piece in (item["arguments"][:cut], item["arguments"][cut:])]
            frames += [self._event(request, "response.function_call_arguments.done", item_id=item["id"],
                                   name=item["name"], output_index=at, arguments=item["arguments"]),
                       self._event(request, "response.output_item.done", output_index=at, item=item)]
            at += 1
        self.api.keep(final, request, gen)
        return frames + [self._event(request, f"response.{final['status']}", response=final)]

    def stream_error(self, exc: SimHTTPError, request_id: str, gen: Generation, request: SimRequest) -> list[str]:
        """An ``error`` event (the nested form a live capture shows) then ``response.failed``."""
        assert isinstance(request, ResponsesRequest)
        error = {"type": exc.type, "code": exc.code, "message": exc.message, "param": exc.param}
        failed = self.failed(gen, request, exc)
        self.api.keep(failed, request, gen)
        return [self._event(request, "error", error=error), self._event(request, "response.failed", response=failed)]
