"""The run-option flags of ``heavy ask``, ``heavy eval`` and ``heavy serve``, generated from
:class:`heavy.settings.RunSettings`: each field that names a flag and a command becomes a click option
with the field's help text and default. Flags default to "not given" (``None``), so the config file and
the environment still apply underneath them (:func:`heavy.config.run_settings`).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import click

from ..settings import RunSettings, fields_where, surface

__all__ = ["operator_flags", "run_flags"]


def run_flags(command: str) -> Callable[[Any], Any]:
    """Decorate a click command with the flags of the run options that *command* shows, in declaration order."""

    def decorate(fn: Any) -> Any:
        for name in reversed(fields_where(command=command)):
            fn = _option(name)(fn)
        return fn

    return decorate


def operator_flags(caller: str) -> Callable[[Any], Any]:
    """The operator's bounds on what a remote *caller* ("request", "call") may set, shared by the server
    shells (`heavy serve`, `heavy mcp`): the clients' bearer key, the ceiling of n, option ceilings, logging."""
    from .. import constants as C
    from ..settings import ceiling

    limits = ", ".join(f"{k}={v}" for k, v in C.SERVE_OPTION_LIMITS.items())
    flags = [
        click.option("--api-key", default=None, envvar="HEAVY_SERVER_KEY", show_envvar=True,
                     help="Bearer token clients must send (not an upstream key)."),
        click.option("--max-n", type=click.IntRange(min=1), default=ceiling("n"), show_default=True,
                     help=f"Most hypotheses one {caller} may ask for (the ceiling of its n)."),
        click.option("--option-limit", "option_limits", multiple=True, metavar="NAME=MAX",
                     help=f"Ceiling of a numeric value a {caller} may set: a strategy option NAME (STRATEGY.NAME "
                          f"for one strategy, * for every option without its own) or max_tokens; repeatable. "
                          f"Defaults: {limits}, any other {C.SERVE_DEFAULT_OPTION_LIMIT}."),
        click.option("--log-level", default="info", show_default=True,
                     type=click.Choice(["critical", "error", "warning", "info", "debug"]),
                     help=f"What goes to stderr (info: one line per {caller})."),
    ]

    def decorate(fn: Any) -> Any:
        for flag in reversed(flags):
            fn = flag(fn)
        return fn

    return decorate


def _option(name: str) -> Any:
    where, info = surface(name), RunSettings.model_fields[name]
    default = info.get_default(call_default_factory=True)
    help_text = info.description or ""
    if default not in (None, [], {}, False) and "[default" not in help_text:
        help_text += f" [default: {default}]"
    if info.annotation is bool:  # an on/off option is a flag (None when not given: the lower layers decide)
        return click.option(*where["flags"], name, is_flag=True, default=None, help=help_text)
    return click.option(*where["flags"], name, type=_click_type(info.annotation), default=None,
                        multiple=where["multiple"], metavar=where["metavar"], help=help_text)


def _click_type(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] \
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union else [annotation]
    first = args[0] if args else str
    if typing.get_origin(first) is Literal:
        return click.Choice([str(a) for a in typing.get_args(first)])
    return first if first in (int, float) else str
