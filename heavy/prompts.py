"""Prompts for judge/aggregator calls and the parsing of their replies.

Candidates are shown under neutral labels (A, B, …) in an order the caller shuffles, so neither
position nor model name can bias the judge. The simulated LLM (heavy.testing) recognises these prompts
by ``JUDGE_INSTRUCTION`` / ``SYNTHESIZE_INSTRUCTION`` and follows them deterministically, which is what
makes aggregation testable without a real model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .constants import AGGREGATOR_CANDIDATE_CHARS
from .types import Message

__all__ = [
    "labels",
    "render_question",
    "judge_messages",
    "synthesize_messages",
    "parse_verdict",
    "parse_candidates",
    "JUDGE_INSTRUCTION",
    "SYNTHESIZE_INSTRUCTION",
]

JUDGE_SYSTEM = (
    "You are a meticulous judge. Several independent attempts answer the same question. "
    "Check each attempt's reasoning and arithmetic yourself; do not trust majority or confidence. "
    "Labels and order carry no meaning."
)
JUDGE_INSTRUCTION = (
    "Compare the candidates step by step and decide which one is correct. "
    "Finish with one last line of the exact form `VERDICT: <label>`."
)
SYNTHESIZE_SYSTEM = (
    "You combine several independent attempts at the same question into one best answer. "
    "Where they agree, that is evidence, not proof; where they disagree, work out which is right. "
    "Labels and order carry no meaning."
)
SYNTHESIZE_INSTRUCTION = (
    "Write the single best final answer to the question, using the candidates as drafts: keep what is "
    "correct, fix what is wrong, and do not mention the candidates. If the question has a short final "
    "answer, end with a line `The answer is <answer>`."
)

_CANDIDATE = re.compile(r'<candidate id="(?P<label>[A-Z]+)">\n(?P<body>.*?)\n</candidate>', re.S)
_VERDICT = re.compile(r"(?i)verdict\s*[:：]\s*\**\s*(?:candidate\s+)?\(?\[?(?P<label>[A-Z]{1,2})\b")


def labels(n: int) -> list[str]:
    """Neutral labels A..Z, then AA, AB, … for more than 26 candidates."""
    out = []
    for i in range(n):
        label = ""
        i += 1
        while i:
            i, r = divmod(i - 1, 26)
            label = chr(65 + r) + label
        out.append(label)
    return out


def _clip(text: str, limit: int = AGGREGATOR_CANDIDATE_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[… {len(text) - limit} characters omitted …]\n{text[-half:]}"


def render_question(messages: Sequence[Message]) -> str:
    """The task as the aggregator sees it: the last user turn, with earlier turns as context."""
    turns = [m for m in messages if m.role != "system"]
    if len(turns) == 1:
        return turns[0].text()
    lines = [f"{m.role}: {m.text()}" for m in turns[:-1]]
    return "Conversation so far:\n" + "\n".join(lines) + f"\n\nLast message ({turns[-1].role}):\n{turns[-1].text()}"


def _candidates_block(candidates: Sequence[tuple[str, str]]) -> str:
    return "\n\n".join(f'<candidate id="{label}">\n{_clip(text)}\n</candidate>' for label, text in candidates)


def judge_messages(messages: Sequence[Message], candidates: Sequence[tuple[str, str]]) -> list[Message]:
    """Prompt asking a judge to pick one of the labelled *candidates* ``[(label, text), …]``."""
    body = (
        f"Question:\n<question>\n{render_question(messages)}\n</question>\n\n"
        f"Candidates:\n\n{_candidates_block(candidates)}\n\n{JUDGE_INSTRUCTION}"
    )
    return [Message(role="system", content=JUDGE_SYSTEM), Message(role="user", content=body)]


def synthesize_messages(messages: Sequence[Message], candidates: Sequence[tuple[str, str]]) -> list[Message]:
    """Prompt asking an aggregator to write one answer from the labelled *candidates*."""
    body = (
        f"Question:\n<question>\n{render_question(messages)}\n</question>\n\n"
        f"Candidates:\n\n{_candidates_block(candidates)}\n\n{SYNTHESIZE_INSTRUCTION}"
    )
    return [Message(role="system", content=SYNTHESIZE_SYSTEM), Message(role="user", content=body)]


def parse_verdict(text: str, valid: Sequence[str]) -> str | None:
    """The label the judge chose (its last ``VERDICT:`` line), or ``None`` if absent/not a valid label."""
    found = [m.group("label").upper() for m in _VERDICT.finditer(text or "")]
    for label in reversed(found):
        if label in valid:
            return label
    return None


def parse_candidates(prompt: str) -> tuple[str, list[tuple[str, str]]]:
    """Inverse of the prompt builders: ``(question, [(label, text), …])``. Used by the simulator."""
    q = re.search(r"<question>\n(.*?)\n</question>", prompt, re.S)
    return (q.group(1) if q else "", [(m.group("label"), m.group("body")) for m in _CANDIDATE.finditer(prompt)])
