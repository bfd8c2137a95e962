"""Choosing crosscheck's decision rule on the TUNE pool only (offline: no model calls).

Reads a pool of 8 chains + 8 executed programs per question (bench/crosscheck.py) and scores decision
rules for every split of an N = 8 budget between chains and programs, with and without early stopping,
using the answers recorded with each hypothesis (a program's is what it printed). The arrival order of an
early-stopping run is simulated as chain, program, chain, program, … (the recorded order within each
route). The rule that wins here becomes the default; the held-out pool is then decided by `heavy eval
--replay` (bench/crosscheck.py), never by this script.

    python bench/crosscheck_rules.py bench/results/xc-pool-tune.jsonl
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from heavy.answers import equivalent  # noqa: E402
from heavy.evaluation import is_correct, wilson  # noqa: E402
from quality import rows_of  # noqa: E402

Sample = tuple[str, str | None]  # (route "c" | "p", answer)


def canon(answers: Sequence[str]) -> dict[str, str]:
    """Each answer -> the first equivalent form seen (what the vote's merging does)."""
    forms: list[str] = []
    out = {}
    for a in answers:
        for f in forms:
            if equivalent(a, f):
                out[a] = f
                break
        else:
            forms.append(a)
            out[a] = a
    return out


def counts(samples: Sequence[Sample]) -> tuple[Counter, Counter, list[str]]:
    """Per canonical answer: chain votes, program votes; and the answers in first-seen order."""
    answered = [a for _, a in samples if a is not None]
    c = canon(answered)
    chain, prog, order = Counter(), Counter(), []
    for route, a in samples:
        if a is None:
            continue
        k = c[a]
        if k not in order:
            order.append(k)
        (chain if route == "c" else prog)[k] += 1
    return chain, prog, order


def vote(samples: Sequence[Sample]) -> str | None:
    chain, prog, order = counts(samples)
    return max(order, key=lambda a: (chain[a] + prog[a], -order.index(a)), default=None)


def any_agreement(samples: Sequence[Sample]) -> str | None:
    """Current rule: answers reached by both routes, most votes first; else the vote."""
    chain, prog, order = counts(samples)
    both = [a for a in order if chain[a] and prog[a]]
    return max(both, key=lambda a: (chain[a] + prog[a], -order.index(a))) if both else vote(samples)


def leading_agreement(samples: Sequence[Sample]) -> str | None:
    """A cross-route answer wins only if it also leads (or ties) the vote; else the vote."""
    chain, prog, order = counts(samples)
    top = max((chain[a] + prog[a] for a in order), default=0)
    both = [a for a in order if chain[a] and prog[a] and chain[a] + prog[a] == top]
    return both[0] if both else vote(samples)


def route_majorities(samples: Sequence[Sample]) -> str | None:
    """The chains' majority if it equals the programs' majority; else the vote over all."""
    cs = [s for s in samples if s[0] == "c"]
    ps = [s for s in samples if s[0] == "p"]
    a, b = vote(cs), vote(ps)
    if a is not None and b is not None and equivalent(a, b):
        return a
    return vote(samples)


def bonus(weight: float) -> Callable[[Sequence[Sample]], str | None]:
    """Votes plus *weight* for an answer both routes reached."""
    def rule(samples: Sequence[Sample]) -> str | None:
        chain, prog, order = counts(samples)
        return max(order, key=lambda a: (chain[a] + prog[a] + (weight if chain[a] and prog[a] else 0),
                                          -order.index(a)), default=None)
    rule.__name__ = f"vote + {weight:g} for both routes"
    return rule


RULES = [vote, any_agreement, leading_agreement, route_majorities, bonus(1), bonus(2)]


def interleave(chains: list[Sample], programs: list[Sample]) -> list[Sample]:
    out = []
    for i in range(max(len(chains), len(programs))):
        out += chains[i:i + 1] + programs[i:i + 1]
    return out


def decide(rule, chains: list[Sample], programs: list[Sample], early: bool) -> tuple[str | None, int]:
    """The rule's answer on these samples, and how many it used (early: stop once 1 chain + 1 program agree,
    else once a both-routes answer strictly leads)."""
    if not early or not chains or not programs:
        return rule(chains + programs), len(chains) + len(programs)
    first = [chains[0], programs[0]]
    if first[0][1] is not None and first[1][1] is not None and equivalent(first[0][1], first[1][1]):
        return first[0][1], 2
    seen = list(first)
    for s in interleave(chains[1:], programs[1:]):
        seen.append(s)
        chain, prog, order = counts(seen)
        both = [a for a in order if chain[a] and prog[a]]
        if both:
            lead = max(both, key=lambda a: chain[a] + prog[a])
            if all(chain[a] + prog[a] < chain[lead] + prog[lead] for a in order if a != lead):
                return rule(seen), len(seen)
    return rule(seen), len(seen)


def main(path: str) -> None:
    pool = rows_of(Path(path))
    print(f"{len(pool)} questions from {path}\n")
    print("| rule | chains+programs | early stop | correct | accuracy (95 % CI) | samples/question |")
    print("|---|---|---|---:|---:|---:|")
    for split in ((8, 0), (0, 8), (4, 4), (6, 2), (2, 6)):
        for rule in RULES:
            for early in (False, True):
                if early and 0 in split:
                    continue
                if 0 in split and rule is not vote:
                    continue
                right = used = 0
                for row in pool:
                    hs = [h for h in row["hypotheses"] if h.get("status", "ok") == "ok"]
                    chains = [("c", h.get("answer")) for h in hs if not h.get("route")][:split[0]]
                    programs = [("p", h.get("answer")) for h in hs if h.get("route") == "program"][:split[1]]
                    answer, n = decide(rule, chains, programs, early)
                    right += bool(answer is not None and is_correct(answer, row["gold"]))
                    used += n
                lo, hi = wilson(right, len(pool))
                print(f"| {rule.__name__} | {split[0]}+{split[1]} | {'yes' if early else 'no'} | {right} "
                      f"| {right / len(pool):.1%} ({lo:.0%}–{hi:.0%}) | {used / len(pool):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "bench" / "results" / "xc-pool-tune.jsonl"))
