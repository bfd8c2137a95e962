"""``--verify python``: check each numeric answer with a short program the model writes.

After a hypothesis states a numeric final answer, the same model is asked (:data:`VERIFY_INSTRUCTION`)
for a short Python program that computes the answer to the question independently and prints it. The
program runs in the sandbox; its last printed number is compared with the hypothesis's answer:

* **agrees**: the weight stays 1;
* **disagrees**: the hypothesis's vote weight drops to ``penalty`` (default 0.25), so a wrong answer
  that a program contradicts counts for less in every vote (``vote``, ``heavy``'s majority, fallbacks);
* **inconclusive** (no code, the program failed, printed no number, or the call failed): unchanged.

Each check is a :class:`~heavy.types.ToolStep` of the hypothesis (``protocol="verify"``, the program, its
output, the verdict and the weight), its cost is part of the hypothesis's usage, and the vote's
decision lists every check in ``details["verification"]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..answers import final_answer, parse_number
from ..equivalence import equivalent
from ..errors import HeavyError
from ..events import EventSink, ToolCallFinished, ToolCallStarted
from ..types import Hypothesis, Message, ToolStep
from .agent import EXCERPT_CHARS, Caller, python_blocks
from .python import PythonTool

__all__ = ["Verifier", "VERIFY_INSTRUCTION", "DEFAULT_PENALTY", "verification_details"]

DEFAULT_PENALTY = 0.25
VERIFY_INSTRUCTION = (
    "Write a short Python program that computes the answer to the question below independently, from the "
    "numbers the question gives, and prints only the final number. Reply with one ```python block."
)


def _question(messages: Sequence[Message]) -> str:
    users = [m.text() for m in messages if m.role == "user"]
    return users[-1] if users else (messages[-1].text() if messages else "")


@dataclass
class Verifier:
    tool: PythonTool
    penalty: float = DEFAULT_PENALTY

    async def check(self, h: Hypothesis, messages: Sequence[Message], call: Caller, *,
                    emit: EventSink) -> Hypothesis:
        """*h* with its check recorded (a step, the usage, and a lowered weight when the check disagrees)."""
        if not h.ok or h.answer is None or parse_number(h.answer) is None:
            return h
        step_no = len(h.steps or [])
        prompt = [Message(role="user", content=f"{VERIFY_INSTRUCTION}\n\nQuestion:\n{_question(messages)}")]
        emit(ToolCallStarted(index=h.index, step=step_no, tool="python", arguments={"verify": h.answer}))
        started = time.monotonic()
        usage, code, printed, ok, output = h.usage, "", None, False, ""
        try:
            c = await call(prompt, None)
            usage = usage + c.usage
            blocks = python_blocks(c.text)
            code = blocks[-1] if blocks else ""
            if code:
                r = await self.tool.run(code)
                ok, output = r.ok, r.describe(EXCERPT_CHARS)
                printed = final_answer(r.stdout) if r.ok else None
            else:
                output = "the model wrote no python block"
        except HeavyError as exc:
            output = f"the check could not be made: {type(exc).__name__}: {exc}"
        except OSError as exc:  # the sandbox could not start (e.g. no processes left): no verdict
            output = f"the check could not run: {exc}"
        if printed is None or parse_number(printed) is None:
            verdict, weight = "inconclusive", h.weight
        elif equivalent(printed, h.answer):
            verdict, weight = "agrees", h.weight
        else:
            verdict, weight = "disagrees", self.penalty * (h.weight if h.weight is not None else 1.0)
        seconds = round(time.monotonic() - started, 3)
        emit(ToolCallFinished(index=h.index, step=step_no, tool="python", ok=ok, result=f"{verdict}: {output}"[:EXCERPT_CHARS],
                              seconds=seconds))
        step = ToolStep(step=step_no, tool="python", arguments={"code": code}, result=output[:EXCERPT_CHARS], ok=ok,
                        seconds=seconds, protocol="verify",
                        details={"answer": h.answer, "printed": printed, "verdict": verdict,
                                 "weight": 1.0 if weight is None else weight})
        return h.model_copy(update={"steps": [*(h.steps or []), step], "usage": usage, "weight": weight})


def verification_details(hypotheses: Sequence[Hypothesis]) -> dict[str, dict] | None:
    """What the decision reports about checks: hypothesis index → answer, printed value, verdict, weight."""
    out = {}
    for h in hypotheses:
        for s in h.steps or []:
            if s.protocol == "verify" and s.details:
                out[str(h.index)] = {k: s.details.get(k) for k in ("answer", "printed", "verdict", "weight")}
    return out or None
