"""Errors for remote callers in OpenAI's shape (the proxy; the MCP server reuses the message), and the
mapping of heavy's error tree onto HTTP statuses.

Every error a client sees is ``{"error": {"message", "type", "param", "code"}}`` with a status that says
whose fault it is: 4xx for the request (fix it, do not retry as is), 429 to slow down, 502/504 when the
upstream model API failed or was too slow. Messages come from heavy's errors, which are already scrubbed
of keys (:func:`heavy.errors.redact`); nothing else (no traceback, no upstream key) ever reaches a client.
"""

from __future__ import annotations

from typing import Any

from ..errors import (BudgetExceeded, ConfigError, FatalRequestError, HeavyError, MissingKeyError, ModelSpecError,
                      ProviderError, ProviderTimeout, QuorumError, StrategyNotFound, redact)

__all__ = ["APIError", "from_exception", "excerpt", "shorten", "MESSAGE_LIMIT"]

#: Longest error message sent to a client (a provider error can carry a body excerpt).
MESSAGE_LIMIT = 1000

#: Longest excerpt of a client's own value in an error (a 4 MB model name is not sent back).
EXCERPT_LIMIT = 60

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "invalid_request_error", 405: "invalid_request_error", 408: "invalid_request_error",
          413: "invalid_request_error", 415: "invalid_request_error", 421: "invalid_request_error",
          429: "rate_limit_error"}


def excerpt(value: object, limit: int = EXCERPT_LIMIT, *, quote: bool = True) -> str:
    """*value* as an error quotes it: its repr (or, with ``quote=False``, its text), cut to *limit* characters.
    A client's value is never echoed whole: it may be megabytes."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def shorten(message: str, *values: object) -> str:
    """*message* (heavy's own, e.g. a ConfigError's) with each long client *value* it quotes cut to an excerpt."""
    for value in values:
        if isinstance(value, str) and len(value) > EXCERPT_LIMIT:
            message = message.replace(repr(value), excerpt(value)).replace(value, excerpt(value, quote=False))
    return message


class APIError(Exception):
    """An error answer of the proxy: HTTP ``status`` plus OpenAI's ``type``/``code``/``param``."""

    def __init__(self, status: int, message: str, code: str | None = None, *, param: str | None = None,
                 type_: str | None = None, headers: dict[str, str] | None = None) -> None:
        message = redact(message)
        if len(message) > MESSAGE_LIMIT:
            message = message[:MESSAGE_LIMIT - 1] + "…"
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type_ or _TYPES.get(status, "server_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _all_timeouts(exc: QuorumError) -> bool:
    kinds = {getattr(h, "error_type", None) for h in exc.failures}
    return bool(kinds) and kinds <= {"ProviderTimeout", "Cancelled"}


def from_exception(exc: BaseException, *, param: str | None = None) -> APIError:
    """The client-facing error for anything a run (or building it) raised."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, HeavyError):
        text = exc.message
        if isinstance(exc, MissingKeyError):
            return APIError(400, f"this server has no API key for {exc.provider}: set {exc.env_var} in the "
                            "server's environment (or its *_BASE_URL for a server that needs none)",
                            "upstream_not_configured", param=param)
        if isinstance(exc, (ModelSpecError, StrategyNotFound)):
            return APIError(400, text, "invalid_value", param=param)
        if isinstance(exc, ConfigError):
            return APIError(400, text, "invalid_value", param=param)
        if isinstance(exc, FatalRequestError):
            # 400/422 upstream: the request (e.g. its messages) is what the model refused; 401/403/404: the
            # server's own upstream configuration is wrong, which the client cannot fix.
            if exc.status in (400, 422):
                return APIError(400, f"the upstream model rejected the request: {text}", "upstream_rejected_request")
            return APIError(502, f"upstream model error: {text}", "upstream_error", type_="server_error")
        if isinstance(exc, ProviderTimeout) or (isinstance(exc, QuorumError) and _all_timeouts(exc)):
            return APIError(504, f"the upstream model did not answer in time: {text}", "upstream_timeout",
                            type_="server_error")
        if isinstance(exc, BudgetExceeded):
            return APIError(502, text, "budget_exceeded", type_="server_error")
        if isinstance(exc, ProviderError):
            return APIError(502, f"upstream model error: {text}", "upstream_error", type_="server_error")
        return APIError(502, text, "run_failed", type_="server_error")  # QuorumError, AggregationError, …
    return APIError(500, f"internal error ({type(exc).__name__}); see the server's log", "internal_error",
                    type_="server_error")
