"""Settings from the environment and .env: a wrong value stops start-up with the variable's name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatscribe.core.config import Settings, load
from chatscribe.core.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what each test sets: no CHATSCRIBE_* from the shell, no .env from the project folder."""
    for name in list(os.environ):
        if name.startswith("CHATSCRIBE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("value", ["http", "70000", "-1", "80.5"])
def test_bad_http_port_names_the_variable(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSCRIBE_HTTP_PORT", value)
    with pytest.raises(ConfigError) as caught:
        load(Settings)
    assert "CHATSCRIBE_HTTP_PORT" in caught.value.user_message


@pytest.mark.parametrize("value", ["fast", "20", "20/fortnight", "/min"])
def test_bad_user_rate_names_the_variable_and_the_expected_form(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSCRIBE_USER_RATE", value)
    with pytest.raises(ConfigError) as caught:
        load(Settings)
    assert "CHATSCRIBE_USER_RATE" in caught.value.user_message
    assert "20/min" in caught.value.user_message


def test_every_wrong_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSCRIBE_HTTP_PORT", "http")
    monkeypatch.setenv("CHATSCRIBE_DEVICE", "tpu")
    with pytest.raises(ConfigError) as caught:
        load(Settings)
    assert "CHATSCRIBE_HTTP_PORT" in caught.value.user_message
    assert "CHATSCRIBE_DEVICE" in caught.value.user_message


def test_good_values_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSCRIBE_HTTP_PORT", "9000")
    monkeypatch.setenv("CHATSCRIBE_USER_RATE", " 5 / hour ")
    monkeypatch.setenv("CHATSCRIBE_LANGUAGES", "EN, de,")
    settings = load(Settings)
    assert settings.http_port == 9000
    assert settings.rate_per_s == (5, 3600.0)
    assert settings.expected_languages == ("en", "de")


def test_an_empty_user_rate_means_unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSCRIBE_USER_RATE", "")
    assert load(Settings).rate_per_s is None


def test_dot_env_in_the_working_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# chatscribe settings\nCHATSCRIBE_MODEL=tiny.en\nCHATSCRIBE_HTTP_PORT=8123\nCHATSCRIBE_API_KEYS=k1, k2\n"
    )
    settings = load(Settings)
    assert settings.model == "tiny.en"
    assert settings.http_port == 8123
    assert settings.api_key_list == ("k1", "k2")
    assert "k1" not in repr(settings)  # a secret, never printed with the settings


def test_the_environment_wins_over_dot_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("CHATSCRIBE_MODEL=tiny.en\n")
    monkeypatch.setenv("CHATSCRIBE_MODEL", "base")
    assert load(Settings).model == "base"


def test_a_bad_value_in_dot_env_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CHATSCRIBE_HTTP_PORT=eighty\n")
    with pytest.raises(ConfigError) as caught:
        load(Settings)
    assert "CHATSCRIBE_HTTP_PORT" in caught.value.user_message


def test_expected_languages_are_checked_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSCRIBE_LANGUAGES", "en,german")
    with pytest.raises(ConfigError) as caught:
        load(Settings)
    assert "CHATSCRIBE_LANGUAGES" in caught.value.user_message
    assert "german" in caught.value.user_message
