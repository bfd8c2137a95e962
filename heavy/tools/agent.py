"""Hypotheses as agents: the model may run tools while it answers, up to a step limit.

Two protocols, chosen per model (``protocol``: ``native``, ``text`` or ``auto``):

* **native**: the tools are offered in the request (OpenAI ``tools``, Anthropic ``tools``, Gemini
  ``functionDeclarations``); when the answer calls tools, heavy runs them, appends the assistant turn
  with its calls and one ``tool`` message per result, and asks again. The loop ends with an answer that
  calls no tool. Once ``max_steps`` tools have run, further calls get "step limit reached" as their
  result and the model is asked once more to answer.
* **text** (for models that cannot call tools natively, e.g. small local models; ``python`` only): a
  system instruction (:data:`TEXT_PROTOCOL_INSTRUCTION`) tells the model that fenced ````` ```python `````
  blocks are run. After each reply that contains Python code not run before, the blocks are run (in
  order, as one program), any output the model wrote itself after its code is cut, and the real output
  comes back as a user message ``Output:`` followed by a fenced block; then the model continues. A reply
  with no new code is the answer (so is the last reply at the step limit).
* **auto**: ``text`` for local OpenAI-compatible servers (presets ``local``, ``llamacpp``, ``ollama``,
  ``vllm``, ``lmstudio``) when the python tool is on, ``native`` everywhere else.

Every tool run is a :class:`~heavy.events.ToolCallStarted` / :class:`~heavy.events.ToolCallFinished` event
and a :class:`~heavy.types.ToolStep` of the hypothesis (tool, arguments, result excerpt, seconds). The
hypothesis's text is the final answer; its usage is the sum of every call of the loop.

The caller's own tools (``client``: names of tools the sampler offers beside these, see
:class:`heavy.types.ClientTools`) are never run here: a reply that calls one ends the loop, and its calls
of the caller's tools are the hypothesis's answer (calls of heavy's tools in that same reply are dropped).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError
from ..events import EventSink, ToolCallFinished, ToolCallStarted
from ..providers.base import Completion
from ..types import Message, ToolCall, ToolStep, Usage
from . import Tool, ToolResult

__all__ = ["AgentConfig", "TEXT_PROTOCOL_INSTRUCTION", "TEXT_PROTOCOL_PRESETS", "python_blocks", "Caller",
           "with_instruction", "run_tool", "EXCERPT_CHARS"]

Protocol = Literal["native", "text", "auto"]
#: Presets served by local OpenAI-compatible servers, whose models often cannot call tools natively.
TEXT_PROTOCOL_PRESETS = frozenset({"local", "llamacpp", "ollama", "vllm", "lmstudio"})
#: How much of a tool result is kept in the hypothesis's trace (the model sees the whole result).
EXCERPT_CHARS = 1000

TEXT_PROTOCOL_INSTRUCTION = (
    "You can run Python code. Write it in a fenced block that starts with ```python and ends with ```. "
    "After your message, the code is executed and its output is sent back to you in a message that "
    "starts with \"Output:\"; then continue. Every program starts fresh, so print() everything you need. "
    "Use it for exact arithmetic. When you are done, state the final answer and do not write more code."
)

_PYTHON_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_FAKE_OUTPUT = re.compile(r"(?im)^[ \t]*(?:\**output\**:|```[ \t]*output\b)")

#: The one model call an agent loop needs: (messages, tools offered or None) -> the completion.
Caller = Callable[[list[Message], "list[ToolSpec] | None"], Awaitable[Completion]]


def python_blocks(text: str) -> list[str]:
    """The code of every closed ```python block of *text*, in order."""
    return [m.group(1).strip("\n") for m in _PYTHON_BLOCK.finditer(text or "") if m.group(1).strip()]


def _cut_invented_output(text: str) -> str:
    """*text* up to any output the model wrote itself after its last code block (it gets the real one)."""
    last = None
    for last in _PYTHON_BLOCK.finditer(text):
        pass
    if last is None:
        return text
    fake = _FAKE_OUTPUT.search(text, last.end())
    return text[: fake.start()].rstrip() if fake else text


def with_instruction(messages: Sequence[Message], instruction: str) -> list[Message]:
    """*messages* with *instruction* appended to the system message (or a new one put first)."""
    out = list(messages)
    for i, m in enumerate(out):
        if m.role == "system" and isinstance(m.content, str):
            out[i] = m.model_copy(update={"content": f"{m.content}\n\n{instruction}"})
            return out
    return [Message(role="system", content=instruction), *out]


async def run_tool(tool: Tool | None, call: ToolCall, *, index: int, step: int, emit: EventSink,
                   protocol: str, available: Sequence[str] = ()) -> tuple[ToolResult, ToolStep]:
    """Run one tool call (never raises for the tool's own failures): events, result, and its trace step."""
    emit(ToolCallStarted(index=index, step=step, tool=call.name, arguments=call.arguments))
    started = time.monotonic()
    if tool is None:
        result = ToolResult(content=f"unknown tool {call.name!r}; available: {', '.join(available) or 'none'}",
                            ok=False)
    elif call.arguments_error:
        result = ToolResult(content=f"could not read the arguments: {call.arguments_error}", ok=False)
    else:
        try:
            result = await tool.call(tool.parse(call.arguments))
        except ValueError as exc:
            result = ToolResult(content=str(exc), ok=False)
        except Exception as exc:  # a tool bug is the model's tool result, not the run's failure
            result = ToolResult(content=f"the tool failed: {type(exc).__name__}: {exc}", ok=False)
    seconds = round(time.monotonic() - started, 3)
    excerpt = result.content if len(result.content) <= EXCERPT_CHARS else result.content[:EXCERPT_CHARS] + " …"
    emit(ToolCallFinished(index=index, step=step, tool=call.name, ok=result.ok, result=excerpt, seconds=seconds))
    details = {k: v for k, v in result.data.items() if k != "isolation"} or None
    trace = ToolStep(step=step, tool=call.name, arguments=call.arguments, result=excerpt, ok=result.ok,
                     seconds=seconds, protocol=protocol, details=details)
    return result, trace


@dataclass
class AgentConfig:
    """The tools hypotheses may use, how they are offered (``protocol``) and how many runs each may make."""

    tools: list[Tool]
    protocol: Protocol = "auto"
    max_steps: int = 4
    _by_name: dict[str, Tool] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.protocol not in ("native", "text", "auto"):
            raise ConfigError(f"tool protocol {self.protocol!r}: choose native, text or auto")
        if not 1 <= self.max_steps <= 64:
            raise ConfigError("max_steps must be between 1 and 64")
        if not self.tools:
            raise ConfigError("an agent needs at least one tool")
        self._by_name = {t.name: t for t in self.tools}
        if self.protocol == "text" and set(self._by_name) != {"python"}:
            raise ConfigError("the text tool protocol runs only the python tool; use --tool-protocol native "
                              "for " + ", ".join(sorted(set(self._by_name) - {"python"})))

    def protocol_for(self, label: str) -> str:
        """The protocol used for the model labelled *label* (``preset:model``)."""
        if self.protocol != "auto":
            return self.protocol
        preset = label.partition(":")[0]
        return "text" if preset in TEXT_PROTOCOL_PRESETS and set(self._by_name) == {"python"} else "native"

    async def run(self, label: str, messages: Sequence[Message], call: Caller, *, index: int,
                  emit: EventSink, client: Collection[str] = ()) -> tuple[Completion, list[ToolStep]]:
        """Answer *messages* as an agent; returns the final completion (usage summed) and the steps. A reply
        calling one of the *client* tools (the caller's, offered by *call* itself) ends the loop."""
        if self.protocol_for(label) == "text":
            final, steps = await self._text(messages, call, index=index, emit=emit, client=client)
        else:
            final, steps = await self._native(messages, call, index=index, emit=emit, client=client)
        calls = [tc for tc in final.tool_calls or [] if tc.name in client]
        return final.model_copy(update={"tool_calls": calls or None}), steps

    async def _native(self, messages: Sequence[Message], call: Caller, *, index: int,
                      emit: EventSink, client: Collection[str]) -> tuple[Completion, list[ToolStep]]:
        specs = [t.spec() for t in self.tools]
        history = list(messages)
        steps: list[ToolStep] = []
        usage, reasoning = Usage(), []
        told_to_stop = False
        for _ in range(self.max_steps + 2):  # every turn but the last runs a tool or hits the limit
            c = await call(history, specs)
            usage = usage + c.usage
            reasoning.append(c.reasoning or "")
            if not c.tool_calls or told_to_stop or any(tc.name in client for tc in c.tool_calls):
                break
            history.append(Message(role="assistant", content=c.text, tool_calls=c.tool_calls))
            for tc in c.tool_calls:
                if len(steps) >= self.max_steps:
                    told_to_stop = True
                    result_text = f"step limit reached ({self.max_steps} tool runs): answer now, without tools."
                    history.append(Message(role="tool", content=result_text, tool_call_id=tc.id, name=tc.name))
                    continue
                result, step = await run_tool(self._by_name.get(tc.name), tc, index=index, step=len(steps),
                                              emit=emit, protocol="native", available=list(self._by_name))
                steps.append(step)
                history.append(Message(role="tool", content=result.content, tool_call_id=tc.id, name=tc.name))
        final = c.model_copy(update={"usage": usage, "reasoning": "".join(reasoning) or None})
        return final, steps

    async def _text(self, messages: Sequence[Message], call: Caller, *, index: int,
                    emit: EventSink, client: Collection[str]) -> tuple[Completion, list[ToolStep]]:
        tool = self._by_name["python"]
        history = with_instruction(messages, TEXT_PROTOCOL_INSTRUCTION)
        steps: list[ToolStep] = []
        seen: set[str] = set()
        usage, reasoning = Usage(), []
        while True:
            c = await call(history, None)
            usage = usage + c.usage
            reasoning.append(c.reasoning or "")
            if any(tc.name in client for tc in c.tool_calls or []):
                break
            text = _cut_invented_output(c.text)
            code = "\n\n".join(python_blocks(text))
            if not code or code in seen or len(steps) >= self.max_steps:
                break
            seen.add(code)
            tc = ToolCall(id=f"text_{len(steps)}", name="python", arguments={"code": code})
            result, step = await run_tool(tool, tc, index=index, step=len(steps), emit=emit, protocol="text")
            steps.append(step)
            history += [Message(role="assistant", content=text),
                        Message(role="user", content=f"Output:\n```\n{result.content}\n```")]
        final = c.model_copy(update={"usage": usage, "reasoning": "".join(reasoning) or None})
        return final, steps
