"""The one error tree of heavy.

Every error heavy raises on purpose derives from :class:`HeavyError`::

    HeavyError
    ├── ConfigError                 bad input from the caller; fix the call, do not retry
    │   ├── ModelSpecError          "provider:model" cannot be parsed or names no known provider
    │   ├── MissingKeyError         an API key is needed; names the environment variable to set
    │   ├── OptionsError            unknown/invalid strategy option or sampling parameter
    │   ├── StrategyNotFound        no strategy of that name is registered
    │   ├── ToolNotFound            (heavy.tools) no tool of that name is registered / configured
    │   └── UnknownLocalModel, NotSetUp, PortInUse, ServerConflict   (heavy.local.errors)
    ├── ProviderError               a model API call failed (carries provider, model, status, request id)
    │   ├── ProviderConnectionError could not connect / connection dropped
    │   ├── ProviderTimeout         the call exceeded its timeout
    │   ├── ProviderHTTPError       the API answered with an HTTP error status
    │   │   └── FatalRequestError   400/401/403/404/422: same for every sibling, so the run stops
    │   ├── ProviderResponseError   2xx, but the body is not what the wire format promises
    │   └── StreamInterrupted       a stream broke after delivering text (re-sampled, not retried)
    ├── LocalError                  (heavy.local.errors) the local model server could not be set up / started
    │   ├── SetupError              build or download failed (names the log) — IntegrityError: bad sha256
    │   └── ServerStartError        llama-server died at start-up (shows the log tail)
    └── RunError                    the run as a whole could not produce an answer
        ├── QuorumError             fewer hypotheses succeeded than required (carries every failure)
        ├── AggregationError        the judge/aggregator could not decide and no fallback applied
        └── BudgetExceeded          a token/dollar/time cap of the run is spent (no new calls are made)

Configuration errors are separate from provider errors so shells can map them to different exit
codes / HTTP statuses (a ConfigError is the caller's to fix: exit 1 or HTTP 400). Provider errors carry
what is needed to debug them (provider, model, HTTP status, request id, an excerpt of the body) and never
the API key: :func:`redact` scrubs known secrets from any text that goes into an error — every key heavy
was configured with (:func:`register_secret`), secret-named environment variables, and key-shaped text.
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = [
    "FATAL_STATUSES",
    "AUTH_STATUSES",
    "error_for_status",
    "retryable_status",
    "HeavyError",
    "ConfigError",
    "ModelSpecError",
    "MissingKeyError",
    "OptionsError",
    "StrategyNotFound",
    "ProviderError",
    "ProviderConnectionError",
    "ProviderTimeout",
    "ProviderHTTPError",
    "ProviderResponseError",
    "StreamInterrupted",
    "FatalRequestError",
    "BudgetExceeded",
    "RunError",
    "QuorumError",
    "AggregationError",
    "redact",
    "register_secret",
    "describe_validation",
]

# Values of these variables are never allowed to surface in messages (plus anything that looks like
# a bearer token).
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_SERVER_KEY")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}")
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|xai-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,})")
#: Shorter values are not scrubbed: replacing every "abc" in a message would garble it and protect nothing.
_MIN_SECRET = 6
# Every key heavy has been configured with in this process (explicit ``api_key=`` values, keys read from
# an ``env=`` mapping, auth headers handed to an HTTP client). An upstream may echo a key bare, in any
# shape, so recognising key-like text is not enough: the exact values are scrubbed wherever they appear.
_REGISTERED: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember *value* as a secret: from now on :func:`redact` (and so every heavy error) scrubs it."""
    if value and len(value.strip()) >= _MIN_SECRET:
        _REGISTERED.add(value.strip())


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return *text* with API keys (given, registered, from the environment, or key-shaped) replaced by ``***``."""
    candidates = [s for s in secrets if s]
    candidates += _REGISTERED
    candidates += [v for k, v in os.environ.items() if k.endswith(_SECRET_ENV_SUFFIXES) and len(v) >= _MIN_SECRET]
    for secret in sorted(set(candidates), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _BEARER.sub(r"\1***", text)
    return _KEYLIKE.sub("***", text)


def describe_validation(exc: Exception) -> str:
    """A pydantic ValidationError as one line: ``field: problem; field: problem``."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in errors())


class HeavyError(Exception):
    """Base class of every error heavy raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)


# --- configuration -------------------------------------------------------------------------------


class ConfigError(HeavyError):
    """The caller's input is wrong; retrying will not help."""


class ModelSpecError(ConfigError):
    """A model spec cannot be parsed or names an unknown provider."""


class MissingKeyError(ConfigError):
    """An API key is required; ``env_var`` names the variable to set."""

    def __init__(self, provider: str, env_var: str) -> None:
        self.provider = provider
        self.env_var = env_var
        super().__init__(
            f"{provider}: no API key; set {env_var} (or pass --base-url for a server that needs none)"
        )


class OptionsError(ConfigError):
    """A strategy option or sampling parameter is unknown or invalid."""


class StrategyNotFound(ConfigError):
    """No strategy of that name is registered in the ``heavy.strategies`` entry-point group."""


# --- provider ------------------------------------------------------------------------------------


class ProviderError(HeavyError):
    """A call to a model API failed.

    Attributes are all optional because a connection can fail before there is a status or request id.
    ``retryable`` says whether the same request may succeed later (timeouts, 408/409/429/5xx/529, or the
    server's own ``x-should-retry``); ``retry_after`` is the wait the server asked for, in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        body: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After & co.), if any
        self.provider = provider
        self.model = model
        self.status = status
        self.request_id = request_id
        self.body = redact(body) if body else body
        self.retryable = retryable
        where = ":".join(p for p in (provider, model) if p)
        parts = [f"{where}: {message}" if where else message]
        if status is not None:
            parts.append(f"status {status}")
        if request_id:
            parts.append(f"request id {request_id}")
        text = " | ".join(parts)
        if self.body:
            text += f" | body: {self.body}"
        super().__init__(text)


class ProviderConnectionError(ProviderError):
    """The connection could not be made or broke off."""


class ProviderTimeout(ProviderError):
    """The call took longer than its timeout."""


class ProviderHTTPError(ProviderError):
    """The API answered with an HTTP error status (see ``status``)."""


class ProviderResponseError(ProviderError):
    """The API answered 2xx with a body that does not match its wire format."""


class StreamInterrupted(ProviderError):
    """A stream broke after it had started delivering text; the call is not retried in place (the text
    already shown cannot be taken back), the sampler re-samples the hypothesis from scratch instead."""


class FatalRequestError(ProviderHTTPError):
    """400/401/403/404/422: the request itself is wrong, so every sibling hypothesis would fail the same
    way; the sampler cancels the siblings and reports this one error."""


#: Statuses that say the request itself is wrong (every sibling would fail alike): FatalRequestError.
FATAL_STATUSES = frozenset({400, 401, 403, 404, 422})
#: Statuses whose message is better replaced by a hint naming the key to set.
AUTH_STATUSES = frozenset({401, 403})


def retryable_status(status: int) -> bool:
    """Whether the same request may succeed later: 408, 409, 429, Anthropic's 529 (overloaded) and 5xx."""
    return status in (408, 409, 429, 529) or status >= 500


def error_for_status(status: int, message: str, *, retryable: bool | None = None, **fields: Any) -> ProviderHTTPError:
    """The error of an HTTP error *status*: :class:`FatalRequestError` for :data:`FATAL_STATUSES`, else a
    :class:`ProviderHTTPError`, retryable as :func:`retryable_status` says unless *retryable* overrides it
    (a server's own ``x-should-retry``). The one classification of statuses, for every transport."""
    cls = FatalRequestError if status in FATAL_STATUSES else ProviderHTTPError
    return cls(message, status=status, retryable=retryable_status(status) if retryable is None else retryable,
               **fields)


# --- run -----------------------------------------------------------------------------------------


class RunError(HeavyError):
    """The run as a whole could not produce an answer."""


class QuorumError(RunError):
    """Fewer hypotheses succeeded than ``min_successes``; ``failures`` holds each failed hypothesis."""

    def __init__(self, message: str, failures: list | None = None) -> None:
        self.failures = failures or []
        super().__init__(message)


class AggregationError(RunError):
    """The aggregator could not decide and no fallback was possible."""


class BudgetExceeded(RunError):
    """A per-run cap (tokens, dollars, seconds) is spent; ``cap`` names which."""

    def __init__(self, cap: str, message: str) -> None:
        self.cap = cap
        super().__init__(message)
