"""``debate``: multi-agent debate (Du et al., 2023, "Improving Factuality and Reasoning in Language Models
through Multiagent Debate").

N agents (agent i samples from the i-th model, round-robin over ``-m``) answer independently; then for
``rounds`` rounds each agent reads the other agents' latest answers (shuffled, under neutral labels,
its own shown apart as its previous answer) and may revise. The debate stops early on consensus (every
agent's extracted answer equivalent). The final answer is the vote over the agents' last answers
(default) or an aggregator's synthesis of them.

Cost: N·(1 + rounds) samples at most (+1 aggregator call). The run's budget is checked before each
round: a cap reached mid-debate ends it with the best answer so far, and the decision says so.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from heavy.prompts import debate_messages, labels
from heavy.strategy import Context, Strategy, answers_of, unanimous
from heavy.types import Hypothesis, Result


class DebateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(default=2, ge=0, le=10)
    """Debate rounds after the initial answers (the paper: 2)."""
    final: Literal["vote", "aggregator"] = "vote"
    """How the last answers are decided: majority vote, or the aggregator's synthesis."""
    stop_on_consensus: bool = True
    """End the debate as soon as every agent's answer is equivalent."""
    shuffle: bool = True
    """Show each agent the others' answers in a random order (position-bias guard)."""
    shuffle_seed: int | None = None
    """Seed of those orders (default: the run's sampling seed)."""


class Debate(Strategy):
    """Multi-agent debate: agents read each other's answers and revise over R rounds; stops early on consensus."""

    name = "debate"
    Options = DebateOptions

    async def run(self, ctx: Context) -> Result:
        o = self.options
        seed = ctx.shuffle_seed(o.shuffle_seed)
        models = ctx.agent_models(ctx.n)
        run = await ctx.sample(stage="round 0: initial answers", detail={"agents": ctx.n}, models=models)
        agents = [(i, h) for i, h in enumerate(run.hypotheses) if h.ok]  # agents without an answer drop out
        current = [h for _, h in agents]
        history = [{"round": 0, "answers": answers_of(current)}]
        stopped, note = f"all {o.rounds} rounds done", ""
        consensus = unanimous(current)
        for rnd in range(1, o.rounds + 1):
            if o.stop_on_consensus and consensus:
                break
            note = ctx.out_of_budget(f"before round {rnd} of {o.rounds}")
            if note:
                stopped = f"{ctx.ledger.exhausted()} budget spent"
                break
            ctx.stage(f"round {rnd}/{o.rounds}", agents=len(current), answers=answers_of(current))
            prompts = []
            for a, (agent, mine) in enumerate(agents):
                others = [h for b, h in enumerate(current) if b != a]
                if o.shuffle:
                    random.Random(None if seed is None else seed * 7_919 + rnd * 104_729 + agent).shuffle(others)
                prompts.append(debate_messages(ctx.messages, current[a].text,
                                               list(zip(labels(len(others)), (h.text for h in others)))))
            new = await ctx.sample_each(prompts, [models[agent] for agent, _ in agents], stage=f"round {rnd}")
            current = _latest(current, new)
            history.append({"round": rnd, "answers": answers_of(current),
                            "failed": [agent for (agent, _), h in zip(agents, new) if not h.ok] or None})
            consensus = unanimous(current)
        if consensus:
            stopped = f"consensus after round {history[-1]['round']}"
        details = {"agents": [{"agent": agent, "model": models[agent].label} for agent, _ in agents],
                   "rounds": history, "consensus": consensus, "stopped": stopped}
        path = ["sample"] + [f"round {r['round']}" for r in history[1:]] + [stopped]
        why = note or f"debate ended: {stopped}."
        if o.final == "aggregator" and len(current) > 1:
            result = await ctx.synthesize(current, path=path, shuffle=o.shuffle, seed=seed, details=details)
            result.decision.rationale = f"{why} {result.decision.rationale}"
            return result
        return ctx.decide_by_vote(current, path=path + ["vote"], why=why, details=details)


def _latest(previous: Sequence[Hypothesis], new: Sequence[Hypothesis]) -> list[Hypothesis]:
    """Per agent, the new hypothesis if it succeeded, else the agent's previous one."""
    return [n if n.ok else p for p, n in zip(previous, new)]
