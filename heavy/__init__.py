"""heavy: Heavy-style parallel test-time compute for any LLM API.

Sample N hypotheses in parallel, then let a strategy (vote, judge, synthesize, …) decide one answer::

    import heavy
    result = heavy.ask("What is 17 * 23?", model="sim", n=8)
    print(result.answer)

A strategy of your own subclasses :class:`Strategy` and decides with its :class:`Context`'s toolkit
(:mod:`heavy.strategy`; docs/architecture.md walks through one).

Names are imported lazily so that ``import heavy`` (and ``heavy --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_LAZY = {
    "Heavy": "heavy.api",
    "Session": "heavy.session",
    "ask": "heavy.api",
    "aask": "heavy.api",
    "Result": "heavy.types",
    "Hypothesis": "heavy.types",
    "Message": "heavy.types",
    "SamplingParams": "heavy.types",
    "Usage": "heavy.types",
    "Decision": "heavy.types",
    "AggregatorCall": "heavy.types",
    "Strategy": "heavy.strategy",
    "Context": "heavy.strategy",
    "AGGREGATOR_FAILURES": "heavy.strategy",
    "Provider": "heavy.providers.base",
    "HeavyError": "heavy.errors",
    "ConfigError": "heavy.errors",
    "ProviderError": "heavy.errors",
}

__all__ = [*_LAZY, "__version__"]

if TYPE_CHECKING:
    from .api import Heavy, aask, ask
    from .session import Session
    from .errors import ConfigError, HeavyError, ProviderError
    from .providers.base import Provider
    from .strategy import AGGREGATOR_FAILURES, Context, Strategy
    from .types import AggregatorCall, Decision, Hypothesis, Message, Result, SamplingParams, Usage


def __getattr__(name: str) -> Any:
    if name == "__version__":  # the installed distribution's, read once when first asked for
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("heavy")
        except PackageNotFoundError:  # run from a source tree that was never installed
            value = "0+unknown"
        globals()[name] = value
        return value
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'heavy' has no attribute {name!r}")
