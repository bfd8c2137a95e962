"""The config file and `heavy config`."""

import json

import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.cli import cli
from heavy.config import load_config, run_settings, write_defaults
from heavy.errors import ConfigError
from heavy.pricing import price_for


def write(tmp_path, text):
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_valid_config_feeds_heavy(tmp_path):
    cfg = load_config(write(tmp_path, """
[defaults]
model = "sim:heavy-simulated@accuracy=1"
n = 3
strategy = "vote"

[providers.sim]
concurrency = 2
rpm = 600

[prices."my-model"]
input = 1.0
output = 2.0
"""))
    kwargs = cfg.heavy_kwargs()
    assert kwargs["n"] == 3 and kwargs["limits"] == {"sim": {"concurrency": 2, "rpm": 600.0}}
    h = Heavy(**kwargs)
    assert h.n == 3 and h.strategy_name == "vote"
    assert h.ask_sync("What is 3 + 4?").answer == "7"
    cfg.apply_prices()
    assert price_for("openai", "my-model-v2").output == 2.0


@pytest.mark.parametrize("text,needle", [
    ("[defaults]\nbogus = 1\n", "defaults.bogus"),
    ("[defaults]\nn = 0\n", "defaults.n"),
    ("[providers.nosuch]\nrpm = 1\n", "providers.nosuch"),
    ("not toml at all [", "not valid TOML"),
])
def test_bad_config_is_one_clear_error(tmp_path, text, needle):
    with pytest.raises(ConfigError, match="config.toml") as info:
        load_config(write(tmp_path, text))
    assert needle in str(info.value)


def test_cli_uses_config_defaults_and_flags_win(tmp_path, monkeypatch):
    monkeypatch.setenv("HEAVY_CONFIG", str(write(tmp_path, '[defaults]\nmodel = "sim:heavy-simulated@accuracy=1"\n'
                                                            'n = 2\nstrategy = "vote"\n')))
    r = CliRunner().invoke(cli, ["ask", "--json", "What is 6 * 6?"])
    data = json.loads(r.stdout)
    assert data["answer"] == "36" and len(data["hypotheses"]) == 2 and data["strategy"] == "vote"
    r = CliRunner().invoke(cli, ["ask", "--json", "-n", "3", "-s", "judge", "What is 6 * 6?"])
    data = json.loads(r.stdout)
    assert len(data["hypotheses"]) == 3 and data["strategy"] == "judge"


def test_missing_explicit_config_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HEAVY_CONFIG", str(tmp_path / "nope.toml"))
    r = CliRunner().invoke(cli, ["ask", "What is 1 + 1?"])
    assert r.exit_code == 1 and "nope.toml" in r.stderr and "HEAVY_CONFIG" in r.stderr


def test_heavy_config_masks_keys(monkeypatch, tmp_path):
    key = "sk-test-MASKME-0123456789wxyz"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("HEAVY_CONFIG", str(write(tmp_path, "[providers.openai]\nrpm = 100\n")))
    r = CliRunner().invoke(cli, ["config"])
    assert r.exit_code == 0 and key not in r.stdout
    assert "OPENAI_API_KEY set (…wxyz" in r.stdout and "rpm" in r.stdout
    data = json.loads(CliRunner().invoke(cli, ["config", "--json"]).stdout)
    assert data["providers"]["openai"]["key"].startswith("set") and key not in json.dumps(data)
    assert data["providers"]["anthropic"]["key"] == "not set"


# --- [defaults] written by heavy tune --write-config, and a strategy's options there ---------------------


def test_write_defaults_keeps_the_file_and_refuses_what_would_not_load(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[http]\n# a comment\n\n[defaults]\nn = 2\nverify = \"python\"\ntools = [\n  \"python\",\n]\n"
                    "model = [\"sim\"]\n\n[defaults.options]\nearly_stop = true\n\n"
                    "[prices.\"x\"]\ninput = 1\noutput = 2\n")
    write_defaults({"strategy": "vote", "n": 4, "options": {"early_stop": True}}, remove={"verify", "tools"},
                   comment=["from d.jsonl"], path=path)
    text = path.read_text()
    assert text.startswith("[http]\n# a comment\n\n[defaults]\n# heavy tune: from d.jsonl\nstrategy = \"vote\"\n")
    assert "verify" not in text and "tools" not in text and "[defaults.options]" not in text
    assert 'model = ["sim"]' in text and '[prices."x"]' in text
    cfg = load_config(path)
    assert (cfg.defaults.strategy, cfg.defaults.n, cfg.defaults.options) == ("vote", 4, {"early_stop": True})
    before = path.read_text()
    with pytest.raises(ConfigError):
        write_defaults({"strategy": "vote", "options": {"no_such_option": 1}}, path=path)
    assert path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]
    fresh = tmp_path / "new" / "config.toml"
    write_defaults({"strategy": "judge", "n": 3}, comment=["x"], path=fresh)
    assert load_config(fresh).defaults.strategy == "judge"


def test_options_in_the_config_file_belong_to_its_strategy(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[defaults]\nstrategy = "crosscheck"\noptions = {early_stop = false}\n')
    cfg = load_config(path)
    assert run_settings(cfg=cfg, env={}).options == {"early_stop": False}
    assert run_settings({"strategy": "vote"}, cfg=cfg, env={}).options == {}, "another strategy does not get them"
    assert run_settings(cfg=cfg, env={"HEAVY_STRATEGY": "vote"}).options == {}
    assert run_settings({"options": {"programs": 0.5}}, cfg=cfg, env={}).options == {"programs": 0.5}
    path.write_text('[defaults]\nstrategy = "vote"\noptions = {early_stopp = true}\n')
    with pytest.raises(ConfigError, match="early_stopp"):
        load_config(path)
    r = CliRunner().invoke(cli, ["ask", "-m", "sim", "-s", "vote", "What is 2 + 2?"],
                           env={"HEAVY_CONFIG": str(tmp_path / "ok.toml")})
    assert r.exit_code == 1  # a missing HEAVY_CONFIG file is still an error
    (tmp_path / "ok.toml").write_text('[defaults]\nstrategy = "crosscheck"\noptions = {early_stop = false}\n')
    r = CliRunner().invoke(cli, ["ask", "-m", "sim", "-s", "vote", "What is 2 + 2?"],
                           env={"HEAVY_CONFIG": str(tmp_path / "ok.toml")})
    assert r.exit_code == 0 and r.stdout.strip() == "4", r.output
