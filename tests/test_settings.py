"""One settings model: every run option once (heavy.settings.RunSettings), layered built-ins < config file <
environment < caller, and every surface (flags, config file, proxy request, llm options, docs) a mapping of it.

The config file's [defaults] reach `heavy ask`, `heavy eval`, `heavy serve` (a real server process on
127.0.0.1) and the llm plugin alike; the upstream is heavy's in-process simulated model.
"""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy import constants as C
from heavy.cli import cli
from heavy.config import Defaults, HeavyConfig, load_config, run_settings
from heavy.errors import ConfigError
from heavy.serve.app import ServeSettings
from heavy.remote.policy import OptionPolicy
from heavy.serve.protocol import HONOURED, ChatRequest, HeavyParams
from heavy.settings import (ENV_PREFIX, RunSettings, ceiling, env_layer, fields_where, layered, options_table,
                            surface)

from helpers import running_heavy

SIM = "sim:heavy-simulated@accuracy=1"
CONFIG = f"""
[defaults]
model = "{SIM}"
n = 3
strategy = "vote"
seed = 5
min_successes = 2
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No HEAVY_<OPTION> of the developer's shell leaks into these tests."""
    for name in RunSettings.model_fields:
        monkeypatch.delenv(ENV_PREFIX + name.upper(), raising=False)


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("HEAVY_CONFIG", str(path))
    return path


# --- the model and its layers ------------------------------------------------------------------------


def test_layers_built_in_then_config_then_environment_then_caller(config_file):
    cfg = load_config()
    assert RunSettings().n == C.DEFAULT_N and RunSettings().strategy == C.DEFAULT_STRATEGY
    s = run_settings(cfg=cfg, env={})
    assert (s.n, s.strategy, s.seed, s.min_successes, s.model) == (3, "vote", 5, 2, [SIM])
    assert s.temperature == C.DEFAULT_TEMPERATURE, "what the file leaves out stays built-in"
    s = run_settings(cfg=cfg, env={"HEAVY_N": "4", "HEAVY_TOOLS": "python,web_search", "HEAVY_SYSTEM": "42"})
    assert (s.n, s.strategy, s.tools, s.system) == (4, "vote", ["python", "web_search"], "42")
    s = run_settings({"n": 6, "strategy": None, "model": ()}, cfg=cfg, env={"HEAVY_N": "4"})
    assert (s.n, s.strategy, s.model) == (6, "vote", [SIM]), "None and () are flags not given"


def test_heavy_takes_settings_and_keywords_build_them():
    base = RunSettings.build(model=SIM, n=2, strategy="vote")
    h = Heavy(settings=base, n=4, early_stop=True)
    assert h.settings.n == 4 and h.n == 4 and h.strategy_name == "vote" and h.options.early_stop is True
    assert base.n == 2, "settings are immutable: a caller's copy never changes"
    assert Heavy(SIM, 3, "judge").settings.explicit() == {"model": [SIM], "n": 3, "strategy": "judge"}
    r = Heavy(settings=base).ask_sync("What is 6 * 7?")
    assert r.answer == "42" and len(r.hypotheses) == 2
    h = Heavy(model="sim", temperature=None)
    assert h.params.temperature is None, "an explicit None is the provider's default, not heavy's 0.7"


@pytest.mark.parametrize("values,needle", [
    ({"n": 0}, "n must be at least 1"),
    ({"n": "8"}, "whole number"),
    ({"n": 2, "min_successes": 3}, "min_successes must be between 1 and n (2)"),
    ({"temperature": 9}, "temperature"),
    ({"tool_protocol": "smoke"}, "tool_protocol"),
    ({"verify": "lean"}, "the only verifier is 'python'"),
    ({"timeout": -1}, "timeout must be a positive number"),
])
def test_bad_values_are_one_config_error(values, needle):
    with pytest.raises(ConfigError) as info:
        RunSettings.build(**values)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_bad_environment_value_names_the_variable(config_file):
    with pytest.raises(ConfigError, match="HEAVY_N='many'"):
        env_layer({"HEAVY_N": "many"})
    r = CliRunner().invoke(cli, ["ask", "What is 1 + 1?"], env={"HEAVY_N": "many"})
    assert r.exit_code == 1 and "HEAVY_N='many'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_config_values_are_checked_together(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[defaults]\nn = 2\nmin_successes = 3\n")
    with pytest.raises(ConfigError, match="config.toml") as info:
        load_config(path)
    assert "min_successes" in str(info.value)
    path.write_text("[defaults]\ntool_protocol = 'smoke'\n")
    with pytest.raises(ConfigError, match="defaults.tool_protocol"):
        load_config(path)


# --- one [defaults] for every shell ------------------------------------------------------------------


def test_config_defaults_apply_to_heavy_ask(config_file):
    r = CliRunner().invoke(cli, ["ask", "--json", "What is 6 * 7?"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["answer"] == "42" and data["strategy"] == "vote"
    assert [h["seed"] for h in data["hypotheses"]] == [5, 6, 7], "seed was one of the options [defaults] lacked"
    r = CliRunner().invoke(cli, ["ask", "--json", "What is 6 * 7?"], env={"HEAVY_N": "2"})
    assert len(json.loads(r.stdout)["hypotheses"]) == 2, "the environment beats the file"
    r = CliRunner().invoke(cli, ["ask", "--json", "-n", "4", "What is 6 * 7?"], env={"HEAVY_N": "2"})
    assert len(json.loads(r.stdout)["hypotheses"]) == 4, "a flag beats the environment"


def test_config_defaults_apply_to_heavy_eval(config_file, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} * 7?", "answer": str(i * 7)}) + "\n"
                            for i in range(2, 5)))
    results = tmp_path / "results.jsonl"
    r = CliRunner().invoke(cli, ["eval", str(data), "--results", str(results), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert [(s["strategy"], s["n"], s["correct"]) for s in summary] == [("vote", 3, 3)]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert {(row["strategy"], row["n"]) for row in rows} == {("vote", 3)}


def test_config_defaults_apply_to_heavy_serve(config_file):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with running_heavy("serve", env=env) as base:
        r = httpx.post(f"{base}/v1/chat/completions", timeout=30,
                       json={"model": "heavy", "messages": [{"role": "user", "content": "What is 6 * 7?"}]})
        assert r.status_code == 200, r.text
        summary = r.json()["heavy"]
        assert summary["strategy"] == "vote" and summary["answer"] == "42" and len(summary["hypotheses"]) == 3
        r = httpx.post(f"{base}/v1/chat/completions", timeout=30, json={
            "model": "heavy", "n": 2, "messages": [{"role": "user", "content": "What is 6 * 7?"}]})
        assert len(r.json()["heavy"]["hypotheses"]) == 2, "a client's n goes over the config's"


def test_config_defaults_apply_to_the_llm_plugin(config_file, tmp_path, monkeypatch):
    llm = pytest.importorskip("llm")
    from llm.plugins import load_plugins, pm

    class Arithmetic(llm.Model):
        model_id = "settings-arithmetic"

        def execute(self, prompt, stream, response, conversation):
            yield "6 * 7 = 42. The answer is 42."

    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    (tmp_path / "llm").mkdir()
    load_plugins()
    if pm.get_plugin("heavy") is None:
        import heavy.llm_plugin

        pm.register(heavy.llm_plugin, name="heavy")
    plugin = types.ModuleType("heavy_test_settings_models")
    plugin.register_models = llm.hookimpl(lambda register: register(Arithmetic()))
    pm.register(plugin, name="heavy-test-settings-models")
    try:
        response = llm.get_model("heavy/heavy/settings-arithmetic").prompt("What is 6 * 7?")
        assert "42" in response.text()
        summary = response.response_json["heavy"]
        assert len(summary["hypotheses"]) == 3, "n = 3 from [defaults]"
        response = llm.get_model("heavy/heavy/settings-arithmetic").prompt("What is 6 * 7?", n=2)
        response.text()
        assert len(response.response_json["heavy"]["hypotheses"]) == 2, "-o n beats the config file"
        config_file.write_text(CONFIG + 'max_steps = 0\n')
        with pytest.raises(llm.ModelError, match="max_steps"):
            llm.get_model("heavy").prompt("What is 6 * 7?").text()
    finally:
        pm.unregister(name="heavy-test-settings-models")


# --- every surface is generated from the model -------------------------------------------------------


def test_every_flag_of_ask_eval_and_serve_is_a_config_key():
    flagged = {n for c in ("ask", "eval", "serve") for n in fields_where(command=c)}
    assert {"seed", "min_successes", "tools", "verify", "max_steps", "tool_protocol", "base_url"} <= flagged
    assert flagged <= set(Defaults.model_fields), "the README promises [defaults] covers every flag"
    assert set(fields_where(config=True)) == set(Defaults.model_fields)


def test_the_flags_are_the_fields():
    for command in ("ask", "eval", "serve"):
        help_text = CliRunner().invoke(cli, [command, "--help"], terminal_width=200).stdout
        for name in fields_where(command=command):
            for flag in surface(name)["flags"]:
                assert flag in help_text, (command, flag)
    assert "[default: 8]" in CliRunner().invoke(cli, ["ask", "--help"]).stdout


def test_the_proxy_accepts_exactly_the_client_fields_with_the_model_bounds():
    honoured = {w for n in RunSettings.model_fields for w in surface(n)["client"] if "." not in w}
    assert honoured <= set(HONOURED) and honoured <= set(ChatRequest.model_fields)
    in_object = {w.split(".", 1)[1] for n in RunSettings.model_fields for w in surface(n)["client"] if "." in w}
    assert in_object == set(HeavyParams.model_fields)
    with pytest.raises(ValueError):
        ChatRequest.model_validate({"model": "heavy", "messages": [{"role": "user", "content": "x"}],
                                    "temperature": 2.5})
    with pytest.raises(ValueError):
        HeavyParams.model_validate({"n": C.MAX_N + 1})


def test_client_ceilings_are_declared_on_the_fields():
    assert ceiling("n") == C.SERVE_MAX_N == ServeSettings().max_n
    assert OptionPolicy().limits["max_tokens"] == ceiling("max_tokens")
    assert "--max-n INTEGER" in CliRunner().invoke(cli, ["serve", "--help"]).stdout
    assert f"[default: {C.SERVE_MAX_N}" in CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200).stdout


def test_heavy_config_shows_each_option_and_where_it_comes_from(config_file):
    r = CliRunner().invoke(cli, ["config", "--json"], env={"HEAVY_TIMEOUT": "30"})
    data = json.loads(r.stdout)
    assert data["run_options"]["n"] == {"value": 3, "from": "config file"}
    assert data["run_options"]["timeout"] == {"value": 30.0, "from": "environment"}
    assert data["run_options"]["temperature"] == {"value": C.DEFAULT_TEMPERATURE, "from": "built-in"}
    assert "api_key" not in data["run_options"]
    text = CliRunner().invoke(cli, ["config"], env={"HEAVY_TIMEOUT": "30"}).stdout
    assert "environment: HEAVY_TIMEOUT=30.0" in text and "strategy" in text.split("run options")[1]


def test_the_docs_table_is_the_model():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert options_table() in docs, "regenerate: python -c 'from heavy.settings import options_table; " \
                                    "print(options_table())'"


def test_layered_rejects_what_is_not_a_run_option():
    with pytest.raises(ConfigError, match="nope"):
        layered({"nope": 1})
    assert HeavyConfig().layer() == {}


def test_the_readme_config_example_is_valid(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Config file", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "config.toml"
    path.write_text(example)
    s = run_settings(cfg=load_config(path), env={})
    assert s.n == 8 and s.strategy == "vote" and s.tools == ["python"] and s.limits["openai"].rpm == 500
