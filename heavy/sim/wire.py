"""What every wire format of the simulator shares: the parsed request, the generated reply, the error
raised before a response starts, and the base class each format implements.

A wire format only translates: it parses its request shape into a :class:`SimRequest` and renders a
:class:`Generation` (or a :class:`SimHTTPError`) in its response shape. Deciding what to answer, timing,
failures and disconnects live in :mod:`heavy.sim.server`, the same for every format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

__all__ = ["SimRequest", "Thinking", "Choice", "Generation", "SimHTTPError", "Wire", "sse", "json_object",
           "first_error"]


@dataclass(frozen=True)
class Thinking:
    """How a reasoning model thinks on one request, as the model-name rules (:mod:`heavy.sim.rules`) decided.

    ``effort`` sizes the simulated reasoning (``minimal`` … ``max``); ``shown``: the API returns the reasoning
    text (DeepSeek ``reasoning_content``, Anthropic thinking blocks, Gemini thought parts when asked); ``summary``:
    the Responses API was asked for a reasoning summary; ``encrypted``: it was asked for
    ``reasoning.encrypted_content``.
    """

    effort: str = "medium"
    shown: bool = False
    summary: bool = False
    encrypted: bool = False


@dataclass
class SimRequest:
    """A generation request, whatever wire it came in on."""

    model: str | None
    messages: list[tuple[str, str]]  #: (role, text) in order; roles in OpenAI's words
    stream: bool = False
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    n: int = 1
    include_usage: bool = True  #: streams: send usage (OpenAI sends it only when asked)
    tools: list[str] = field(default_factory=list)  #: names of the tools offered for native calls
    tool_specs: dict[str, dict] = field(default_factory=dict)  #: name -> {"description", "parameters"}
    tool_choice: str = "auto"  #: "auto", "none" or "required" (in OpenAI's words, whatever the wire)
    tool_choice_name: str | None = None  #: the one tool a forced choice names
    parallel_tool_calls: bool = True
    called: list[str] = field(default_factory=list)  #: tools the conversation's assistant turns called, in order
    cache_marks: dict[int, float] = field(default_factory=dict)  #: Anthropic: prompt tokens up to each
    #: cache_control mark -> the seconds its entry lives (5 minutes, or 1 hour with ttl "1h")
    cache_key: str | None = None  #: OpenAI's prompt_cache_key, when sent
    thinking: Thinking | None = None  #: the model reasons on this request (None: it does not)

    # Tool results appear in ``messages`` with role "tool" (their text), whatever the wire's shape.

    def question(self) -> str:
        """The text the simulator answers: the last user message (or the last message)."""
        users = [text for role, text in self.messages if role == "user"]
        return (users or [text for _, text in self.messages])[-1]

    def prompt_tokens(self) -> int:
        return sum(len(text.split()) for _, text in self.messages)


@dataclass
class Choice:
    index: int
    tokens: list[str]
    logprobs: list[dict] | None  #: OpenAI-shaped ``logprobs.content`` entries, one per token
    finish_reason: str  #: "stop" or "length" (each wire says it in its own words)
    pieces: list[int]  #: stream chunk sizes in tokens
    stop_sequence: str | None = None  #: the stop sequence that cut the text, if one did
    tool_calls: list[dict] | None = None  #: native tool calls: {"id", "name", "arguments": dict}
    reasoning: list[str] = field(default_factory=list)  #: reasoning tokens, generated before the answer

    @property
    def tool_tokens(self) -> int:
        return sum(len(json.dumps(c["arguments"]).split()) + 2 for c in self.tool_calls or [])

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass
class Generation:
    id: str
    created: int
    model: str  #: the model name shown in responses (always contains "simulated")
    choices: list[Choice]
    prompt_tokens: int
    gemini_block: str | None = None  #: SimConfig.gemini_block of the request (the Gemini wire honours it)
    cache_read: int = 0  #: prompt tokens read from the prompt cache (:mod:`heavy.sim.cache`)
    cache_write: int = 0  #: prompt tokens written to it (reported only where the API charges writes)

    @property
    def completion_tokens(self) -> int:
        """Output tokens of every choice, reasoning included (as OpenAI and Anthropic count them)."""
        return sum(len(c.tokens) + len(c.reasoning) + c.tool_tokens for c in self.choices)

    @property
    def reasoning_tokens(self) -> int:
        """Of :attr:`completion_tokens`, those spent reasoning."""
        return sum(len(c.reasoning) for c in self.choices)


class SimHTTPError(Exception):
    """An error answer, raised before the response has started; each wire renders it in its own shape.

    ``code`` and ``type`` are OpenAI's vocabulary (``invalid_request_error``, ``rate_limit_error``,
    ``server_error``); the other wires derive theirs from ``status``. ``body``, when given, is the whole error
    body as the API sends it, whatever the wire (xAI's ``{"code", "error"}`` on the OpenAI wire, Azure's 404).
    """

    def __init__(self, status: int, message: str, code: str | None, *, type_: str = "invalid_request_error",
                 param: str | None = None, headers: tuple[tuple[str, str], ...] = (), body: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param, self.headers, self.body = (
            status, message, code, type_, param, headers, body)


class Wire:
    """One API's request and response shapes. Streams are lists of ready-to-send SSE frames."""

    name = "wire"
    request_id_header = "x-request-id"
    cache_wire: str | None = None  #: whose prompt-cache rules apply (:mod:`heavy.caching`), if not ``name``'s

    def parse(self, body: bytes, path_model: str | None = None, stream: bool = False) -> SimRequest:
        """The request in *body*; ``path_model`` and ``stream`` are what the URL says (Gemini puts them there)."""
        raise NotImplementedError

    def error_body(self, exc: SimHTTPError, request_id: str) -> dict:
        """The body of an error answer: the error's own ``body`` if it has one, else the wire's envelope."""
        return exc.body if exc.body is not None else self.envelope(exc, request_id)

    def envelope(self, exc: SimHTTPError, request_id: str) -> dict:
        """*exc* in this wire's error envelope."""
        raise NotImplementedError

    def response(self, gen: Generation, request: SimRequest) -> dict:
        raise NotImplementedError

    def opening(self, gen: Generation, request: SimRequest) -> list[str]:
        """Frames sent when the first token is due, before any content."""
        return []

    def piece(self, gen: Generation, request: SimRequest, choice: Choice, begin: int, end: int) -> list[str]:
        """Frames carrying ``choice.tokens[begin:end]`` (``end == len(tokens)`` for the last piece)."""
        raise NotImplementedError

    def closing(self, gen: Generation, request: SimRequest) -> list[str]:
        """Frames that end a complete stream."""
        return []

    def stream_error(self, exc: SimHTTPError, request_id: str, gen: Generation, request: SimRequest) -> list[str]:
        """Frames reporting *exc* inside the stream of *gen* that has already answered 200."""
        raise NotImplementedError


def sse(data: dict | str, event: str | None = None) -> str:
    """One server-sent event (``event:`` line first when named)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def json_object(body: bytes, not_json: str, not_object: str) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 with the wire's wording."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SimHTTPError(400, not_json, "invalid_json") from None
    if not isinstance(data, dict):
        raise SimHTTPError(400, not_object, "invalid_json")
    return data


def first_error(exc: ValidationError) -> tuple[str, str, str]:
    """(dotted location, pydantic error type, message) of the first validation error."""
    err = exc.errors()[0]
    return ".".join(str(p) for p in err["loc"]) or "body", err["type"], err["msg"]
