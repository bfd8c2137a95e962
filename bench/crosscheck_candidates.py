"""The two crosscheck changes read from the misses of `heavy tune`'s run (GSM8K train 40-79), scored offline on
every pool recorded so far: do they gain anything on the questions they were not read from?

- ``early 2 programs``: the early stop waits for the first chain and the first *two* programs to agree (gold 31:
  the first chain and program agreed on a wrong 65 while most samples said 31);
- ``programs agree``: an answer counts as reached by both routes only where the programs sampled agree on it
  among themselves (gold 72: one chain and one stray program outvoted the chains' 72).

Each question's recorded answers are read from the results of a vote@8 row (the 8 chains, in order) and a
programs@8 row (the 8 executed programs, in order) decided on the same pool; the 6 + 2 split, early stop and the
leads-or-ties rule are re-enacted on them (the arrival order: the first chain and program(s), then the rest). The
re-enactment is checked against the strategy itself: its ``crosscheck`` row should be within a question or two of
what ``heavy eval --replay`` decided (program ordering and tie-breaks differ slightly). No model calls.

    python bench/crosscheck_candidates.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from heavy.answers import equivalent, parse_number  # noqa: E402
from heavy.evaluation import is_correct  # noqa: E402

R = ROOT / "bench" / "results"
TUNE = R / "tune-local" / "tune-results.jsonl"
CHECK = R / "tune-check" / "tune-results.jsonl"
PROGRAMS_ONLY = "crosscheck early_stop=false programs=1"
#: (set, its vote@8 rows, its programs@8 rows): files of bench/crosscheck.py, or heavy tune's results (path, config).
SETS = [("0-39 (tuned the default)", R / "xc-tune-vote.jsonl", R / "xc-tune-programs.jsonl"),
        ("200-280 (held out)", R / "xc-heldout-vote.jsonl", R / "xc-heldout-programs.jsonl"),
        ("40-79 (read from)", (TUNE, "vote"), (TUNE, PROGRAMS_ONLY)),
        ("120-139 (check set)", (CHECK, "vote"), (CHECK, PROGRAMS_ONLY))]
RULES = {"crosscheck (the default)": {}, "early 2 programs": {"early_programs": 2},
         "programs agree": {"programs_agree": True}, "both": {"early_programs": 2, "programs_agree": True}}


def rows(source: Path | tuple[Path, str]) -> dict[str, dict]:
    """The latest N = 8 row per question of a results file (of one configuration, for heavy tune's)."""
    path, config = (source, None) if isinstance(source, Path) else source
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("n") == 8 and (config is None or r.get("config") == config):
            out[r["id"]] = r
    return out


def numeric(answers: Sequence[str | None]) -> list[str | None]:
    """Each answer as the first equivalent form seen (the vote's merging); code text and prose get no vote."""
    forms: list[str] = []
    out: list[str | None] = []
    for a in answers:
        if a is None or parse_number(a) is None:
            out.append(None)
            continue
        form = next((f for f in forms if equivalent(a, f)), None)
        if form is None:
            forms.append(form := a)
        out.append(form)
    return out


def decide(chains: Sequence[str | None], programs: Sequence[str | None], *, early_programs: int = 1,
           programs_agree: bool = False) -> tuple[str | None, int]:
    """crosscheck 6 + 2 with early stop, re-enacted: (answer, samples used: 8 once the first wave disagrees,
    where the strategy may stop a little sooner)."""
    forms = numeric([*chains[:6], *programs[:2]])  # early_programs is 1 or 2: within the 2 programs of 6 + 2
    c, p = forms[:6], forms[6:]
    first = [c[0], *p[:early_programs]]
    if first[0] is not None and all(x == first[0] for x in first):
        return first[0], 1 + early_programs
    votes = Counter(a for a in c + p if a is not None)
    if not votes:
        return None, 8
    order = {a: i for i, a in reversed(list(enumerate(c + p))) if a is not None}
    ranking = sorted(votes, key=lambda a: (-votes[a], order[a]))
    both = [a for a in ranking if a in c and a in p and votes[a] == votes[ranking[0]]]
    if programs_agree:
        both = [a for a in both if p.count(a) == sum(x is not None for x in p)]
    return (both[0] if both else ranking[0]), 8


def main() -> None:
    for name, vote_src, program_src in SETS:
        votes, programs = rows(vote_src), rows(program_src)
        ids = [i for i in votes if i in programs]
        if not ids:
            print(f"{name}: not recorded")
            continue
        cells = [f"vote@8 {sum(bool(votes[i]['correct']) for i in ids)}"]
        for label, kw in RULES.items():
            right = used = 0
            for i in ids:
                answer, samples = decide(votes[i]["hypothesis_answers"], programs[i]["hypothesis_answers"], **kw)
                right += answer is not None and is_correct(answer, votes[i]["gold"])
                used += samples
            cells.append(f"{label} {right} ({used / len(ids):.1f} samples)")
        print(f"{name}, {len(ids)} questions: " + "; ".join(cells))


if __name__ == "__main__":
    main()
