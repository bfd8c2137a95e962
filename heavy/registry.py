"""Entry-point registries: strategies (``heavy.strategies``) and tools (``heavy.tools``) are found and
loaded the same way, built-ins exactly like a third party's plugins. Listing imports nothing; loading
imports one class and checks that it subclasses the extension point's base class."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar

__all__ = ["registered", "load"]

T = TypeVar("T")


@lru_cache(maxsize=None)
def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def registered(group: str) -> dict[str, EntryPoint]:
    """Name → entry point of everything installed under *group*, sorted by name (nothing is imported)."""
    return dict(sorted(_entry_points(group).items()))


def load(group: str, name: str, base: type[T], not_found: type[Exception]) -> type[T]:
    """Import the class registered as *name* under *group*; *not_found* (naming what is registered) when
    there is none or it is not a *base* subclass."""
    eps = _entry_points(group)
    noun = base.__name__.lower()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none (is heavy installed? `pip install -e .`)"
        raise not_found(f"unknown {noun} {name!r}; registered: {known}")
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise not_found(f"entry point {name!r} ({eps[name].value}) is not a heavy {base.__name__} subclass")
    return cls
