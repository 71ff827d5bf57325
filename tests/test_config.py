from __future__ import annotations

from pathlib import Path

import pytest

from parley.config import BUILT_FEATURES, ConversationConfig, EngineKind, load_settings
from parley.errors import ConfigError


def test_defaults_work_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("PARLEY_"):
            monkeypatch.delenv(key)
    s = load_settings()
    assert s.engine is EngineKind.LOCAL and s.brain == "echo" and s.host == "127.0.0.1"
    assert s.twilio_auth_token is None


def test_precedence_dict_over_env_over_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "parley.yaml"
    cfg.write_text(
        "port: 7000\nworkers: 2\nbrain: template\n"
        "conversation:\n  system_prompt: from yaml\n  voice: joe\n"
    )
    monkeypatch.setenv("PARLEY_PORT", "7100")
    monkeypatch.setenv("PARLEY_CONVERSATION__SYSTEM_PROMPT", "from env")
    monkeypatch.setenv("PARLEY_TWILIO_AUTH_TOKEN", "secret")
    s = load_settings(cfg, overrides={"workers": 3})
    assert s.port == 7100  # env beats yaml
    assert s.workers == 3  # dict beats yaml
    assert s.brain == "template"  # yaml beats default
    assert s.conversation.system_prompt == "from env"  # nested env with __
    assert s.twilio_auth_token is not None
    assert s.twilio_auth_token.get_secret_value() == "secret"


def test_invalid_setting_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides={"port": 70000})
    assert info.value.field == "port"
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("conversation:\n  max_context_size: -1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert info.value.field == "conversation.max_context_size"


def test_unknown_keys_and_brains_are_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides={"prot": 1})
    assert info.value.field == "prot"
    with pytest.raises(ConfigError, match="needs a model"):
        load_settings(overrides={"brain": "openai"})
    with pytest.raises(ConfigError, match="unknown brain"):
        load_settings(overrides={"brain": "gpt"})


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings("/nonexistent/parley.yaml")
    assert info.value.field == "config"


def test_the_analytics_switches_are_accepted() -> None:
    config = ConversationConfig(enable_analytics=True, track_costs=True, track_engagement=True)
    assert config.enable_analytics and config.track_costs and config.track_engagement
    settings = load_settings(
        overrides={"conversation": {"enable_analytics": True, "track_costs": True}}
    )
    assert settings.conversation.enable_analytics and settings.conversation.track_costs


def test_every_feature_switch_of_the_seed_is_built() -> None:
    # Each switch is refused until its feature lands (BUILT_FEATURES); all of them have.
    from parley.config import _FEATURE_SWITCHES

    assert set(_FEATURE_SWITCHES) <= BUILT_FEATURES


def test_production_switches_are_accepted() -> None:
    """The seed's security and caching switches are built (issue 10)."""
    config = ConversationConfig(enable_auth=True, rate_limit_per_minute=60, enable_caching=True)
    assert config.enable_auth and config.rate_limit_per_minute == 60 and config.enable_caching
