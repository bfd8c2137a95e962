"""What a remote caller (a ``heavy serve`` client, an MCP ``ask`` call) may ask for: the operator decides what runs.

* **Code execution** is the operator's decision. A strategy that runs code (class attribute
  ``runs_code = True``, e.g. ``execute``), and an option that runs code or reaches a tool (named in
  :data:`heavy.constants.SERVE_CODE_OPTIONS`, or declared with ``Field(json_schema_extra={"runs_code":
  True})``), are refused with a 400 naming ``heavy serve --tools python`` unless the server enables python.
* **Operator-only options** (:data:`heavy.constants.SERVE_OPERATOR_ONLY_OPTIONS`, e.g. ``sandbox``, or
  ``json_schema_extra={"operator_only": True}``) are refused for every client, whatever the server enables.
* **Costs are bounded**: every numeric option a client sets has a ceiling (its own in
  :data:`heavy.constants.SERVE_OPTION_LIMITS`, else :data:`~heavy.constants.SERVE_DEFAULT_OPTION_LIMIT`),
  which the operator changes with ``heavy serve --option-limit NAME=MAX``; so has every client-set run
  option whose :class:`~heavy.settings.RunSettings` field declares a ``ceiling`` (``max_tokens``; ``n``'s is
  ``heavy serve --max-n``).
* **Bodies are plain JSON**: at most :data:`~heavy.constants.SERVE_MAX_JSON_DEPTH` levels deep, and every
  string valid Unicode (a lone UTF-16 surrogate such as ``"\\ud800"`` cannot be sent upstream).

No web framework is imported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .. import constants as C
from ..settings import RunSettings, ceiling
from .errors import APIError

__all__ = ["OptionPolicy", "decode_body", "check_json", "parse_limits"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_body(body: bytes, max_depth: int = C.SERVE_MAX_JSON_DEPTH) -> Any:
    """The decoded JSON of a request body; every problem is a 400 :class:`APIError`."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except (ValueError, UnicodeDecodeError):
        raise APIError(400, "the request body is not valid JSON", "invalid_json") from None
    check_json(data, max_depth)
    return data


def _too_deep(max_depth: int) -> APIError:
    return APIError(400, f"the request body nests JSON deeper than this server accepts ({max_depth} levels)",
                    "invalid_json")


def check_json(data: Any, max_depth: int = C.SERVE_MAX_JSON_DEPTH) -> None:
    """400 if *data* nests deeper than *max_depth* or holds a string that is not valid Unicode.

    Iterative, so a hostile body cannot exhaust the stack here either.
    """
    stack: list[tuple[Any, int, tuple]] = [(data, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                where = ".".join(map(str, path)) or "the body"
                raise APIError(400, f"{where}: the text holds a lone UTF-16 surrogate (an escape such as "
                               "\\ud800 without its pair), which is not valid Unicode; send valid UTF-8 text",
                               "invalid_value", param=where if path else None)
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > max_depth:
            raise _too_deep(max_depth)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and _SURROGATE.search(key):
                raise APIError(400, "a key of the request body holds a lone UTF-16 surrogate, which is not valid "
                               "Unicode; send valid UTF-8 text", "invalid_value")
            if isinstance(item, (str, dict, list)):
                stack.append((item, depth + 1, (*path, key)))


def parse_limits(pairs: Mapping[str, Any] | list[str] | tuple[str, ...]) -> dict[str, float]:
    """``NAME=MAX`` pairs (or a mapping) as option ceilings; :class:`ValueError` names a bad one."""
    items = pairs.items() if isinstance(pairs, Mapping) else [_split(p) for p in pairs]
    out: dict[str, float] = {}
    for name, raw in items:
        name = str(name).strip()
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"option limit {name}={raw!r}: the ceiling must be a number") from None
        if not name or value != value or value < 0:
            raise ValueError(f"option limit {name}={raw!r}: give NAME=MAX with a number >= 0, e.g. retries=5")
        out[name] = int(value) if value.is_integer() else value
    return out


def _split(pair: str) -> tuple[str, str]:
    name, sep, raw = pair.partition("=")
    if not sep:
        raise ValueError(f"option limit {pair!r} is not NAME=MAX (e.g. --option-limit retries=5)")
    return name, raw


def _extra(field: Any, key: str) -> bool:
    extra = getattr(field, "json_schema_extra", None)
    return isinstance(extra, dict) and bool(extra.get(key))


class OptionPolicy:
    """The server's rules for what a request may set: code execution, operator-only options, ceilings.

    ``tools`` are the tools the operator enabled (``heavy serve --tools``); ``limits`` override
    :data:`heavy.constants.SERVE_OPTION_LIMITS` (``"*"`` sets the default ceiling of every other option).
    ``command`` is the operator's command the errors name (``heavy mcp`` applies the same rules), and
    ``options_param`` where a client sets strategy options (``options`` as an MCP tool argument).
    """

    def __init__(self, tools: str | list[str] | None = None, limits: Mapping[str, float] | None = None, *,
                 command: str = "heavy serve", options_param: str = "heavy.options") -> None:
        self.command, self.options_param = command, options_param
        names = tools.split(",") if isinstance(tools, str) else [getattr(t, "name", t) for t in tools or []]
        self.tools = [str(t).strip() for t in names if t and str(t).strip()]
        run_ceilings = {name: ceiling(name) for name in RunSettings.model_fields if name != "n"}
        self.limits = {**C.SERVE_OPTION_LIMITS, **{k: v for k, v in run_ceilings.items() if v is not None},
                       **(limits or {})}
        self.default_limit = self.limits.pop("*", C.SERVE_DEFAULT_OPTION_LIMIT)

    @property
    def runs_code(self) -> bool:
        """Whether the operator lets requests run code on this machine (python enabled)."""
        return "python" in self.tools

    def limit(self, strategy: str, name: str) -> float | None:
        """The ceiling of option *name* of *strategy* (``None``: an identifier such as a seed, unbounded)."""
        for key in (f"{strategy}.{name}", name):
            if key in self.limits:
                return self.limits[key]
        if name in C.SERVE_UNLIMITED_OPTIONS or name.endswith("seed"):
            return None
        return self.default_limit

    def check_strategy(self, strategy: str, strategy_cls: type, param: str) -> None:
        """400 unless the server may run *strategy* for a client (code-running strategies need python)."""
        if getattr(strategy_cls, "runs_code", False) and not self.runs_code:
            raise APIError(400, f"the strategy {strategy!r} runs code on this server, which its operator has not "
                           "enabled: code execution is the operator's decision (start the server with "
                           f"`{self.command} --tools python` to allow it)", "code_execution_disabled", param=param)

    def check_options(self, strategy: str, strategy_cls: type, options: Mapping[str, Any]) -> None:
        """400 for options a client may not set here (before they are validated, so always named)."""
        fields = getattr(strategy_cls.Options, "model_fields", {})
        for name in options:
            field, param = fields.get(name), f"{self.options_param}.{name}"
            if name in C.SERVE_OPERATOR_ONLY_OPTIONS or _extra(field, "operator_only"):
                raise APIError(400, f"{param} is set by this server's operator, never by a request "
                               f"(it guards the machine the server runs on); remove it", "operator_only_option",
                               param=param)
            if (name in C.SERVE_CODE_OPTIONS or _extra(field, "runs_code")) and not self.runs_code:
                raise APIError(400, f"{param} runs code or a tool on this server, which its operator "
                               "has not enabled: code execution is the operator's decision (start the server with "
                               f"`{self.command} --tools python` to allow it)", "code_execution_disabled",
                               param=param)

    def check_values(self, strategy: str, given: Mapping[str, Any], parsed: Any) -> None:
        """400 for a numeric option above its ceiling; *parsed* is the validated options model, so a value
        given as a string ("300") is checked as the number the strategy will use."""
        for name in given:
            value = getattr(parsed, name, given[name])
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            ceiling = self.limit(strategy, name)
            if ceiling is not None and value > ceiling:
                raise self._above(f"{self.options_param}.{name}", name, value, ceiling)

    def check_run_option(self, name: str, value: float | None, param: str) -> None:
        """400 for a client-set run option (``max_tokens``) above its ceiling."""
        top = self.limits.get(name)
        if value is not None and top is not None and value > top:
            raise self._above(param, name, value, top)

    def _above(self, param: str, name: str, value: float, ceiling: float) -> APIError:
        return APIError(400, f"{param}={_num(value)} is above this server's limit of {_num(ceiling)}; its operator "
                        f"can raise it with `{self.command} --option-limit {name}={_num(value)}`", "limit_exceeded",
                        param=param)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)
