"""What a chat request says, checked once and in linear time before anything runs: what OpenAI refuses at once
is a 400 here too, naming the field, instead of N upstream calls that all fail.

* :func:`check_sizes` (on the decoded body, before it is walked): at most ``max_tools`` tools
  (:data:`heavy.constants.SERVE_MAX_TOOLS`, `heavy serve --max-tools`) and
  :data:`~heavy.constants.SERVE_MAX_STOP` stop sequences.
* :func:`check_request` (on the validated request): the tool definitions (:func:`heavy.types.as_tool_specs`),
  ``tool_choice``, and the conversation: a call's arguments are a JSON object (as text) no deeper than a body
  may nest, call ids are unique, every call is of a declared tool, and every ``tool`` message answers one
  earlier call, once. What it parsed (tool specs, the choice, each call's arguments) is kept on the request
  (:class:`Checked`), so nothing is parsed or checked twice.

No client value is echoed whole in an error (:func:`heavy.remote.errors.excerpt`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import constants as C
from ..remote.errors import APIError, excerpt
from ..remote.policy import check_json
from ..types import ToolChoice, ToolSpec, as_tool_specs

__all__ = ["Checked", "check_sizes", "check_request"]


@dataclass
class Checked:
    """What :func:`check_request` parsed: the client's tool specs, its choice, each call's arguments."""

    specs: list[ToolSpec] = field(default_factory=list)
    choice: ToolChoice = field(default_factory=ToolChoice)
    arguments: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)  #: (message, call) -> args


def check_sizes(data: Any, max_tools: int = C.SERVE_MAX_TOOLS) -> None:
    """400 for more tools or stop sequences than a request may give (O(1): run before the body is walked)."""
    if not isinstance(data, dict):
        return
    tools, stop = data.get("tools"), data.get("stop")
    if isinstance(tools, list) and len(tools) > max_tools:
        raise APIError(400, f"tools: {len(tools)} tools are more than this server accepts ({max_tools}, as OpenAI "
                       f"accepts 128); offer fewer, or its operator raises the limit with `heavy serve --max-tools "
                       f"{len(tools)}`", "too_many_tools", param="tools")
    if isinstance(stop, list) and len(stop) > C.SERVE_MAX_STOP:
        raise APIError(400, f"stop: {len(stop)} stop sequences are more than a request may give "
                       f"({C.SERVE_MAX_STOP})", "invalid_value", param="stop")


def check_request(req: Any) -> Checked:
    """400 for tool definitions, a tool_choice or a conversation no provider would take (see the module)."""
    out = Checked()
    if req.tools:
        try:
            out.specs = as_tool_specs(req.tools)
        except ValueError as exc:
            raise APIError(400, str(exc), "invalid_value", param=str(exc).split(":", 1)[0]) from None
    try:
        out.choice = ToolChoice.parse(req.tool_choice)
    except ValueError as exc:
        raise APIError(400, str(exc), "invalid_value", param="tool_choice") from None
    if req.tool_choice not in (None, "none", "auto") and not req.tools:
        raise APIError(400, "tool_choice needs tools to choose from", "invalid_value", param="tool_choice")
    declared = {t.name for t in out.specs}
    if out.choice.name is not None and out.choice.name not in declared:
        raise APIError(400, f"tool_choice names {excerpt(out.choice.name)}, which is not among the tools",
                       "invalid_value", param="tool_choice")
    calls: dict[str, int] = {}  # call id -> the message that made it
    answered: dict[str, int] = {}  # call id -> the tool message that answered it
    for i, m in enumerate(req.messages):
        _check_message(i, m)
        for j, call in enumerate(m.tool_calls or []):
            where = f"messages.{i}.tool_calls.{j}"
            out.arguments[(i, j)] = _arguments(call.function.arguments, f"{where}.function.arguments")
            if call.id in calls:
                raise APIError(400, f"{where}.id: the id {excerpt(call.id)} is also that of a call in "
                               f"messages.{calls[call.id]}; every call needs its own id", "invalid_value",
                               param=f"{where}.id")
            calls[call.id] = i
            if call.function.name not in declared:
                raise APIError(400, f"{where}.function.name: the call is of {excerpt(call.function.name)}, which "
                               "is not among the request's tools; declare it in tools", "invalid_value",
                               param=f"{where}.function.name")
        if m.role == "tool":
            where = f"messages.{i}.tool_call_id"
            if m.tool_call_id not in calls:
                raise APIError(400, f"{where}: {excerpt(m.tool_call_id)} answers no call of the conversation (a "
                               "tool message follows the assistant message whose tool_calls hold that id)",
                               "invalid_value", param=where)
            if m.tool_call_id in answered:
                raise APIError(400, f"{where}: the call {excerpt(m.tool_call_id)} was already answered in "
                               f"messages.{answered[m.tool_call_id]}", "invalid_value", param=where)
            answered[m.tool_call_id] = i
    return out


def _check_message(i: int, m: Any) -> None:
    extra = m.model_extra or {}
    if extra.get("function_call"):
        raise APIError(400, f"messages.{i}: legacy function calls are not supported by heavy serve; send "
                       "tool_calls", "unsupported_parameter", param=f"messages.{i}.function_call")
    if m.tool_calls and m.role != "assistant":
        raise APIError(400, f"messages.{i}: only assistant messages carry tool_calls", "invalid_value",
                       param=f"messages.{i}.tool_calls")
    if m.role == "tool" and not m.tool_call_id:
        raise APIError(400, f"messages.{i}: a tool message needs the tool_call_id it answers", "invalid_value",
                       param=f"messages.{i}.tool_call_id")
    if m.content is None and not m.tool_calls:
        raise APIError(400, f"messages.{i}: a message needs content", "invalid_value", param=f"messages.{i}.content")
    if isinstance(m.content, list):
        for j, part in enumerate(m.content):
            if "type" not in part:
                raise APIError(400, f"messages.{i}.content.{j}: a content part needs a 'type'", "invalid_value",
                               param=f"messages.{i}.content.{j}")


def _arguments(text: str, where: str) -> dict[str, Any]:
    """A call's arguments: a JSON object as text, nested no deeper than a body may be, valid Unicode."""
    try:
        args = json.loads(text or "{}")
    except RecursionError:
        raise APIError(400, f"{where}: the arguments nest JSON deeper than this server accepts "
                       f"({C.SERVE_MAX_JSON_DEPTH} levels)", "invalid_value", param=where) from None
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise APIError(400, f"{where} must be a JSON object (as text)", "invalid_value", param=where)
    try:
        check_json(args, C.SERVE_MAX_JSON_DEPTH, what="the arguments")
    except APIError as exc:
        raise APIError(400, f"{where}: {exc.message}", "invalid_value", param=where) from None
    return args
