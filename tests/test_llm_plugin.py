"""heavy as a plugin of the real `llm` package: Heavy models sampling through llm's own models.

A small plugin model registered here (no network, no keys) answers arithmetic, follows heavy's judge and
synthesis prompts and records what it was asked; one end-to-end test goes through llm's own OpenAI
plugin to a `heavy sim` on 127.0.0.1 instead.
"""

from __future__ import annotations

import json
import types

import pytest

llm = pytest.importorskip("llm")

from llm.plugins import load_plugins, pm  # noqa: E402

from heavy.prompts import JUDGE_INSTRUCTION, SYNTHESIZE_INSTRUCTION, parse_candidates  # noqa: E402

from helpers import running_sim  # noqa: E402

Q = "What is 17 * 24 + 3?"


class Calls:
    """What the fake model was asked: one (messages, options) pair per call."""

    def __init__(self) -> None:
        self.log: list[tuple[list[tuple[str, str]], dict]] = []

    def reply(self, prompt) -> str:
        messages = [(m.role, "".join(getattr(p, "text", "") for p in m.parts)) for m in prompt.messages]
        options = {k: v for k, v in prompt.options.model_dump().items() if v is not None}
        self.log.append((messages, options))
        text = messages[-1][1]
        if JUDGE_INSTRUCTION in text:  # picks a candidate that is right
            _, candidates = parse_candidates(text)
            label = next((lab for lab, body in candidates if "answer is 411" in body), candidates[0][0])
            return f"Candidate {label} checks out.\nVERDICT: {label}"
        if SYNTHESIZE_INSTRUCTION in text:
            return "Combining the candidates, 17 * 24 = 408 and 408 + 3 = 411.\nThe answer is 411."
        wrong = len(self.log) % 3 == 0  # every third sample is wrong: a clear majority for the vote
        return f"17 * 24 = 408, plus 3. The answer is {400 if wrong else 411}."

    def samples(self) -> list:
        return [c for c in self.log if JUDGE_INSTRUCTION not in c[0][-1][1] and SYNTHESIZE_INSTRUCTION not in c[0][-1][1]]


CALLS = Calls()


class FakeOptions(llm.Options):
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None


class FakeMath(llm.Model):
    model_id = "fake-math"
    can_stream = True
    Options = FakeOptions

    def execute(self, prompt, stream, response, conversation):
        text = CALLS.reply(prompt)
        response.set_usage(input=10, output=len(text.split()))
        for word in text.split(" "):
            yield word + " "


class AsyncFakeMath(llm.AsyncModel):
    model_id = "fake-math"
    can_stream = True
    Options = FakeOptions

    async def execute(self, prompt, stream, response, conversation):
        text = CALLS.reply(prompt)
        response.set_usage(input=10, output=len(text.split()))
        for word in text.split(" "):
            yield word + " "


class Broken(llm.AsyncModel):
    model_id = "fake-broken"

    async def execute(self, prompt, stream, response, conversation):
        raise llm.ModelError("the fake upstream is down")
        yield ""  # pragma: no cover


class SyncOnly(llm.Model):
    model_id = "fake-sync-only"
    Options = FakeOptions

    def execute(self, prompt, stream, response, conversation):
        yield CALLS.reply(prompt)


@llm.hookimpl
def _register(register):
    register(FakeMath(), AsyncFakeMath(), aliases=["fm"])
    register(Broken(), Broken())
    register(SyncOnly())


@pytest.fixture(autouse=True)
def fake_plugin(tmp_path, monkeypatch):
    """The fake models as an llm plugin; llm's user directory in tmp (no keys, no logs of the developer)."""
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    (tmp_path / "llm").mkdir()
    monkeypatch.delenv("HEAVY_LLM_STRATEGIES", raising=False)
    monkeypatch.setenv("HEAVY_CONFIG", str(tmp_path / "heavy.toml"))
    (tmp_path / "heavy.toml").write_text("")
    load_plugins()
    if pm.get_plugin("heavy") is None:  # not installed through its entry point (pip install -e '.[llm]')
        import heavy.llm_plugin

        pm.register(heavy.llm_plugin, name="heavy")
    plugin = types.ModuleType("heavy_test_fake_models")
    plugin.register_models = _register
    pm.register(plugin, name="heavy-test-fake-models")
    CALLS.log.clear()
    yield
    pm.unregister(name="heavy-test-fake-models")


def test_heavy_models_are_registered_per_strategy_with_aliases():
    ids = {m.model_id for m in llm.get_models()}
    for strategy in ("vote", "judge", "synthesize", "heavy"):
        assert f"heavy/{strategy}/fake-math" in ids
    assert "heavy" in ids and not any(i.startswith("heavy/vote/heavy") for i in ids)
    assert llm.get_model("heavy/vote/fm").model_id == "heavy/vote/fake-math"
    assert llm.get_async_model("heavy/judge/fm").model_id == "heavy/judge/fake-math"
    assert any(p["name"] == "heavy" for p in llm.get_plugins())


def test_which_strategies_get_names_and_the_strategy_option(monkeypatch):
    ids = {m.model_id for m in llm.get_models()}
    assert "heavy/vote/fake-math" in ids and "heavy/debate/fake-math" not in ids, "four named by default"
    monkeypatch.setenv("HEAVY_LLM_STRATEGIES", "all")
    assert "heavy/debate/fake-math" in {m.model_id for m in llm.get_models()}
    monkeypatch.setenv("HEAVY_LLM_STRATEGIES", "judge, nope")
    assert {m.model_id for m in llm.get_models() if m.model_id.endswith("/fake-math")} == {"heavy/judge/fake-math"}
    monkeypatch.delenv("HEAVY_LLM_STRATEGIES")
    response = llm.get_model("heavy/vote/fake-math").prompt(Q, n=3, strategy="judge")
    assert "411" in response.text() and response.response_json["heavy"]["strategy"] == "judge"
    with pytest.raises(llm.ModelError, match="unknown strategy 'nope'"):
        llm.get_model("heavy/vote/fake-math").prompt(Q, n=2, strategy="nope").text()


def test_sync_prompt_votes_over_llm_models():
    model = llm.get_model("heavy/vote/fake-math")
    response = model.prompt(Q, n=6, temperature=0.4, seed=10)
    assert "The answer is 411" in response.text()
    summary = response.response_json["heavy"]
    assert summary["method"] == "vote" and summary["votes"] == {"411": 4, "400": 2}
    assert {h["model"] for h in summary["hypotheses"]} == {"llm:fake-math"}
    usage = response.usage()
    assert usage.input == 60 and usage.output > 0
    samples = CALLS.samples()
    assert len(samples) == 6
    assert sorted(o["seed"] for _, o in samples) == list(range(10, 16))
    assert all(o["temperature"] == 0.4 for _, o in samples)


@pytest.mark.anyio
async def test_async_judge_through_an_alias():
    model = llm.get_async_model("heavy/judge/fm")
    response = model.prompt(Q, n=3)
    text = await response.text()
    assert "411" in text
    assert response.response_json["heavy"]["method"] == "judge"
    assert len(CALLS.samples()) == 3 and len(CALLS.log) == 4, "three samples and one judge call"


def test_streaming_shows_progress_as_reasoning_then_the_answer():
    model = llm.get_model("heavy/synthesize/fake-math")
    events = list(model.prompt(Q, n=3).stream_events())
    reasoning = "".join(e.chunk for e in events if e.type == "reasoning")
    text = "".join(e.chunk for e in events if e.type == "text")
    assert reasoning.startswith("sampling 3 hypotheses from llm:fake-math\n")
    assert "hypothesis 3/3 done: answer" in reasoning and "synthesize: llm:fake-math" in reasoning
    assert text.strip().endswith("The answer is 411.")
    assert len([e for e in events if e.type == "text"]) > 3, "the synthesis is streamed word by word"
    hidden = list(model.prompt(Q, n=2, hide_reasoning=True).stream_events())
    assert not [e for e in hidden if e.type == "reasoning"]


def test_a_conversation_sends_the_whole_history_to_every_hypothesis():
    conversation = llm.get_model("heavy/vote/fake-math").conversation()
    first = conversation.prompt("What is 6 * 7?", n=2).text()
    CALLS.log.clear()
    conversation.prompt(Q, n=3, system="Be brief.").text()
    for messages, _ in CALLS.samples():
        roles = [r for r, _ in messages]
        assert roles[-3:] == ["user", "assistant", "user"] and messages[-1][1] == Q
        assert messages[-2][1].strip() == first.strip()
    assert len(CALLS.samples()) == 3


def test_sync_only_llm_models_are_run_in_a_thread():
    response = llm.get_model("heavy/vote/fake-sync-only").prompt(Q, n=3)
    assert "The answer is" in response.text() and len(CALLS.samples()) == 3


def test_failures_and_bad_options_are_model_errors():
    with pytest.raises(llm.ModelError, match="fake upstream is down"):
        llm.get_model("heavy/vote/fake-broken").prompt(Q, n=2).text()
    with pytest.raises(llm.ModelError, match="early_stop"):
        llm.get_model("heavy/vote/fake-math").prompt(Q, n=2, strategy_options={"nope": 1}).text()
    with pytest.raises(ValueError):
        llm.get_model("heavy/vote/fake-math").prompt(Q, strategy_options="not json")


def test_the_llm_cli(tmp_path):
    from click.testing import CliRunner
    from llm.cli import cli

    r = CliRunner().invoke(cli, ["-m", "heavy/vote/fm", "-o", "n", "3", "-o", "strategy_options", '{"early_stop": true}',
                                 "--no-log", Q])
    assert r.exit_code == 0, r.output
    assert "The answer is 411" in r.stdout and "hypothesis" not in r.stdout
    assert "sampling 3 hypotheses" in r.stderr and "decided by vote" in r.stderr
    r = CliRunner().invoke(cli, ["-m", "heavy/vote/fake-broken", "--no-log", Q])
    assert r.exit_code != 0 and "fake upstream is down" in r.output


def test_through_llms_own_openai_plugin_to_a_simulated_server(tmp_path):
    """llm's real OpenAI-compatible model (extra-openai-models.yaml) → `heavy sim` on 127.0.0.1."""
    with running_sim("--seed", "1", "--accuracy", "1") as sim:
        (tmp_path / "llm" / "extra-openai-models.yaml").write_text(
            "- model_id: simulated\n  model_name: heavy-simulated\n"
            f"  api_base: \"{sim}/v1\"\n  aliases: [\"simu\"]\n")
        response = llm.get_model("heavy/judge/simu").prompt(Q, n=3, seed=1)
        assert "411" in response.text()
        summary = response.response_json["heavy"]
        assert summary["method"] == "judge" and summary["votes"] == {"411": 3}
        assert json.dumps(summary)  # logged as the response's JSON


@pytest.mark.parametrize("status,fatal,retryable", [(400, True, False), (404, True, False), (429, False, True),
                                                    (503, False, True), (529, False, True), (418, False, False)])
def test_an_llm_models_http_error_is_classified_as_heavys_own_client_does(status, fatal, retryable):
    from heavy.errors import FatalRequestError, ProviderHTTPError
    from heavy.llm_plugin import _translate

    class APIStatusError(Exception):  # what the openai/anthropic SDKs under llm raise, with a status_code
        status_code = status

    e = _translate(APIStatusError("upstream said no"), "some-model")
    assert isinstance(e, ProviderHTTPError) and isinstance(e, FatalRequestError) == fatal
    assert e.retryable == retryable and e.status == status and "some-model" in str(e)
