"""The ``python`` tool: run model-written code in heavy's sandbox (:mod:`heavy.tools.sandbox`).

The model gets what the program printed (stdout, then stderr; long output keeps its head and tail),
how it ended when it did not end normally (timeout, CPU or memory limit, exit code), and one line saying
what the sandbox isolated on this machine (``[sandbox: no network, own pid namespace, own uid]``).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import Tool, ToolResult
from .sandbox import SandboxLimits, SandboxResult, run_python

__all__ = ["PythonTool", "PythonArgs", "sandboxed"]

#: Sandboxes running at once per event loop (N hypotheses may all run code at the same moment).
MAX_CONCURRENT = max(2, (os.cpu_count() or 2) * 2)
_gates: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


async def sandboxed(code: str, *, limits: SandboxLimits | None = None, files: dict[str, str] | None = None,
                    namespaces: bool = True, channel: bool = False) -> SandboxResult:
    """:func:`run_python`, at most :data:`MAX_CONCURRENT` at a time on this event loop."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(MAX_CONCURRENT)
    async with gate:
        return await run_python(code, limits=limits, files=files, namespaces=namespaces, channel=channel)


class PythonArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="A complete Python 3 program. Use print() for everything you want to see.")


class PythonTool(Tool):
    name = "python"
    description = ("Run a Python 3 program in a sandbox and get back what it printed (stdout and stderr). "
                   "Each call is a fresh process: no network, no state kept between calls, limited time "
                   "and memory. Use it for exact arithmetic and to check your reasoning.")
    Args = PythonArgs

    def __init__(self, limits: SandboxLimits | dict[str, Any] | None = None, *, namespaces: bool = True,
                 excerpt_chars: int = 4000) -> None:
        self.limits = limits if isinstance(limits, SandboxLimits) else SandboxLimits.model_validate(limits or {})
        self.namespaces = namespaces
        self.excerpt_chars = excerpt_chars

    async def run(self, code: str) -> SandboxResult:
        return await sandboxed(code, limits=self.limits, namespaces=self.namespaces)

    async def call(self, args: PythonArgs) -> ToolResult:
        r = await self.run(args.code)
        content = f"{r.describe(self.excerpt_chars)}\n[sandbox: {r.isolation.summary()}]"
        return ToolResult(content=content, ok=r.ok, data={
            "exit_code": r.exit_code, "stopped": r.stopped, "duration_s": r.duration_s,
            "isolation": r.isolation.model_dump(),
        })
