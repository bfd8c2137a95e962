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

__all__ = ["run_flags"]


def run_flags(command: str) -> Callable[[Any], Any]:
    """Decorate a click command with the flags of the run options that *command* shows, in declaration order."""

    def decorate(fn: Any) -> Any:
        for name in reversed(fields_where(command=command)):
            fn = _option(name)(fn)
        return fn

    return decorate


def _option(name: str) -> Any:
    where, info = surface(name), RunSettings.model_fields[name]
    default = info.get_default(call_default_factory=True)
    help_text = info.description or ""
    if default not in (None, [], {}, False) and "[default" not in help_text:
        help_text += f" [default: {default}]"
    return click.option(*where["flags"], name, type=_click_type(info.annotation), default=None,
                        multiple=where["multiple"], metavar=where["metavar"], help=help_text)


def _click_type(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] \
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union else [annotation]
    first = args[0] if args else str
    if typing.get_origin(first) is Literal:
        return click.Choice([str(a) for a in typing.get_args(first)])
    return first if first in (int, float) else str
