"""How the simulated model uses a caller's own tools (any tool but heavy's ``python`` and ``web_search``),
deterministically from the question and the conversation, in every wire format.

* **Which tools**: a tool is needed when a word of its name (split at ``_``, ``-`` and camelCase, generic
  verbs such as get/fetch/convert left out) is a word of the user's question: "What is the weather in
  Paris?" needs ``get_weather``; "… in Fahrenheit?" needs ``celsius_to_fahrenheit`` too.
* **When**: a needed tool not called yet is called as soon as its required arguments can be filled:
  strings from the question (a place after in/at/for/near/from for city-like names, a matching enum value,
  else the question itself), numbers from the latest tool result that has one (else the question), so a
  conversion waits for the lookup it converts. Tools ready at the same time are called together, unless
  ``parallel_tool_calls`` is off. Each hypothesis writes its arguments its own way (key order, ``18`` or
  ``18.0``), as real samples differ, and with probability ``1 - accuracy`` answers a guess instead of calling.
* **After the results**: once every needed tool has been called, it answers from the last result
  ("The answer is 64.4."), right whenever the tools were.
* ``tool_choice``: ``none`` never calls, ``required`` always calls (a needed tool, else the first offered),
  a named tool is the one called.
* The aggregator's pick on an undecided tool vote (:data:`heavy.toolvote.TOOL_VOTE_INSTRUCTION`): the call
  whose argument values appear most in the question (ties: the first), else the first candidate.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from fractions import Fraction

from ..answers import format_number
from ..prompts import parse_candidates
from ..toolvote import read_candidates
from .config import SimConfig
from .wire import SimRequest
from .writer import CONFIDENT, NEUTRAL, UNSURE, Reply

__all__ = ["client_tool_reply", "tool_vote_reply", "HEAVY_TOOLS"]

#: heavy's own tools, which :mod:`heavy.sim.tooluse` follows.
HEAVY_TOOLS = frozenset({"python", "web_search"})
_GENERIC = frozenset({"get", "fetch", "lookup", "look", "up", "find", "search", "query", "call", "run", "do", "make",
                      "to", "from", "of", "the", "a", "an", "by", "for", "and", "in", "current", "check", "list",
                      "create", "set", "compute", "calculate", "convert", "info", "data", "tool", "api"})
_PLACE_NAMES = frozenset({"city", "location", "place", "town", "country", "region", "where", "address", "destination"})
_TEXT_NAMES = frozenset({"query", "q", "question", "text", "prompt", "input", "search", "topic"})
_PLACE = re.compile(r"\b(?:in|at|for|near|from)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_MISSING = object()


def _num(x: float) -> str:
    return format_number(Fraction(repr(float(x))))


def _words(text: str) -> set[str]:
    return {w.rstrip("s") or w for w in re.findall(r"[a-z0-9]+", text.lower())}


def keywords(name: str) -> set[str]:
    """The words of a tool's name that say what it is about (``get_weather``: weather)."""
    parts = re.split(r"[_\-\s.]+|(?<=[a-z0-9])(?=[A-Z])", name)
    return {p.lower().rstrip("s") or p.lower() for p in parts if p and p.lower() not in _GENERIC}


def _question(request: SimRequest) -> str:
    users = [text for role, text in request.messages if role == "user"]
    return users[-1] if users else request.question()


def _results(request: SimRequest) -> list[str]:
    return [text for role, text in request.messages if role == "tool"]


def _numbers(text: str) -> list[float]:
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    found: list[float] = []

    def walk(value: Any) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            found.append(float(value))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    if isinstance(data, (dict, list, int, float)):
        walk(data)
        return found
    return [float(n) for n in _NUMBER.findall(text)]


def _place(question: str) -> str | None:
    m = _PLACE.search(question)
    if m:
        return m.group(1)
    for sentence in re.split(r"[.?!]\s+", question):
        names = re.findall(r"(?<=\s)[A-Z][\w'-]+", sentence)
        if names:
            return names[0]
    return None


def _fill(name: str, schema: dict, question: str, results: list[str], required: bool) -> Any:
    kind = str(schema.get("type") or "string").lower()
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        words = _words(question)
        hit = next((e for e in enum if str(e).lower().rstrip("s") in words), None)
        return hit if hit is not None else (enum[0] if required else _MISSING)
    if kind in ("number", "integer"):
        for text in [*reversed(results), question]:
            numbers = _numbers(text)
            if numbers:
                return int(round(numbers[0])) if kind == "integer" else numbers[0]
        return _MISSING
    if kind == "string":
        lowered = name.lower()
        place = _place(question)
        if lowered in _PLACE_NAMES or any(lowered.endswith(p) for p in _PLACE_NAMES):
            return place if place else (question.strip() if required else _MISSING)
        if not required:
            return _MISSING
        return question.strip() if lowered in _TEXT_NAMES or place is None else place
    if not required:
        return _MISSING
    return {"boolean": False, "array": [], "object": {}}.get(kind, "")


def arguments(spec: dict, question: str, results: list[str]) -> dict | None:
    """The arguments the simulator would call a tool with (``None``: a required one cannot be filled yet)."""
    params = spec.get("parameters") or {}
    props = params.get("properties") if isinstance(params.get("properties"), dict) else {}
    required = set(params.get("required") or [])
    out: dict[str, Any] = {}
    for name, schema in props.items():
        value = _fill(name, schema if isinstance(schema, dict) else {}, question, results, name in required)
        if value is _MISSING:
            if name in required:
                return None
            continue
        out[name] = value
    return out


def _written(args: dict, rng: random.Random) -> dict:
    """*args* as one sample writes them: keys in its own order, a whole number as ``18`` or ``18.0``."""
    keys = list(args)
    rng.shuffle(keys)

    def spelled(value: Any) -> Any:
        whole = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
        return (float(value) if rng.random() < 0.5 else int(value)) if whole else value

    return {k: spelled(args[k]) for k in keys}


def client_tool_reply(request: SimRequest, config: SimConfig, rng: random.Random) -> Reply | None:
    """The reply when the request offers tools of the caller's; ``None`` when none of them is involved."""
    client = [n for n in request.tools if n not in HEAVY_TOOLS]
    if not client:
        return None
    question, results = _question(request), _results(request)
    called = [n for n in request.called if n in client]
    if request.tool_choice == "none":
        return _from_results(called, results) if called and results else None
    forced = request.tool_choice == "required"
    words = _words(question)
    needed = [request.tool_choice_name] if request.tool_choice_name in client else \
        [n for n in client if keywords(n) & words]
    ready = [(n, args) for n in needed if n not in called
             for args in [arguments(request.tool_specs.get(n, {}), question, results)] if args is not None]
    if not ready and forced:
        first = (needed or client)[0]
        ready = [(first, arguments(request.tool_specs.get(first, {}), question, results) or {})]
    if ready:
        if not forced and rng.random() >= config.accuracy:
            return _guess(question, results)
        if not request.parallel_tool_calls:
            ready = ready[:1]
        return Reply("", CONFIDENT, tool_calls=tuple({"id": f"call_{rng.getrandbits(48):012x}", "name": n,
                                                      "arguments": _written(args, rng)} for n, args in ready))
    if called and results:
        return _from_results(called, results)
    return None


def _value(result: str) -> str:
    numbers = _numbers(result)
    if numbers:
        return _num(numbers[0])
    text = " ".join(result.split())
    return text[:200] or "unknown"


def _from_results(called: list[str], results: list[str]) -> Reply:
    last = " ".join(results[-1].split())
    names = ", ".join(dict.fromkeys(called))
    return Reply(f"I called {names}; the last result was: {last[:300]}\n\nThe answer is {_value(results[-1])}.",
                 CONFIDENT, "answer", None)


def _guess(question: str, results: list[str]) -> Reply:
    """An answer without the tool it needed: a plausible number, or a refusal when there is none to guess."""
    numbers = [n for text in [*results, question] for n in _numbers(text)]
    if not numbers:
        return Reply("I would need a tool for that, and I will not call one, so I cannot say.", UNSURE)
    return Reply("I will answer from what I have, without calling a tool.\n\nThe answer is "
                 f"{_num(numbers[-1])}.", UNSURE, "answer", False)


def tool_vote_reply(prompt: str) -> Reply:
    """The pick on an undecided tool vote: the call whose argument values appear most in the question."""
    question = parse_candidates(prompt)[0].lower()
    candidates = read_candidates(prompt)
    if not candidates:
        return Reply("I could not find any candidates to compare in the prompt.", NEUTRAL, "judge")

    def score(calls: list[tuple[str, dict]] | None) -> int:
        values = [v for _, args in calls or [] for v in args.values() if isinstance(v, (str, int, float))]
        return sum(1 for v in values if (_num(v) if isinstance(v, (int, float)) else str(v)).lower() in question)

    calls = [(label, score(c)) for label, _, c in candidates if c is not None]
    label = max(calls, key=lambda lc: lc[1])[0] if calls else candidates[0][0]
    return Reply(f"Candidate {label} is the step that fits the conversation best.\n\nVERDICT: {label}", CONFIDENT,
                 "judge")
