"""Program hypotheses (program-of-thought): the model writes Python, the sandbox runs it, the output answers.

A reasoning chain and an executed program reach an answer by independent routes; where they agree the
answer is far more often right than either alone (the ``crosscheck`` strategy builds on that). A
hypothesis sampled on the ``program`` route is asked (:data:`PROGRAM_INSTRUCTION`, added to the system
message) for one ```python block that prints the final answer; :meth:`ProgramRunner.execute` runs the
last block in heavy's sandbox and makes the last thing it printed the hypothesis's answer. The program
and its output stay in the hypothesis as a :class:`~heavy.types.ToolStep` (``protocol="program"``).

The same runner serves chain hypotheses that answer with a program instead of a number (a coder model
does this on word problems): when code may run, the program is run and what it printed becomes the
answer; the code text itself is never a vote: a reply cut off inside its program (an unclosed fence, the
token limit) is not run and gives no answer. Nothing here runs unless the user enabled the python tool.

Replayed hypotheses (``heavy eval --replay``) are executed again, so pools recorded before a fix in
extraction or in the sandbox are decided with today's code, and a pool never carries trusted results.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..answers import final_answer, is_code_answer
from ..events import EventSink, ToolCallFinished, ToolCallStarted
from ..types import PROGRAM_ROUTE, Hypothesis, Message, ToolStep
from .agent import EXCERPT_CHARS, python_blocks, with_instruction
from .python import PythonTool

__all__ = ["PROGRAM_ROUTE", "PROGRAM_INSTRUCTION", "ProgramRunner", "program_messages", "program_code",
           "program_step"]

PROGRAM_INSTRUCTION = (
    "Solve the problem by writing a Python program instead of reasoning in prose. Compute every quantity "
    "from the numbers the problem gives, in small named steps, and end with print() of the final answer "
    "alone (a number, without units). Reply with exactly one ```python block and nothing after it (this "
    "replaces any other instruction about how to state the final answer)."
)

# An unfenced reply that is plainly code (the model forgot the fence): a def/import/assignment/print line.
_CODE_LINE = re.compile(r"^\s*(?:def |import |from \w+ import |print\(|[A-Za-z_]\w*\s*=[^=])", re.MULTILINE)
_ANY_BLOCK = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


#: Repeated after the question: a small model follows the user's turn over a system prompt that asks for
#: prose ("step by step ... The answer is N"), and without it wrote prose on about a third of the program
#: hypotheses (tune questions).
PROGRAM_REMINDER = "Answer with a Python program that prints the final answer (one ```python block)."


def program_messages(messages: Sequence[Message]) -> list[Message]:
    """The prompt of a program hypothesis: *messages* with :data:`PROGRAM_INSTRUCTION` in the system
    message and :data:`PROGRAM_REMINDER` after the last user message."""
    out = with_instruction(messages, PROGRAM_INSTRUCTION)
    for i in range(len(out) - 1, -1, -1):
        if out[i].role == "user" and isinstance(out[i].content, str):
            out[i] = out[i].model_copy(update={"content": f"{out[i].content}\n\n{PROGRAM_REMINDER}"})
            break
    return out


def program_code(text: str) -> str | None:
    """The program of a reply: its last ```python block, else its last fenced block, else the reply
    itself when it is plainly unfenced code; ``None`` when it holds no program."""
    blocks = python_blocks(text)
    if blocks:
        return blocks[-1]
    fenced = [b.strip("\n") for b in _ANY_BLOCK.findall(text or "") if b.strip()]
    if fenced:
        return fenced[-1]
    if text and _CODE_LINE.search(text) and "print(" in text:
        try:
            compile(text, "<reply>", "exec")
        except (SyntaxError, ValueError):
            return None
        return text.strip("\n")
    return None


def program_step(h: Hypothesis) -> ToolStep | None:
    """The step recording *h*'s program run, if it has one: its answer came from executed code."""
    for s in h.steps or []:
        if s.protocol == "program":
            return s
    return None


@dataclass
class ProgramRunner:
    """Runs the program of a hypothesis in the sandbox and answers with what it printed."""

    tool: PythonTool

    async def execute(self, h: Hypothesis, *, emit: EventSink) -> Hypothesis:
        """*h* with its program run: ``answer`` = the last value printed (``None`` when the program fails
        or prints nothing), the run recorded as a ``program`` step. A reply without any program (the model
        reasoned in prose after all) keeps the answer its text states and counts as a reasoning chain; one
        that ends inside a program cut off before its closing fence is not run and has no answer."""
        if not h.ok:
            return h
        steps = [s for s in (h.steps or []) if s.protocol != "program"]  # a replayed run is made again
        code = program_code(h.text)
        if code is None and is_code_answer(h.answer):
            # The reply ends inside a fence the token limit cut off: a program that never ended is no answer, and
            # running what there is of it could print a half-computed value, so it gets no vote (its text used
            # to be its answer: a whole program counted as a vote).
            step = ToolStep(step=len(steps), tool="python", arguments={"code": ""}, ok=False, seconds=0.0,
                            result="not run: the reply ends inside an unclosed code block (cut off)",
                            protocol="program", details={"printed": None, "cut_off": True})
            return h.model_copy(update={"answer": None, "steps": [*steps, step]})
        if code is None:
            return h.model_copy(update={"steps": steps or None})
        step_no = len(steps)
        emit(ToolCallStarted(index=h.index, step=step_no, tool="python", arguments={"program": code[:200]}))
        started = time.monotonic()
        try:
            r = await self.tool.run(code)
            ok, output = r.ok, r.describe(EXCERPT_CHARS)
            printed = final_answer(r.stdout) if r.ok and r.stdout.strip() else None
        except OSError as exc:  # the sandbox could not start: no answer from this program
            ok, output, printed = False, f"the program could not run: {exc}", None
        seconds = round(time.monotonic() - started, 3)
        emit(ToolCallFinished(index=h.index, step=step_no, tool="python", ok=ok, result=output[:EXCERPT_CHARS],
                              seconds=seconds))
        step = ToolStep(step=step_no, tool="python", arguments={"code": code}, result=output[:EXCERPT_CHARS],
                        ok=ok, seconds=seconds, protocol="program", details={"printed": printed})
        return h.model_copy(update={"answer": printed, "steps": [*steps, step]})

