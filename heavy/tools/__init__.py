"""The tool extension point: things a hypothesis may call while it works (an interpreter, a search).

A tool is a small class: a ``name``, a ``description`` the model reads, an ``Args`` pydantic model whose
JSON schema is the parameters the model fills in, and one ``async call(args) -> ToolResult``::

    from pydantic import BaseModel
    from heavy.tools import Tool, ToolResult

    class Clock(Tool):
        name = "clock"
        description = "The current UTC time."
        class Args(BaseModel):
            pass
        async def call(self, args):
            return ToolResult(content=datetime.now(timezone.utc).isoformat())

Tools register in the ``heavy.tools`` entry-point group, the built-ins (``python``, ``web_search``)
through heavy's own pyproject, exactly as a plugin would::

    [project.entry-points."heavy.tools"]
    clock = "my_package.tools:Clock"

Tools are opt-in: nothing is offered to a model unless asked (``heavy ask --tools python``,
``Heavy(tools=["python"])``). How a hypothesis uses them is :mod:`heavy.tools.agent`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib.metadata import EntryPoint
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError, describe_validation
from ..registry import load, registered
from ..types import ToolSpec

__all__ = ["Tool", "ToolResult", "ToolNotFound", "load_tool", "registered_tools", "make_tools", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "heavy.tools"


class ToolNotFound(ConfigError):
    """No tool of that name is registered in the ``heavy.tools`` entry-point group."""


class ToolResult(BaseModel):
    """What a tool returns: ``content`` is what the model reads; ``data`` keeps details for the trace."""

    model_config = ConfigDict(extra="forbid")

    content: str
    ok: bool = True
    data: dict[str, Any] = Field(default_factory=dict)


class Tool(ABC):
    """Base class of every tool. Subclasses set ``name``, ``description`` and ``Args``, and implement
    :meth:`call`. Configuration (limits, endpoints) goes to ``__init__`` as keyword arguments."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Args: ClassVar[type[BaseModel]]

    def spec(self) -> ToolSpec:
        """The tool as offered to a model: name, description and the JSON schema of ``Args``."""
        schema = self.Args.model_json_schema()
        schema.pop("title", None)
        for prop in (schema.get("properties") or {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)

    def parse(self, arguments: dict[str, Any]) -> BaseModel:
        """Validate a model's arguments; raises ValueError with a one-line reason the model can read."""
        try:
            return self.Args.model_validate(arguments)
        except ValidationError as exc:
            raise ValueError(f"invalid arguments for {self.name}: {describe_validation(exc)}") from None

    @abstractmethod
    async def call(self, args: Any) -> ToolResult:
        """Run the tool with validated *args* (an instance of ``Args``)."""

    async def aclose(self) -> None:
        """Release resources (connections). Safe to call twice."""


def registered_tools() -> dict[str, EntryPoint]:
    """Name → entry point of every installed tool (nothing is imported)."""
    return registered(ENTRY_POINT_GROUP)


def load_tool(name: str) -> type[Tool]:
    """Import and return the tool class registered as *name*."""
    return load(ENTRY_POINT_GROUP, name, Tool, ToolNotFound)


def make_tools(tools: Any, options: dict[str, dict[str, Any]] | None = None) -> list[Tool]:
    """Tool instances from names (``"python"``, ``"python,web_search"``), classes or instances; each
    named tool is built with ``options[name]`` as keyword arguments."""
    if tools is None:
        return []
    items = [tools] if isinstance(tools, (str, Tool)) or isinstance(tools, type) else list(tools)
    out: list[Tool] = []
    for item in items:
        if isinstance(item, str):
            for name in (n.strip() for n in item.split(",")):
                if name:
                    try:
                        out.append(load_tool(name)(**(options or {}).get(name, {})))
                    except TypeError as exc:
                        raise ConfigError(f"tool {name!r}: {exc}") from None
        elif isinstance(item, type) and issubclass(item, Tool):
            out.append(item())
        elif isinstance(item, Tool):
            out.append(item)
        else:
            raise ConfigError(f"not a tool: {item!r} (give a registered name, a Tool class or instance)")
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"tool(s) given twice: {', '.join(dupes)}")
    return out
