"""How the simulated model uses tools and follows heavy's tool-related prompts (deterministic).

* **The caller's own tools** (any other name): :mod:`heavy.sim.clienttools`.
* **Native tool calls** (any wire): when ``python`` is offered and the question is arithmetic, it calls
  ``python`` with a program that prints the expression (``print(17 * 24 + 3)``); when only ``web_search``
  is offered and it cannot answer, it searches for the question. Once a tool result is in the
  conversation, it answers from it: "The program printed 411. … The answer is 411." (or it names the
  first search result), right whenever the tool was.
* **The text protocol** (:data:`heavy.tools.agent.TEXT_PROTOCOL_INSTRUCTION` in the system message): it
  writes a fenced ```python block instead of a call, then answers from the ``Output:`` message.
* **Checks** (:data:`heavy.tools.verify.VERIFY_INSTRUCTION`): a program printing the answer, computed from
  the question's expression (always right: Python does the arithmetic) or, for dataset questions, the
  gold answer with probability ``accuracy`` (else a plausible wrong one).
* **Program hypotheses** (:data:`heavy.tools.program.PROGRAM_INSTRUCTION` in the system message): the
  same kind of program as a check (right whenever Python does the arithmetic; for dataset questions the
  gold with probability ``accuracy``), drawn independently of the chains' answers.
* **Test writing** (:data:`heavy.tools.codecheck.TESTS_INSTRUCTION`): the code task's tests, each expected
  value corrupted with probability ``1 - judge_accuracy``.
"""

from __future__ import annotations

import random
import re

from ..answers import final_answer, parse_number
from ..tools.agent import TEXT_PROTOCOL_INSTRUCTION
from ..tools.codecheck import TESTS_INSTRUCTION, split_tests
from ..tools.program import PROGRAM_INSTRUCTION
from ..tools.verify import VERIFY_INSTRUCTION
from .clienttools import client_tool_reply
from .codetasks import corrupt_test, parse_code_gold
from .config import SimConfig
from .solver import GoldIndex, arithmetic_expression, format_number, format_like_gold, wrong_answer
from .wire import SimRequest
from .writer import CONFIDENT, NEUTRAL, UNSURE, Reply

__all__ = ["follow_tools"]

_OUTPUT = re.compile(r"^Output:\s*\n```\n?(.*?)```", re.DOTALL)


def follow_tools(request: SimRequest, config: SimConfig, index: GoldIndex, rng: random.Random) -> Reply | None:
    """The reply when the request involves tools or a tool-related prompt; ``None`` otherwise."""
    question = request.question()
    if VERIFY_INSTRUCTION in question:
        return _check_program(question.split("Question:\n", 1)[-1], config, index, rng)
    if TESTS_INSTRUCTION in question:
        return _tests(question.split("Task:\n", 1)[-1], config, index, rng)
    reply = client_tool_reply(request, config, rng)
    if reply is not None:
        return reply
    if request.messages and request.messages[-1][0] == "tool":
        return _from_tool_result(request, index)
    system = " ".join(text for role, text in request.messages if role == "system")
    if PROGRAM_INSTRUCTION in system:
        return _check_program(_original_question(request), config, index, rng)
    if TEXT_PROTOCOL_INSTRUCTION in system:
        return _text_protocol(request)
    if request.tools and request.tool_choice != "none":
        return _call_tool(request, index, rng)
    return None


def _original_question(request: SimRequest) -> str:
    """The user's question: the last user message that is not a tool's output."""
    users = [text for role, text in request.messages if role == "user" and not text.startswith("Output:")]
    return users[-1] if users else request.question()


def _printed(output: str) -> str | None:
    """The value a program printed (its stdout, before the sandbox's notes), normalized; ``None`` if none."""
    body = output.split("\n[sandbox:", 1)[0]
    if "[stopped:" in body or "Traceback" in body or "[exit code" in body:
        return None
    value = final_answer(body)
    return value if value is not None and parse_number(value) is not None else None


def _answer_from(value: str | None, how: str) -> Reply:
    if value is None:
        return Reply(f"The {how} did not give me a usable result, so I cannot state a final result.", NEUTRAL)
    return Reply(f"I used {how}; it printed {value}. That is the exact value of the expression.\n\n"
                 f"The answer is {value}.", CONFIDENT, "answer", None)


def _from_tool_result(request: SimRequest, index: GoldIndex) -> Reply:
    result = request.messages[-1][1]
    if "python" in request.tools and not result.lstrip().startswith("1. "):
        return _answer_from(_printed(result), "a Python program")
    first = re.search(r"^1\. (.+)$", result, re.MULTILINE)
    if first is None:
        return Reply("The search found nothing useful, so I cannot answer from it.", NEUTRAL)
    return Reply(f"According to the first search result, \"{first.group(1).strip()}\" answers the question.\n\n"
                 f"The answer is {first.group(1).strip()}.", NEUTRAL)


def _text_protocol(request: SimRequest) -> Reply | None:
    last = request.messages[-1][1] if request.messages else ""
    if request.messages and request.messages[-1][0] == "user" and last.startswith("Output:"):
        m = _OUTPUT.match(last)
        return _answer_from(_printed(m.group(1) if m else last), "a Python program")
    expression = arithmetic_expression(_original_question(request))
    if expression is None:
        return None
    return Reply(f"Let me compute this exactly with Python.\n\n```python\nprint({expression})\n```", CONFIDENT)


def _call_tool(request: SimRequest, index: GoldIndex, rng: random.Random) -> Reply | None:
    question = _original_question(request)
    call_id = f"call_{rng.getrandbits(48):012x}"
    expression = arithmetic_expression(question)
    if "python" in request.tools and expression is not None:
        return Reply("", CONFIDENT, tool_calls=({"id": call_id, "name": "python",
                                                 "arguments": {"code": f"print({expression})"}},))
    if "web_search" in request.tools and index.lookup(question) is None:
        return Reply("", NEUTRAL, tool_calls=({"id": call_id, "name": "web_search",
                                               "arguments": {"query": question.strip()[:200]}},))
    return None


def _check_program(question: str, config: SimConfig, index: GoldIndex, rng: random.Random) -> Reply:
    expression = arithmetic_expression(question)
    if expression is not None:
        return Reply(f"```python\nprint({expression})\n```", CONFIDENT)
    gold = index.lookup(question)
    if gold is None or parse_number(gold) is None:
        return Reply("I cannot write a program that computes this.", NEUTRAL)
    value = format_like_gold(gold) if rng.random() < config.accuracy else wrong_answer(gold, rng)
    numbers = ", ".join(format_number(parse_number(n)) for n in re.findall(r"\d+(?:\.\d+)?", question)[:4]
                        if parse_number(n) is not None)
    return Reply(f"```python\n# quantities from the question: {numbers}\nresult = {value}\nprint(result)\n```",
                 CONFIDENT)


def _tests(task: str, config: SimConfig, index: GoldIndex, rng: random.Random) -> Reply:
    code = parse_code_gold(index.lookup(task))
    if code is None:
        return Reply("I do not know what this function should do, so I cannot write tests for it.", NEUTRAL)
    try:
        setup, tests = split_tests(code[1])
    except SyntaxError:
        setup, tests = "", []
    lines = [t if rng.random() < config.judge_accuracy else corrupt_test(t, rng) for t in tests]
    body = "\n".join(([setup] if setup else []) + lines)
    return Reply(f"```python\n{body}\n```", CONFIDENT if lines else UNSURE)
