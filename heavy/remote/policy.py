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
* **Models are the operator's** (:class:`ModelPolicy`): a caller names only the models the operator
  configured (the model and aggregator_model of the flags and ``[defaults]``) and those matching its
  ``--allow-model PATTERN``: sampling models, the aggregator, and strategy options that name models
  (:data:`heavy.constants.SERVE_MODEL_OPTIONS`, or ``json_schema_extra={"names_models": True}``); any other is
  a 403, so no caller spends the operator's keys on another provider, model or local port.

No web framework is imported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from .. import constants as C
from ..settings import RunSettings, ceiling
from ..strategy import load_strategy, registered_strategies
from .errors import APIError, excerpt

__all__ = ["OptionPolicy", "ModelPolicy", "decode_body", "check_json", "parse_limits", "find_strategy",
           "unknown_strategy"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_body(body: bytes | str, max_depth: int = C.SERVE_MAX_JSON_DEPTH,
                first: Callable[[Any], None] | None = None) -> Any:
    """The decoded JSON of a request body; every problem is a 400 :class:`APIError`. *first* checks the decoded
    value before it is walked (quick checks of its size, so a huge body is refused at once)."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except (ValueError, UnicodeDecodeError):
        raise APIError(400, "the request body is not valid JSON", "invalid_json") from None
    if first is not None:
        first(data)
    check_json(data, max_depth)
    return data


def _too_deep(max_depth: int, what: str = "the request body") -> APIError:
    return APIError(400, f"{what} nests JSON deeper than this server accepts ({max_depth} levels)", "invalid_json")


def check_json(data: Any, max_depth: int = C.SERVE_MAX_JSON_DEPTH, *, what: str = "the request body") -> None:
    """400 if *data* (*what* the message calls it) nests deeper than *max_depth* or holds a string that is not
    valid Unicode.

    Iterative, so a hostile body cannot exhaust the stack here either.
    """
    stack: list[tuple[Any, int, tuple]] = [(data, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                where = excerpt(".".join(map(str, path)), 100, quote=False) or what  # keys are the client's
                raise APIError(400, f"{where}: the text holds a lone UTF-16 surrogate (an escape such as "
                               "\\ud800 without its pair), which is not valid Unicode; send valid UTF-8 text",
                               "invalid_value", param=where if path else None)
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > max_depth:
            raise _too_deep(max_depth, what)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and _SURROGATE.search(key):
                raise APIError(400, f"a key of {what} holds a lone UTF-16 surrogate, which is not valid "
                               "Unicode; send valid UTF-8 text", "invalid_value")
            if isinstance(item, (str, dict, list)):
                stack.append((item, depth + 1, (*path, key)))


def find_strategy(name: str) -> type | None:
    """The strategy class registered as *name*, or ``None`` (so the caller's error quotes an excerpt of the name:
    a client's may be megabytes)."""
    return load_strategy(name) if name in registered_strategies() else None


def unknown_strategy(name: str) -> str:
    """The message for a strategy name nothing is registered as."""
    return f"unknown strategy {excerpt(name)}; registered: {', '.join(sorted(registered_strategies()))}"


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
            forbids = getattr(strategy_cls.Options, "model_config", {}).get("extra") == "forbid"
            if field is None and forbids:  # named here: the validation's own message would echo it whole
                raise APIError(400, f"strategy {strategy!r}: unknown option {excerpt(name)} (known options: "
                               f"{', '.join(fields) or 'none'})", "invalid_value", param=self.options_param)

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
        shown = excerpt(_num(value), 30, quote=False)
        return APIError(400, f"{param}={shown} is above this server's limit of {_num(ceiling)}; its operator "
                        f"can raise it with `{self.command} --option-limit {name}={shown}`", "limit_exceeded",
                        param=param)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


class ModelPolicy:
    """The models a remote caller may name: the operator's configured ones (``defaults``' model and
    aggregator_model), and those matching one of *patterns* (fnmatch, e.g. ``openai:*``); 403 for any other."""

    def __init__(self, defaults: RunSettings, patterns: Iterable[str] = (), *, command: str = "heavy serve",
                 options_param: str = "heavy.options") -> None:
        self.command, self.options_param = command, options_param
        self.configured = frozenset(m.strip() for m in [*defaults.model, defaults.aggregator_model or ""] if m)
        self.patterns = tuple(p.strip() for p in patterns if p.strip())

    def allows(self, spec: str) -> bool:
        name = spec.strip()
        return name in self.configured or any(fnmatchcase(name, p) for p in self.patterns)

    def check(self, specs: str | Iterable[str], param: str) -> None:
        """403 unless every model of *specs* may be named here; *param* is where the caller named it."""
        for spec in [specs] if isinstance(specs, str) else specs:
            if not isinstance(spec, str) or not self.allows(spec):
                shown = ", ".join(sorted(self.configured)) or "none"
                raise APIError(403, f"{param}: the model {excerpt(spec)} is not one this server lets clients name "
                               f"(its models: {excerpt(shown, 200, quote=False)}); its operator allows more with "
                               f"`{self.command} --allow-model PATTERN`", "model_not_allowed", param=param)

    def check_options(self, strategy_cls: type, options: Mapping[str, Any]) -> None:
        """403 for a strategy option naming a model that may not be named (moa's ``layer_models``, …)."""
        fields = getattr(getattr(strategy_cls, "Options", None), "model_fields", {})
        for name, value in options.items():
            if name in C.SERVE_MODEL_OPTIONS or _extra(fields.get(name), "names_models"):
                self.check(_strings(value), f"{self.options_param}.{name}")


def _strings(value: Any) -> list[Any]:
    """The model names in an option's value: a name, or lists (of lists) of names; anything else as it is."""
    out, stack = [], [value]
    while stack:  # iterative: nesting is the caller's
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif item is not None:
            out.append(item)
    return out
