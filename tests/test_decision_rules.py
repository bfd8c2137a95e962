"""crosscheck's candidate decision rules, off by default until a real-model measurement decides them: the
route-weighted decision (a near-unanimous program route over a chain majority), --verify spent only where the
first chain and program disagree, and a chain cut off inside its program giving no vote.

The network edge is faked (a scripted OpenAI-compatible endpoint, or the simulator in-process); programs and
checks really run in the sandbox.
"""

from __future__ import annotations

import pytest

from heavy.errors import OptionsError
from heavy.sim import SimConfig
from heavy.types import PROGRAM_ROUTE, Hypothesis
from strategies.crosscheck import CrossCheckOptions

from helpers import sim_heavy
from test_crosscheck import make, prog, scripted

pytestmark = pytest.mark.anyio


def test_the_defaults_are_unchanged():
    o = CrossCheckOptions()
    assert (o.programs, o.early_stop, o.program_override, o.verify) == (0.25, True, None, "all")
    with pytest.raises(ValueError, match="needs early_stop=true"):
        CrossCheckOptions(verify="unsettled", early_stop=False)
    with pytest.raises(ValueError):
        CrossCheckOptions(program_override=0.4)


# 4 chains (44, 44, 44, 12) and 4 programs (39, 39, 39, a crash): the vote takes 44 (3 to 3, seen first), and
# no answer has both routes; the programs' route is near-unanimous on 39 (3 of the 4 programs).
CHAINS = ["The total is 44.\n\nThe answer is 44.", "So 44.\n\nThe answer is 44.", "The answer is 44.",
          "The answer is 12."]
PROGRAMS = [prog("39"), prog("39"), prog("39"), "```python\nraise SystemExit(1)\n```"]


async def test_a_near_unanimous_program_route_overrides_the_chain_majority_only_when_asked():
    transport, _ = scripted(CHAINS, PROGRAMS)
    opts = {"programs": 0.5, "early_stop": False}
    plain = await make(transport, n=8, strategy="crosscheck", options=opts, tools="python").ask("How many?")
    assert plain.answer == "44" and plain.decision.method == "vote", "off by default: the vote decides"
    transport, _ = scripted(CHAINS, PROGRAMS)
    r = await make(transport, n=8, strategy="crosscheck", tools="python",
                   options={**opts, "program_override": 0.75}).ask("How many?")
    assert r.answer == "39" and r.decision.path[-1] == "program route"
    assert "3 of 4 executed programs agree on '39'" in r.decision.rationale and "'44'" in r.decision.rationale
    winner = next(h for h in r.hypotheses if h.index == r.decision.winner)
    assert winner.route == PROGRAM_ROUTE and winner.answer == "39"
    transport, _ = scripted(CHAINS, PROGRAMS)
    strict = await make(transport, n=8, strategy="crosscheck", tools="python",
                        options={**opts, "program_override": 1.0}).ask("How many?")
    assert strict.answer == "44", "3 of 4 is below a threshold of 1.0 (the crash counts against it)"


async def test_the_override_needs_two_programs_and_a_chain_majority_to_disagree():
    transport, _ = scripted(CHAINS[:3], [prog("39")])
    r = await make(transport, n=4, strategy="crosscheck", tools="python",
                   options={"programs": 0.25, "early_stop": False, "program_override": 0.5}).ask("How many?")
    assert r.answer == "44", "one program alone never overrides"
    transport, _ = scripted(["The answer is 39."], [prog("39")])
    r = await make(transport, n=4, strategy="crosscheck", tools="python",
                   options={"programs": 0.5, "early_stop": False, "program_override": 0.5}).ask("How many?")
    assert r.answer == "39" and r.decision.path[-1] == "agree", "routes that agree are the ordinary rule's"


def verify_steps(result):
    return [s for h in result.hypotheses for s in h.steps or [] if s.protocol == "verify"]


async def test_verify_unsettled_spends_no_check_on_a_question_the_first_pair_settles():
    h, app = sim_heavy(SimConfig(accuracy=1.0, seed=1), n=8, strategy="crosscheck", tools="python", verify="python")
    eager = await h.ask("What is 17 * 24 + 3?")
    assert eager.answer == "411" and len(verify_steps(eager)) == 1, "verify=all checks the first chain"
    lazy = await h.ask("What is 17 * 24 + 3?", options={"verify": "unsettled"})
    assert lazy.answer == "411" and verify_steps(lazy) == [] and lazy.stopped_early


async def test_verify_unsettled_checks_every_chain_once_the_first_pair_disagrees():
    # Chains are wrong (accuracy 0), programs of an arithmetic question are right: the pair disagrees.
    h, app = sim_heavy(SimConfig(accuracy=0.0, seed=1), n=8, strategy="crosscheck", tools="python",
                       verify="python", options={"verify": "unsettled"})
    r = await h.ask("What is 17 * 24 + 3?")
    chains = [x for x in r.hypotheses if x.ok and x.route is None]
    assert len(chains) >= 2 and r.answer == "411"
    checks = [sum(s.protocol == "verify" for s in x.steps or []) for x in chains]
    assert checks == [1] * len(chains), "the first chain is checked late, the later ones as they come: once each"
    assert all(s.details["verdict"] == "disagrees" for s in verify_steps(r))
    assert r.usage.total_tokens == sum(x.usage.total_tokens for x in r.hypotheses), "the late checks are paid for"


CUT_OFF = ("Let me write a program.\n```python\nballoons = 52\nair = balloons * 5\nrate = 8\n"
           "time_left = air /")  # the token limit struck inside the block


async def test_a_chain_cut_off_inside_its_program_gives_no_vote_where_code_may_run():
    pool = [Hypothesis(index=0, model="openai:scripted", text=CUT_OFF, finish_reason="length"),
            Hypothesis(index=1, model="openai:scripted", text="The answer is 30."),
            Hypothesis(index=2, model="openai:scripted", text="```python\nprint(95)\n```")]
    transport, seen = scripted(["unused"], ["unused"])
    r = await make(transport, n=3, strategy="vote", tools="python").ask("How long?", pool=pool, live=False)
    cut, chain, program = sorted(r.hypotheses, key=lambda h: h.index)
    assert cut.answer is None and cut.steps[-1].protocol == "program" and cut.steps[-1].details["cut_off"]
    assert not cut.steps[-1].ok and "cut off" in cut.steps[-1].result
    assert chain.answer == "30" and program.answer == "95", "a complete program runs as one"
    assert r.decision.no_answer == 1 and seen["chain"] == 0
    # Without the python tool nothing runs, and the code text is what the reply states (a code task votes on it).
    transport, _ = scripted(["unused"], ["unused"])
    bare = await make(transport, n=3, strategy="vote").ask("How long?", pool=pool, live=False)
    assert bare.hypotheses[0].answer.startswith("```")


async def test_a_program_hypothesis_cut_off_is_a_failed_program_in_crosscheck():
    transport, _ = scripted(["The answer is 7."], [CUT_OFF, prog("7")])
    r = await make(transport, n=4, strategy="crosscheck", tools="python",
                   options={"programs": 0.5, "early_stop": False}).ask("q")
    programs = [h for h in r.hypotheses if h.route == PROGRAM_ROUTE]
    assert sorted(str(h.answer) for h in programs) == ["7", "None"]
    assert r.decision.details["routes"]["7"] == {"chain": 2, "program": 1}


async def test_verify_unsettled_without_early_stop_is_one_clear_error():
    h, _ = sim_heavy(n=4, strategy="crosscheck", tools="python", verify="python")
    with pytest.raises(OptionsError, match="needs early_stop=true"):
        await h.ask("What is 6 * 7?", options={"verify": "unsettled", "early_stop": False})
