"""Final-answer extraction and normalization, shared by every strategy.

``final_answer(text)`` finds the answer a model committed to and returns it in a canonical form so
that equal answers compare equal: ``"$1,234.50"``, ``"1234.5"`` and ``"\\boxed{1234.50}"`` all become
``"1234.5"``; ``"(B)"`` becomes ``"B"``; ``"3.0"`` and ``"3"`` both become ``"3"``; ``"\\frac{3}{4}"``
and ``"3/4"`` become ``"0.75"``.

Where the answer is looked for, most explicit first (the last occurrence of each wins, since models
restate and correct themselves):

1. ``\\boxed{...}`` (balanced braces; Qwen-style models end with it);
2. ``#### X`` (GSM8K's marker);
3. "the (final) answer is X" / "Answer: X" / "Final answer: X";
4. the last number in the text.

Extraction never raises: any text yields an answer or ``None``.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["extract_answer", "normalize_answer", "final_answer", "parse_number", "format_number"]

_ANSWER_IS = re.compile(
    r"(?i)(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=)\s*:?\s*(?P<ans>[^\n]+)"
)
_HASHES = re.compile(r"####\s*(?P<ans>[^\n]+)")
_NUMBER = re.compile(r"[-−]?\$?\s?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|[-−]?\.\d+")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?(?:[.):,]|\s|$)")
_FRAC = re.compile(r"\\d?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\(?:text|mathrm|textbf|mbox)\s*\{([^{}]*)\}")
_TRAILING_PUNCT = ".,;:!?"


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces."""
    best = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        if depth == 0:
            best = text[m.end() : i - 1]
    return best


def _cut_sentence(span: str) -> str:
    """The answer part of "the answer is X. Because ..." : up to the end of the sentence."""
    span = span.strip().strip("*").strip()
    # A period ends the sentence unless it is a decimal point.
    m = re.search(r"(?<!\d)\.(?!\d)|\.(?=\s|$)", span)
    if m:
        span = span[: m.start()]
    return span.strip().strip("*").strip()


def extract_answer(text: str) -> str | None:
    """Return the raw answer span the text commits to, or ``None``."""
    if not text:
        return None
    boxed = _last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    hashes = list(_HASHES.finditer(text))
    if hashes:
        return _cut_sentence(hashes[-1].group("ans"))
    said = list(_ANSWER_IS.finditer(text))
    if said:
        span = _cut_sentence(said[-1].group("ans"))
        if span:
            return span
    numbers = list(_NUMBER.finditer(text))
    if numbers:
        return numbers[-1].group(0).strip()
    return None


def parse_number(raw: str) -> Fraction | None:
    """Parse a number written as 1,234.5 / $12 / 45% / 3/4 / \\frac{3}{4} / -2; ``None`` if not one."""
    s = raw.strip().replace("−", "-")
    s = _FRAC.sub(r"(\1)/(\2)", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.replace("\\!", "").replace("{,}", "").replace(",", "").replace(" ", "")
    s = s.strip("()").rstrip(_TRAILING_PUNCT)
    m = re.fullmatch(r"\(?(-?\d*\.?\d+)\)?(?:/\(?(-?\d*\.?\d+)\)?)?", s)
    if not m:
        return None
    try:
        value = Fraction(m.group(1))
        if m.group(2) is not None:
            den = Fraction(m.group(2))
            if den == 0:
                return None
            value /= den
    except (ValueError, ZeroDivisionError):
        return None
    return value


def format_number(value: Fraction) -> str:
    """Canonical text of a number: integers without a decimal point, others with at most six decimals."""
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def normalize_answer(raw: str) -> str:
    """Canonical form of an answer span: numbers, choice letters, yes/no, else folded text."""
    s = _LATEX_NOISE.sub(r"\1", raw.strip())
    s = s.strip().strip("*`").strip()
    # A leading number followed by units ("18 dollars", "$18.00 per hour") is that number.
    m = re.match(r"^[-−]?\\?\$?\s?(?:\\d?frac\s*\{[^{}]*\}\s*\{[^{}]*\}|\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|\.\d+)", s)
    if m:
        value = parse_number(m.group(0))
        if value is not None:
            return format_number(value)
    choice = _CHOICE.match(s)
    if choice and (len(s) <= 3 or s[1:2] in ").:" or s[:1] == "("):
        return choice.group(1).upper()
    low = s.lower().rstrip(_TRAILING_PUNCT).strip()
    if low in ("yes", "no", "true", "false"):
        return {"true": "yes", "false": "no"}.get(low, low)
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s./+\-]", "", low)).strip()


def final_answer(text: str) -> str | None:
    """Extract and normalize the final answer of *text*; ``None`` when it commits to none."""
    try:
        raw = extract_answer(text)
        if raw is None:
            return None
        norm = normalize_answer(raw)
        return norm or None
    except (RecursionError, ValueError, OverflowError):  # pathological input: no answer, never a crash
        return None
