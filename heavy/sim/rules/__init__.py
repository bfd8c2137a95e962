"""What each API refuses, by model name: the simulator's own encoding of the providers' documented rules.

The simulator must be at least as strict as the APIs it imitates, so every documented refusal of a model family
is modelled here with the API's status and error body, each as a :class:`Rule` that names its source and says
whether its wording is verbatim (quoted from a recorded exchange, an official spec or SDK, or a public issue) or
the simulator's assumption (the refusal is documented, its exact text is not). :func:`rules_table` renders them
all for ``docs/simulator.md``.

This package is the independent judge of heavy's model profiles: it imports nothing of heavy's providers or
profiles. A wire calls its checker with the model's name (the ``@key=value`` overrides stripped) and the request's
JSON object; the checker raises the refusal as a :class:`~heavy.sim.wire.SimHTTPError`, or returns how the model
thinks on the request (a :class:`~heavy.sim.wire.Thinking`, or ``None``). Names of no known family (the
simulator's own ``heavy-simulated``, ``local``, anything else) are served leniently, as before.

- :mod:`heavy.sim.rules.openai`: OpenAI on Chat Completions and the Responses API (also Azure's v1 routes);
- :mod:`heavy.sim.rules.compat`: xAI (``grok-*``) and DeepSeek (``deepseek-*``) on the chat wire;
- :mod:`heavy.sim.rules.anthropic`: the Messages API (``claude-*``);
- :mod:`heavy.sim.rules.gemini`: ``generateContent`` (``gemini-*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..wire import SimHTTPError

__all__ = ["Rule", "RULES", "rule", "base_name", "rules_table", "quote", "listing", "present"]

#: Every rule of every module, in the order they are defined (each module appends its own on import).
RULES: list[Rule] = []

#: Each error shape: its name in the table, and the body it stands for.
SHAPES = {
    "openai": ("OpenAI", '`{"error": {"message", "type": "invalid_request_error", "param", "code"}}`'),
    "xai": ("xAI", '`{"code": "<code>", "error": "<message>"}`'),
    "deepseek": ("DeepSeek", '`{"error": {"message", "type": "invalid_request_error", "param": null, '
                             '"code": "invalid_request_error"}}`'),
    "anthropic": ("Anthropic", '`{"type": "error", "error": {"type": "invalid_request_error", "message"}, '
                               '"request_id"}` (and a `request-id` header)'),
    "gemini": ("Google RPC", '`{"error": {"code": 400, "message", "status": "INVALID_ARGUMENT"}}`'),
    "gemini-details": ("Google RPC + details", '`{"error": {"code": 400, "message", "status": "INVALID_ARGUMENT", '
                                               '"details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", '
                                               '"fieldViolations": [{"field"?, "description"}]}]}}`'),
    "azure": ("Azure", '`{"error": {"code": "404", "message"}}`'),
}


@dataclass(frozen=True)
class Rule:
    """One documented refusal: what is refused, of which models, how, and where that is written down.

    ``message`` and ``param`` are :meth:`str.format` templates filled by :meth:`error`; ``shape`` is the error
    body's envelope (a key of :data:`SHAPES`); ``verbatim`` says whether the wording is the API's own (else it is
    the simulator's assumption, the closest sourced wording, and ``source`` says so).
    """

    api: str
    what: str
    models: str
    status: int
    message: str
    source: str
    verbatim: bool = True
    shape: str = "openai"
    param: str | None = None
    code: str | None = None
    type_: str = "invalid_request_error"

    def error(self, **values: Any) -> SimHTTPError:
        """The refusal as the error the wire answers, with *values* filled into the message and param."""
        message = self.message.format(**values)
        param = self.param.format(**values) if self.param else None
        body: dict | None = None
        if self.shape == "xai":
            body = {"code": self.code, "error": message}
        elif self.shape == "azure":
            body = {"error": {"code": self.code, "message": message}}
        elif self.shape == "gemini-details":
            violation = {"field": param, "description": message} if param else {"description": message}
            body = {"error": {"code": self.status, "message": message, "status": "INVALID_ARGUMENT", "details": [
                {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}]}}
        return SimHTTPError(self.status, message, self.code, type_=self.type_, param=param, body=body)


def rule(api: str, what: str, models: str, status: int, message: str, source: str, **fields: Any) -> Rule:
    """A :class:`Rule`, registered in :data:`RULES`."""
    made = Rule(api, what, models, status, message, source, **fields)
    RULES.append(made)
    return made


def base_name(model: str) -> str:
    """The model's name without the simulator's ``@key=value`` overrides."""
    return model.partition("@")[0]


def present(data: dict[str, Any], key: str) -> bool:
    """The request sets *key* to a value (a JSON ``null`` counts as not sent, as the APIs treat it)."""
    return data.get(key) is not None


def quote(value: Any) -> str:
    """A value as OpenAI's messages print it: ``'high'``, ``null``, ``0.7``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"'{value}'" if isinstance(value, str) else str(value)


def listing(values: tuple[str, ...], last: str = "and") -> str:
    """``'a', 'b', and 'c'`` as OpenAI lists supported values (a single value alone)."""
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 1:
        return "".join(quoted)
    if len(quoted) == 2:
        return f"{quoted[0]} {last} {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", {last} {quoted[-1]}"


def rules_table() -> str:
    """Every rule as the Markdown tables of ``docs/simulator.md``: the error shapes, then the rules (a test keeps the
    file current)."""
    rows = ["| shape | body |", "|---|---|", *(f"| {label} | {body} |" for label, body in SHAPES.values()), "",
            "| API | refused | models | status, shape | message | source | wording |", "|---|---|---|---|---|---|---|"]
    for r in RULES:
        wording = "verbatim" if r.verbatim else "simulator's assumption"
        code = f", code `{r.code}`" if r.code and r.shape in ("openai", "xai") else ""
        param = f", param `{r.param}`" if r.param and r.shape == "openai" else ""
        message = r.message.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {r.api} | {r.what} | {r.models} | {r.status} {SHAPES[r.shape][0]}{code}{param} | {message} | "
                    f"{r.source} | {wording} |")
    return "\n".join(rows) + "\n"


# The rule modules register their rules on import; the wires import their checkers from them.
from . import openai, compat, anthropic, gemini  # noqa: E402,F401,I001
