"""The config file and `heavy config`."""

import json

import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.cli import cli
from heavy.config import load_config
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
