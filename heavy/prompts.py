"""Prompts for judge/aggregator calls, multi-round strategies, and the parsing of their replies.

Candidates are shown under neutral labels (A, B, …) in an order the caller shuffles, so neither
position nor model name can bias the judge. Every prompt carries its instruction constant
(``JUDGE_INSTRUCTION``, ``PAIRWISE_INSTRUCTION``, ``DEBATE_INSTRUCTION``, …) verbatim: the simulated LLM
(heavy.sim) recognises each prompt by it and follows it deterministically, which is what makes
aggregation testable without a real model. The question always travels in a ``<question>`` block and
candidates in ``<candidate id="X">`` blocks (:func:`parse_candidates` reads them back).
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
    "pairwise_messages",
    "consistency_messages",
    "debate_messages",
    "aggregate_messages",
    "moa_messages",
    "critique_messages",
    "revise_messages",
    "rank_messages",
    "chairman_messages",
    "parse_status",
    "parse_ranking",
    "parse_block",
    "PAIRWISE_INSTRUCTION",
    "CONSISTENCY_INSTRUCTION",
    "DEBATE_INSTRUCTION",
    "AGGREGATE_INSTRUCTION",
    "MOA_INSTRUCTION",
    "CRITIQUE_INSTRUCTION",
    "REVISE_INSTRUCTION",
    "RANK_INSTRUCTION",
    "CHAIRMAN_INSTRUCTION",
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
_VERDICT = re.compile(r"(?i)verdict\s*[:：]\s*[*`'\"<(\[\s]*(?:candidate\s+|response\s+)?[*`'\"<(\[]*(?P<label>[A-Z]{1,2})\b")


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


#: Follow-up when a judge-type reply holds no parseable decision (most often an analysis cut at max_tokens):
#: asked in the same conversation, it costs a few output tokens instead of a whole new analysis.
DECIDE_NOW = "Stop the analysis here. Reply with only your final decision, in the exact form:\n{form}"
VERDICT_FORM = "VERDICT: <label>"
RANKING_FORM = "FINAL RANKING:\n1. <label>\n2. <label>\n..."


def decide_now_messages(prompt: Sequence[Message], reply: str, form: str) -> list[Message]:
    """*prompt* continued with the undecided *reply* and a request for the decision line(s) alone."""
    return [*prompt, Message(role="assistant", content=reply or "(no reply)"),
            Message(role="user", content=DECIDE_NOW.format(form=form))]


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


# --- the strategy suite: pairwise judging, consistency, debate, aggregation, critique, ranking --------

PAIRWISE_SYSTEM = (
    "You are a meticulous judge comparing two independent responses to the same question. Check the "
    "reasoning and arithmetic of both yourself. Which response is shown first, and its label, carry no meaning."
)
PAIRWISE_INSTRUCTION = (
    "Decide which of the two responses answers the question correctly; if both or neither do, pick the "
    "better reasoned one. Finish with one last line of the exact form `VERDICT: <label>`."
)
CONSISTENCY_SYSTEM = (
    "You read several independent responses to the same question and find the one most consistent with the "
    "others. Labels and order carry no meaning."
)
CONSISTENCY_INSTRUCTION = (
    "Evaluate the responses and select the one whose final answer (or, for open-ended questions, whose main "
    "content) agrees with the largest number of the other responses. "
    "Finish with one last line of the exact form `VERDICT: <label>`."
)
AGENT_SYSTEM = "You solve problems carefully, step by step, and state your final answer clearly."
DEBATE_INSTRUCTION = (
    "Above are the most recent answers of other agents to the same question, and your own previous answer. "
    "Use their reasoning as additional evidence: check every step, keep what is right, fix what is wrong, and "
    "give your updated answer. If the question has a short final answer, end with a line `The answer is <answer>`."
)
AGGREGATE_INSTRUCTION = (
    "Above are several candidate solutions to the question; some may be wrong, and different ones may be right "
    "in different places. Cross-check them, combine their correct steps, fix their mistakes, and write one "
    "improved, complete solution. If the question has a short final answer, end with a line `The answer is <answer>`."
)
MOA_INSTRUCTION = (
    "Above are responses to the question from several models. Critically evaluate them (some may be biased or "
    "wrong) and write one refined, accurate and complete response of your own, not a summary of theirs. If the "
    "question has a short final answer, end with a line `The answer is <answer>`."
)
CRITIQUE_SYSTEM = "You review answers critically and precisely. You never rewrite the answer yourself."
CRITIQUE_INSTRUCTION = (
    "Review the response step by step: check every claim and every calculation. If you find no error, finish "
    "with the line `STATUS: CORRECT`. Otherwise explain each error and how to fix it, and finish with the line "
    "`STATUS: INCORRECT`."
)
REVISE_INSTRUCTION = (
    "Above are your previous response and feedback on it. Write an improved response that fixes every problem "
    "the feedback points out and keeps what was right. If the question has a short final answer, end with a "
    "line `The answer is <answer>`."
)
RANK_SYSTEM = (
    "You are one member of a council of models evaluating responses to a question. The responses are "
    "anonymised and shuffled: labels and order carry no meaning."
)
RANK_INSTRUCTION = (
    "Evaluate each response on its own merits (accuracy, reasoning, completeness), then rank all of them from "
    "best to worst. Finish with a section that starts with the line `FINAL RANKING:` followed by one numbered "
    "line per response, best first, e.g. `1. Response B`."
)
CHAIRMAN_SYSTEM = "You chair a council of models and write its final answer."
CHAIRMAN_INSTRUCTION = (
    "Above are the council's responses and their aggregate peer ranking, best first. Taking the responses, the "
    "ranking and their agreement into account, write the single best final answer to the question. If the "
    "question has a short final answer, end with a line `The answer is <answer>`."
)

_STATUS = re.compile(r"(?i)status\s*[:：]\s*\**\s*(correct|incorrect)\b")
_RANK_LINE = re.compile(r"(?i)^\s*\d+\s*[.):]\s*\**\s*(?:response|candidate)?\s*\(?([A-Z]{1,2})\b")


def _question_block(messages: Sequence[Message]) -> str:
    return f"Question:\n<question>\n{render_question(messages)}\n</question>"


def _pair(system: str, body: str) -> list[Message]:
    return [Message(role="system", content=system), Message(role="user", content=body)]


def pairwise_messages(messages: Sequence[Message], first: tuple[str, str], second: tuple[str, str]) -> list[Message]:
    """Prompt asking a judge which of two labelled responses is correct (the caller alternates the order)."""
    body = f"{_question_block(messages)}\n\nResponses:\n\n{_candidates_block([first, second])}\n\n{PAIRWISE_INSTRUCTION}"
    return _pair(PAIRWISE_SYSTEM, body)


def consistency_messages(messages: Sequence[Message], candidates: Sequence[tuple[str, str]]) -> list[Message]:
    """Universal self-consistency: pick the response most consistent with the others."""
    body = f"{_question_block(messages)}\n\nResponses:\n\n{_candidates_block(candidates)}\n\n{CONSISTENCY_INSTRUCTION}"
    return _pair(CONSISTENCY_SYSTEM, body)


def debate_messages(messages: Sequence[Message], own: str, others: Sequence[tuple[str, str]]) -> list[Message]:
    """One debate turn: the agent's previous answer and the other agents' latest answers."""
    body = (f"{_question_block(messages)}\n\nOther agents' latest answers:\n\n{_candidates_block(others)}\n\n"
            f"Your previous answer:\n<previous_answer>\n{_clip(own)}\n</previous_answer>\n\n{DEBATE_INSTRUCTION}")
    return _pair(AGENT_SYSTEM, body)


def aggregate_messages(messages: Sequence[Message], candidates: Sequence[tuple[str, str]]) -> list[Message]:
    """Recursive self-aggregation: write one improved solution from a few candidate solutions."""
    body = f"{_question_block(messages)}\n\nCandidate solutions:\n\n{_candidates_block(candidates)}\n\n{AGGREGATE_INSTRUCTION}"
    return _pair(AGENT_SYSTEM, body)


def moa_messages(messages: Sequence[Message], candidates: Sequence[tuple[str, str]]) -> list[Message]:
    """A mixture-of-agents layer: improve on all responses of the previous layer."""
    body = f"{_question_block(messages)}\n\nResponses from models:\n\n{_candidates_block(candidates)}\n\n{MOA_INSTRUCTION}"
    return _pair(AGENT_SYSTEM, body)


def critique_messages(messages: Sequence[Message], response: str) -> list[Message]:
    """Self-refine feedback: find the errors of *response*, ending ``STATUS: CORRECT|INCORRECT``."""
    body = f"{_question_block(messages)}\n\nResponse to review:\n<response>\n{_clip(response)}\n</response>\n\n{CRITIQUE_INSTRUCTION}"
    return _pair(CRITIQUE_SYSTEM, body)


def revise_messages(messages: Sequence[Message], previous: str, feedback: str) -> list[Message]:
    """Self-refine revision: the previous response and the feedback on it."""
    body = (f"{_question_block(messages)}\n\nYour previous response:\n<previous_answer>\n{_clip(previous)}\n"
            f"</previous_answer>\n\nFeedback:\n<feedback>\n{_clip(feedback)}\n</feedback>\n\n{REVISE_INSTRUCTION}")
    return _pair(AGENT_SYSTEM, body)


def rank_messages(messages: Sequence[Message], candidates: Sequence[tuple[str, str]]) -> list[Message]:
    """Peer ranking: rank the anonymised responses (never including the ranker's own)."""
    body = f"{_question_block(messages)}\n\nResponses:\n\n{_candidates_block(candidates)}\n\n{RANK_INSTRUCTION}"
    return _pair(RANK_SYSTEM, body)


def chairman_messages(messages: Sequence[Message], candidates: Sequence[tuple[str, str]],
                      ranking: Sequence[str]) -> list[Message]:
    """The chairman's prompt: every response and the council's aggregate ranking (labels, best first)."""
    order = "\n".join(f"{i}. Response {label}" for i, label in enumerate(ranking, 1))
    body = (f"{_question_block(messages)}\n\nResponses:\n\n{_candidates_block(candidates)}\n\n"
            f"Aggregate peer ranking:\n<ranking>\n{order}\n</ranking>\n\n{CHAIRMAN_INSTRUCTION}")
    return _pair(CHAIRMAN_SYSTEM, body)


def parse_status(text: str) -> bool | None:
    """A critique's last ``STATUS:`` line: ``True`` for CORRECT, ``False`` for INCORRECT, ``None`` if absent."""
    found = _STATUS.findall(text or "")
    return None if not found else found[-1].lower() == "correct"


def parse_ranking(text: str, valid: Sequence[str]) -> list[str] | None:
    """The labels of a ``FINAL RANKING:`` section, best first (each valid label once, in its first place);
    ``None`` when the section is missing or ranks none of *valid*. Labels it leaves out are omitted."""
    text = text or ""
    at = text.upper().rfind("FINAL RANKING")
    if at < 0:
        return None
    seen: list[str] = []
    for line in text[at:].splitlines()[1:]:
        m = _RANK_LINE.match(line)
        if m and m.group(1).upper() in valid and m.group(1).upper() not in seen:
            seen.append(m.group(1).upper())
    return seen or None


def parse_block(prompt: str, tag: str) -> str | None:
    """The content of ``<tag>…</tag>`` in a prompt built here (used by the simulator)."""
    m = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", prompt, re.S)
    return m.group(1) if m else None
