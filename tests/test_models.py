import pytest

from heavy.errors import ConfigError, MissingKeyError, ModelSpecError
from heavy.models import PRESETS, parse_spec


def test_openai_spec_uses_env_key_and_default_url():
    spec = parse_spec("openai:gpt-4.1", env={"OPENAI_API_KEY": "sk-test-abcdefgh"})
    assert spec.preset.name == "openai"
    assert spec.model == "gpt-4.1"
    assert spec.base_url == "https://api.openai.com/v1"
    assert spec.api_key == "sk-test-abcdefgh"
    assert "sk-test" not in repr(spec)


def test_model_id_keeps_everything_after_first_colon():
    spec = parse_spec("ollama:qwen2.5:7b", env={})
    assert spec.model == "qwen2.5:7b"
    assert spec.base_url == "http://127.0.0.1:11434/v1"
    assert spec.api_key is None


def test_missing_key_names_env_var():
    with pytest.raises(MissingKeyError) as info:
        parse_spec("xai:grok-4", env={})
    assert "XAI_API_KEY" in str(info.value)
    assert info.value.env_var == "XAI_API_KEY"


def test_explicit_base_url_needs_no_key_and_wins_over_env():
    spec = parse_spec("openai:m", base_url="http://127.0.0.1:9/v1/", env={"OPENAI_BASE_URL": "http://other/v1"})
    assert spec.base_url == "http://127.0.0.1:9/v1"
    assert spec.api_key is None


def test_base_url_env_var_is_honoured():
    spec = parse_spec("openai:m", env={"OPENAI_BASE_URL": "http://127.0.0.1:7/v1"})
    assert spec.base_url == "http://127.0.0.1:7/v1"


def test_bare_model_with_base_url_is_openai_compatible():
    spec = parse_spec("my-model", base_url="http://127.0.0.1:8/v1", env={})
    assert (spec.preset.name, spec.model) == ("openai", "my-model")


@pytest.mark.parametrize("bad", ["", "   ", "nosuch:model", "gpt-4o", "openai:"])
def test_bad_specs_are_config_errors(bad):
    with pytest.raises(ConfigError):
        parse_spec(bad, env={"OPENAI_API_KEY": "x" * 10})


def test_unknown_provider_lists_known_ones():
    with pytest.raises(ModelSpecError) as info:
        parse_spec("nosuch:model", env={})
    assert "openai" in str(info.value) and "ollama" in str(info.value)


def test_sim_and_local_have_default_models():
    assert parse_spec("sim", env={}).model == "heavy-simulated"
    assert parse_spec("local", env={}).preset.name == "local"


def test_every_preset_documents_its_env_vars():
    for preset in PRESETS.values():
        if preset.key_required:
            assert preset.key_env and preset.key_env.endswith(("_API_KEY", "_TOKEN"))
        assert preset.note
