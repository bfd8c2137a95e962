"""The provider extension point.

A provider turns a :class:`CompletionRequest` into a :class:`Completion` for one API. It knows nothing
of the sampler, strategies or shells. Subclasses implement :meth:`Provider.complete`; those that can
stream override :meth:`Provider.stream` as well (the default streams the complete answer as one delta).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..types import Message, SamplingParams, TokenLogprob, ToolCall, ToolChoice, ToolSpec, Usage

__all__ = ["CompletionRequest", "Completion", "Delta", "Provider", "HTTPProvider", "DATA_URL"]


class CompletionRequest(BaseModel):
    """One call to a model: the model id (without the provider prefix), messages and parameters."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[Message]
    params: SamplingParams = Field(default_factory=SamplingParams)
    extra_body: dict[str, Any] = Field(default_factory=dict, description="provider-specific fields, sent as-is")
    tools: list[ToolSpec] | None = Field(default=None, description="tools the model may call natively")
    tool_choice: ToolChoice | None = Field(default=None, description="may, must or must not call them "
                                           "(None: the API's default, auto)")
    parallel_tool_calls: bool | None = Field(default=None, description="False: at most one call per answer "
                                             "(None: the API's default)")
    n: int = Field(default=1, ge=1, description="choices to generate in this one request (OpenAI-style `n`; only "
                   "for providers whose choice_limit() allows it): the prompt is sent and paid once")
    cache_prefix: int = Field(default=0, ge=0, description="the first cache_prefix messages are shared with sibling "
                              "requests: a provider whose cache needs marking (Anthropic's cache_control) marks "
                              "their end; 0 marks nothing")
    cache_key: str | None = Field(default=None, description="names the shared prefix, so a provider that routes by "
                                  "it (OpenAI's prompt_cache_key) sends siblings to the same cache")


class Completion(BaseModel):
    """What a provider returns: the answer text, kept apart from any reasoning/thinking text."""

    model_config = ConfigDict(extra="forbid")

    text: str
    reasoning: str | None = None
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    logprobs: list[TokenLogprob] | None = None
    model: str | None = None
    request_id: str | None = None
    tool_calls: list[ToolCall] | None = None
    choices: list["Completion"] | None = Field(default=None, description="every choice of a request that asked "
                                               "for n > 1, in index order (this completion is the first); the "
                                               "request's usage is on this completion, the choices carry none")


@dataclass(slots=True)
class Delta:
    """A streamed piece of answer text (``text``) or of reasoning (``reasoning``), of choice ``choice`` of a
    request that asked for several (0 otherwise)."""

    text: str = ""
    reasoning: str = ""
    choice: int = 0


class Provider(ABC):
    """Base class of every provider. ``name`` labels errors and traces (e.g. ``"openai"``)."""

    name: str = "provider"
    #: Choices one request may generate (``CompletionRequest.n``); 1: one per request. 0: the server says
    #: (:meth:`choice_limit` asks it).
    max_choices: int = 1

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion:
        """Make one non-streaming call."""

    async def choice_limit(self) -> int:
        """How many choices one request may ask for (``CompletionRequest.n``); 1 when it cannot ask for more."""
        return max(1, self.max_choices)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        """Yield :class:`Delta` pieces as they arrive, then exactly one final :class:`Completion`."""
        completion = await self.complete(request)
        if completion.reasoning:
            yield Delta(reasoning=completion.reasoning)
        if completion.text:
            yield Delta(text=completion.text)
        yield completion

    async def aclose(self) -> None:
        """Release connections. Safe to call twice."""

    @classmethod
    def from_spec(cls, spec: Any, profiles: Any, *, transport: Any = None, background: bool = False) -> "Provider":
        """The provider of a resolved model spec (:class:`~heavy.models.ModelSpec`) whose preset names this class's
        wire: how a wire registered in the ``heavy.providers`` entry-point group is built (:mod:`heavy.providers.
        factory`). *profiles* say what the endpoint's models accept; *transport* is a caller's httpx transport;
        *background* asks for background mode where the API has one."""
        raise NotImplementedError(f"{cls.__name__} is not a registered wire (no from_spec)")


#: A ``data:`` URL holding base64 content (images sent inline), shared by the wire formats.
DATA_URL = re.compile(r"^data:(?P<mime>[^;,]+);base64,(?P<data>.*)$", re.DOTALL)


class HTTPProvider(Provider):
    """A provider that talks HTTP through one pooled :class:`~heavy.http.HTTPClient`.

    Subclasses build their auth/version headers and call ``super().__init__``; the client, its
    lifetime and ``base_url`` are handled here. ``auth_hint`` is the message of a 401/403 answer (see
    :class:`~heavy.http.HTTPClient`).
    """

    def __init__(self, base_url: str, *, name: str, headers: dict[str, str], timeout: Any = None,
                 transport: Any = None, extra_headers: dict[str, str] | None = None,
                 auth_hint: str | None = None) -> None:
        from ..http import HTTPClient

        self.name = name
        self._http = HTTPClient(base_url, headers={"content-type": "application/json", **headers,
                                                   **(extra_headers or {})},
                                timeout=timeout, transport=transport, provider=name,
                                auth_hint=auth_hint)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def http(self) -> Any:
        """The provider's pooled :class:`~heavy.http.HTTPClient` (its endpoint and credentials), for the other
        endpoints of the same API (the batch APIs of :mod:`heavy.batch`)."""
        return self._http

    async def aclose(self) -> None:
        await self._http.aclose()
