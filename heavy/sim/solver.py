"""What the simulated model "knows": gold answers and plausible wrong answers.

The gold answer of a question comes from the configured dataset or, failing that, from a simple
arithmetic expression in the question, evaluated exactly (``fractions.Fraction``) and safely (an
``ast`` walk over a whitelist of nodes, never ``eval``). Wrong answers imitate real slips (off by a
few, doubled, halved, a mistyped or swapped digit) and are spread over many values so that, as with
real models, independent wrong samples rarely agree: that is what makes majority voting work.
"""

from __future__ import annotations

import ast
import random
import re
from fractions import Fraction

from ..answers import format_number, normalize_answer, parse_number

__all__ = ["GoldIndex", "solve_arithmetic", "arithmetic_expression", "format_number", "wrong_answer", "format_like_gold"]

# A dataset question must be at least this long to be recognised inside a longer prompt (a template
# around it); shorter ones would match by accident.
_MIN_EMBEDDED_QUESTION = 20
# Prompts longer than this skip the embedded-question scan (cost grows with prompt x dataset size).
_MAX_SCAN_PROMPT = 20_000
# A question with more words than this outside its expression is a word problem, not "what is 2+3?":
# guessing its arithmetic from stray numbers would invent wrong gold answers.
_MAX_WORDS_AROUND_EXPRESSION = 15
# Guards against expressions whose exact value is astronomically large.
_MAX_EXPONENT = 64
_MAX_DIGITS = 400


def _squash(text: str) -> str:
    return " ".join(text.split())


class GoldIndex:
    """Looks up the gold answer of a question: dataset first, then arithmetic."""

    def __init__(self, dataset: dict[str, str]) -> None:
        self._exact = dataset
        self._squashed = {_squash(q): a for q, a in dataset.items()}
        # Longest first, so the most specific embedded question wins.
        self._embeddable = sorted(
            ((q, a) for q, a in self._squashed.items() if len(q) >= _MIN_EMBEDDED_QUESTION),
            key=lambda qa: -len(qa[0]),
        )

    def lookup(self, question: str) -> str | None:
        """The gold answer of *question*, or ``None`` if the simulator cannot know it."""
        if question in self._exact:
            return self._exact[question]
        squashed = _squash(question)
        if squashed in self._squashed:
            return self._squashed[squashed]
        if len(squashed) <= _MAX_SCAN_PROMPT:
            for known, answer in self._embeddable:
                if known in squashed:
                    return answer
        value = solve_arithmetic(question)
        return None if value is None else format_number(value)


# --- arithmetic ----------------------------------------------------------------------------------

_WORD_OPERATORS = [
    (re.compile(r"(?i)\bmultiplied\s+by\b"), " * "),
    (re.compile(r"(?i)\btimes\b"), " * "),
    (re.compile(r"(?i)\bdivided\s+by\b"), " / "),
    (re.compile(r"(?i)\bplus\b"), " + "),
    (re.compile(r"(?i)\bminus\b"), " - "),
    (re.compile(r"(?i)\bto\s+the\s+power\s+of\b"), " ** "),
    (re.compile(r"(?i)\bmod(?:ulo)?\b"), " % "),
    (re.compile(r"(?<=\d)\s*[xX]\s*(?=[\d(])"), " * "),  # "3 x 4"
    (re.compile(r"(?<=\d),(?=\d{3}(?!\d))"), ""),  # thousands separators: "1,234"
]
_SYMBOLS = str.maketrans({"×": "*", "·": "*", "⋅": "*", "∗": "*", "÷": "/", "−": "-", "–": "-", "^": "#"})
_SPAN = re.compile(r"[\d.()+\-*/%#\s]+")
_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Mod: lambda a, b: a % b,
}


def _eval(node: ast.AST) -> Fraction:
    """Exact value of a whitelisted expression tree; raises ValueError on anything else."""
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        # str() first so 0.1 is one tenth, not the binary float nearest to it.
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if right.denominator != 1 or abs(right) > _MAX_EXPONENT:
                raise ValueError("exponent too large or not an integer")
            result = left**right.numerator
        elif type(node.op) in _BINOPS:
            if isinstance(node.op, (ast.Div, ast.Mod)) and right == 0:
                raise ValueError("division by zero")
            result = _BINOPS[type(node.op)](left, right)
        else:
            raise ValueError("operator not allowed")
        if len(str(result.numerator)) > _MAX_DIGITS or len(str(result.denominator)) > _MAX_DIGITS:
            raise ValueError("value too large")
        return result
    raise ValueError(f"{type(node).__name__} not allowed")


def _has_operator(node: ast.AST) -> bool:
    return any(isinstance(n, ast.BinOp) for n in ast.walk(node))


def _try_expression(span: str) -> tuple[Fraction, str] | None:
    """Evaluate *span* after trimming sentence punctuation and dangling operators/parentheses."""
    text = span.strip().rstrip(".").strip()
    for _ in range(4):  # peel a few layers of unbalanced punctuation, then give up
        if not text:
            return None
        try:
            tree = ast.parse(text.replace("#", "**"), mode="eval")
        except SyntaxError:
            if text.count("(") > text.count(")"):
                text = text[text.index("(") + 1 :].strip()
            elif text.count(")") > text.count("("):
                text = text[: text.rindex(")")].strip()
            else:
                text = text.strip("+-*/%#. ")
            continue
        if not _has_operator(tree):
            return None
        try:
            return _eval(tree), text
        except (ValueError, ZeroDivisionError, OverflowError):
            return None
    return None


def solve_arithmetic(question: str) -> Fraction | None:
    """Value of the arithmetic expression in a short question such as "What is 17 * 24 + 3?" or
    "12 plus 7 times 3" (operator precedence as in mathematics), else ``None``."""
    found = _expression(question)
    return found[0] if found else None


def arithmetic_expression(question: str) -> str | None:
    """The arithmetic expression of a short question as Python source (``17 * 24 + 3``), else ``None``:
    what the simulated model writes when it computes the answer with a program."""
    found = _expression(question)
    return " ".join(found[1].replace("#", "**").split()) if found else None


def _expression(question: str) -> tuple[Fraction, str] | None:
    text = question.translate(_SYMBOLS)
    for pattern, replacement in _WORD_OPERATORS:
        text = pattern.sub(replacement, text)
    best: tuple[Fraction, str] | None = None
    for match in _SPAN.finditer(text):
        span = match.group(0)
        if not re.search(r"\d", span):
            continue
        found = _try_expression(span)
        if found and (best is None or len(found[1]) > len(best[1])):
            best = found
    if best is None:
        return None
    around = text.replace(best[1], " ", 1)
    if len(re.findall(r"[A-Za-z]+", around)) > _MAX_WORDS_AROUND_EXPRESSION:
        return None
    return best


def format_like_gold(gold: str) -> str:
    """How the simulator writes the gold answer: numbers canonical (``3.0`` -> ``3``), text as is."""
    value = parse_number(gold)
    return format_number(value) if value is not None else gold.strip()


# --- wrong answers -------------------------------------------------------------------------------


def _digit_slip(text: str, rng: random.Random) -> str:
    positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    i = rng.choice(positions)
    new = rng.choice([d for d in "0123456789" if d != text[i]])
    if i == positions[0] and new == "0" and len(positions) > 1:
        new = rng.choice("123456789".replace(text[i], "") or "1")
    return text[:i] + new + text[i + 1 :]


def _digit_swap(text: str, rng: random.Random) -> str:
    pairs = [i for i in range(len(text) - 1) if text[i].isdigit() and text[i + 1].isdigit() and text[i] != text[i + 1]]
    if not pairs:
        return _digit_slip(text, rng)
    i = rng.choice(pairs)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def _wrong_number(gold: Fraction, rng: random.Random) -> Fraction:
    # Many mistake kinds, each with several outcomes: the wrong mass is spread thinly, so two wrong
    # samples agree only a few percent of the time.
    kind = rng.choice(["small", "small", "tens", "double", "half", "slip", "slip", "swap", "percent", "step"])
    integer = gold.denominator == 1
    if kind == "small":
        return gold + rng.choice([-1, 1]) * rng.randint(1, 5)
    if kind == "tens":
        return gold + rng.choice([-1, 1]) * 10 * rng.randint(1, 3)
    if kind == "double":
        return gold * 2
    if kind == "half":
        half = gold / 2
        return Fraction(round(half)) if integer else half
    if kind in ("slip", "swap"):
        text = format_number(abs(gold))
        if sum(ch.isdigit() for ch in text) < 2 and kind == "swap":
            return gold + rng.randint(2, 9)
        changed = (_digit_slip if kind == "slip" else _digit_swap)(text, rng)
        value = Fraction(changed)
        return -value if gold < 0 else value
    if kind == "percent":
        value = gold * (1 + rng.choice([-1, 1]) * Fraction(rng.choice([10, 20, 25, 50]), 100))
        return Fraction(round(value)) if integer else value
    # "step": a forgotten or repeated step adds/subtracts a plausible intermediate quantity.
    return gold + rng.choice([-1, 1]) * rng.randint(6, 40)


def wrong_answer(gold: str, rng: random.Random) -> str:
    """A plausible answer that differs from *gold* after normalization."""
    target = normalize_answer(gold)
    value = parse_number(gold)
    if value is not None:
        for _ in range(32):
            candidate = _wrong_number(value, rng)
            # Keep the sign of the gold answer: a negative count of apples is not a plausible slip.
            if (value > 0 and candidate <= 0) or (value < 0 and candidate >= 0):
                continue
            text = format_number(candidate)
            if normalize_answer(text) != target:
                return text
        return format_number(value + 1)
    if len(target) == 1 and target in "ABCDE":
        return rng.choice([c for c in "ABCDE" if c != target])
    if target in ("yes", "no"):
        return "no" if target == "yes" else "yes"
    return rng.choice([f"not {gold.strip()}", "none of the above", "it cannot be determined", f"{gold.strip()} twice"])
