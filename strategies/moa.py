"""``moa``: Mixture-of-Agents (Wang et al., 2024, "Mixture-of-Agents Enhances Large Language Model
Capabilities"), with ``layers`` layers.

Layer 1 is the N ordinary samples (the proposers). Each later proposer layer has ``agents`` agents
(default N), each of which reads every answer of the previous layer (shuffled, under neutral labels)
and writes an improved answer of its own. The last layer is the aggregator, which synthesizes the
final answer from the last proposer layer. Models are heterogeneous per layer: by default each layer
round-robins over the sampling models (``-m`` several times) starting one model further than the
previous layer, so an agent rarely sees only its own model's work; ``layer_models`` names the models
of each proposer layer explicitly.

Cost: N + (layers - 2)·agents samples + 1 aggregator call. If the aggregator fails, the last layer is
decided by vote (then its first success). The run's budget is checked before every layer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from heavy.prompts import moa_messages
from heavy.sampler import ModelRef
from heavy.strategy import Context, Strategy, labelled
from heavy.types import Hypothesis, Result
from heavy.voting import tally


class MoAOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layers: int = Field(default=3, ge=2, le=8)
    """Layers in all, the final aggregator included (the paper's default 3: two proposer layers, then the aggregator)."""
    agents: int | None = Field(default=None, ge=1, le=64)
    """Agents in each proposer layer after the first (default: N)."""
    layer_models: list[list[str]] | None = None
    """Model labels of each proposer layer, first layer first (agents cycle through a layer's list); layers
    not listed round-robin over the sampling models."""
    shuffle: bool = True
    """Show each agent the previous layer's answers in its own random order (position-bias guard)."""
    shuffle_seed: int | None = None
    """Seed of those orders (default: the run's sampling seed)."""


class MixtureOfAgents(Strategy):
    """Mixture-of-agents: layers of agents each improve on all answers of the previous layer; an aggregator synthesizes."""

    name = "moa"
    Options = MoAOptions

    def _models(self, ctx: Context, layer: int, k: int) -> list[ModelRef]:
        listed = self.options.layer_models or []
        if layer - 1 < len(listed) and listed[layer - 1]:
            refs = ctx.models_by_label(listed[layer - 1], f"layer_models[{layer - 1}]")
            return [refs[i % len(refs)] for i in range(k)]
        return ctx.agent_models(k, offset=layer - 1)

    async def run(self, ctx: Context) -> Result:
        o = self.options
        seed = ctx.shuffle_seed(o.shuffle_seed)
        proposer_layers = o.layers - 1
        run = await ctx.sample(stage=f"layer 1/{o.layers}", detail={"agents": ctx.n},
                               models=self._models(ctx, 1, ctx.n))
        current: list[Hypothesis] = run.successes
        report = [self._layer_report(1, run.hypotheses)]
        note = ""
        for layer in range(2, proposer_layers + 1):
            note = ctx.out_of_budget(f"before layer {layer}")
            if note:
                break
            k = o.agents or ctx.n
            models = self._models(ctx, layer, k)
            ctx.stage(f"layer {layer}/{o.layers}", agents=k, sees=len(current), models=[m.label for m in models])
            prompts = []
            for i in range(k):
                order_seed = None if seed is None else seed * 1_000_003 + layer * 1_009 + i
                cands = labelled(current, shuffle=o.shuffle, seed=order_seed)
                prompts.append(moa_messages(ctx.messages, [(label, h.text) for label, h in cands]))
            new = await ctx.sample_each(prompts, models, stage=f"layer {layer}")
            report.append(self._layer_report(layer, new))
            ok = [h for h in new if h.ok]
            if ok:
                current = ok
            else:
                note = f"every agent of layer {layer} failed; the aggregator read layer {layer - 1}."
        ctx.stage(f"layer {o.layers}/{o.layers}: aggregate", candidates=len(current), model=ctx.aggregator.label)
        details = {"layers": report, "aggregator": ctx.aggregator.label}
        result = await ctx.synthesize(current, path=[f"layer {r['layer']}" for r in report], shuffle=o.shuffle,
                                      seed=seed, details=details)
        if note:
            result.decision.rationale = f"{note} {result.decision.rationale}"
        return result

    @staticmethod
    def _layer_report(layer: int, hyps: list[Hypothesis]) -> dict:
        t = tally(hyps)
        return {"layer": layer, "agents": [{"index": h.index, "model": h.model, "answer": h.answer, "status": h.status}
                                           for h in hyps],
                "votes": {a: int(c) for a, c in t.counts.items()}}
