"""From what a remote caller asked to the run's settings: the rules ``heavy serve`` and ``heavy mcp`` both apply.

A caller (a proxy request, an MCP ``ask`` call) may name a strategy and its options, models and an aggregator,
n, budget caps and some run options. The operator decides the bounds: the defaults (the server's run options),
``--max-n``, the ceilings of client-set values and code execution (:class:`~heavy.remote.policy.OptionPolicy`),
the models a caller may name (:class:`~heavy.remote.policy.ModelPolicy`). :meth:`RunPlanner.settings` checks
what was asked and lays it over the defaults as one :class:`~heavy.settings.RunSettings` (n, the strategy and its
options included: one home for each), which the server's one :class:`~heavy.session.Session` runs. Every refusal
is an :class:`~heavy.remote.errors.APIError` naming the caller's field (``param``) and, where the operator could
allow it, the flag that would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, MissingKeyError, ModelSpecError, OptionsError
from ..models import parse_spec
from ..settings import RunSettings
from .errors import APIError, excerpt, shorten
from .policy import ModelPolicy, OptionPolicy, find_strategy, unknown_strategy

__all__ = ["Asked", "RunPlanner"]

#: Run options a caller may tighten, never loosen (an MCP call's ``budget``).
BUDGETS = ("max_total_tokens", "max_cost_usd", "deadline")


@dataclass
class Asked:
    """What one remote call asked for (``None``: not given, the server's default). ``fields`` are other run options
    by name (``temperature``...); ``params`` name where each was given, for errors (the proxy's ``heavy.models``,
    MCP's ``models``...)."""

    strategy: str | None = None
    options: dict[str, Any] | None = None
    models: list[str] | None = None
    aggregator: str | None = None
    n: int | None = None
    budget: dict[str, float] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str:
        return self.params.get(name, name)


class RunPlanner:
    """The operator's rules over remote calls (see the module docstring); ``command`` names the server in hints."""

    def __init__(self, defaults: RunSettings, *, max_n: int, option_limits: dict[str, float] | None = None,
                 allow_models: Any = (), command: str = "heavy serve", options_param: str = "heavy.options") -> None:
        self.defaults = defaults
        self.max_n = max_n
        self.command = command
        #: what a call may set (code execution, operator-only options, ceilings): see heavy.remote.policy
        self.policy = OptionPolicy(defaults.tools, option_limits, command=command, options_param=options_param)
        self.models = ModelPolicy(defaults, allow_models or (), command=command, options_param=options_param)

    @staticmethod
    def check_spec(spec: str, param: str, status: int = 400) -> None:
        """*status* for a model spec naming no known provider (a known provider without a key here is left to the
        run, which says which variable the operator sets)."""
        try:
            parse_spec(spec)
        except MissingKeyError:
            pass
        except ModelSpecError as exc:
            what = f"the model {excerpt(spec)} does not exist here" if status == 404 else param
            raise APIError(status, f"{what}: {shorten(exc.message, spec.strip())}",
                           "model_not_found" if status == 404 else "invalid_value", param=param) from None

    def strategy(self, name: str, param: str) -> type:
        """The strategy class *name* a caller may use (400 when unknown, 403 when it runs code here without the
        operator's opt-in)."""
        cls = find_strategy(name)
        if cls is None:
            raise APIError(400, unknown_strategy(name), "invalid_value", param=param)
        self.policy.check_strategy(name, cls, param)
        return cls

    def settings(self, asked: Asked) -> RunSettings:
        """The run's settings: the defaults with what *asked* says laid over, after every check."""
        d = self.defaults
        n = asked.n if asked.n is not None else d.n
        if n > self.max_n:
            raise APIError(400, f"n={n} is more hypotheses than this server allows ({self.max_n}); its operator can "
                           f"raise it with `{self.command} --max-n {n}`", "invalid_value", param=asked.param("n"))
        strategy = asked.strategy or d.strategy
        cls = self.strategy(strategy, asked.param("strategy"))
        # The operator's options go with the default strategy; a call naming options (or another strategy) brings
        # its own, each checked against the operator's rules.
        own = asked.options is not None or strategy != d.strategy
        options = (asked.options or {}) if own else dict(d.options)
        if own:
            self.policy.check_options(strategy, cls, options)
        try:
            parsed = cls.parse_options(options)
        except ConfigError as exc:
            raise APIError(400, exc.message, "invalid_value", param=asked.param("options")) from None
        if own:
            self.policy.check_values(strategy, options, parsed)
            self.models.check_options(cls, {k: getattr(parsed, k, options[k]) for k in options})
        for spec in asked.models or ():
            self.check_spec(spec, asked.param("models"))
        self.models.check(asked.models or (), asked.param("models"))
        if asked.aggregator is not None:
            self.check_spec(asked.aggregator, asked.param("aggregator"))
            self.models.check(asked.aggregator, asked.param("aggregator"))
        changes: dict[str, Any] = {"n": n, "strategy": strategy, "options": options}
        if asked.models is not None:
            changes["model"] = asked.models
            if d.aggregator_model:  # models chosen per call also judge their own candidates
                changes["aggregator_model"] = None
        if asked.aggregator is not None:
            changes["aggregator_model"] = asked.aggregator
        for name, value in asked.budget.items():
            cap = getattr(d, name)
            if cap is not None and value > cap:
                raise APIError(400, f"{asked.param('budget')}.{name}={value:g} is above this server's cap of {cap:g}; a "
                               "call may tighten the operator's budget, not loosen it", "invalid_value",
                               param=f"{asked.param('budget')}.{name}")
            changes[name] = value
        for name, value in asked.fields.items():
            if value is not None:
                self.policy.check_run_option(name, value, asked.param(name))
                changes[name] = value
        try:
            return d.merged(**changes)
        except OptionsError as exc:
            raise APIError(400, exc.message, "invalid_value", param=asked.param("heavy")) from None
