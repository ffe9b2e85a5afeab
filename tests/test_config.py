"""Settings precedence: defaults < config file < environment < flags."""

from __future__ import annotations

import pytest

from citewatch import config
from citewatch.config import ConfigError, Settings, apply, parse_duration


def test_durations():
    assert parse_duration("250ms") == 0.25
    assert parse_duration("3d") == 3 * 86400
    with pytest.raises(ConfigError):
        parse_duration("soon")


def test_file_then_environment_then_flags(tmp_path, monkeypatch):
    (tmp_path / "citewatch.toml").write_text(
        'concurrency = 8\nper-host = 1\nmax_age = "2h"\nconnect_to = ["a.org:443:127.0.0.1:9443"]\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CITEWATCH_CONCURRENCY", "16")
    settings, used = config.load()
    assert used and used.endswith("citewatch.toml")
    assert settings.net.concurrency == 16  # environment beats the file
    assert settings.per_host == 1
    assert settings.max_age == 7200
    assert settings.net.route("a.org", 443) == ("127.0.0.1", 9443)
    apply(settings, {"concurrency": 4}, "flags")
    assert settings.net.concurrency == 4  # flags beat everything


def test_tool_citewatch_in_pyproject(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.citewatch]\nconfirm_failures = 5\n")
    monkeypatch.chdir(tmp_path)
    settings, _ = config.load()
    assert settings.confirm_failures == 5


def test_unknown_keys_are_errors_not_silence():
    with pytest.raises(ConfigError, match="unknown setting"):
        apply(Settings(), {"concurency": 3}, "test")


def test_archive_keys_only_from_environment_and_not_in_digest(monkeypatch):
    monkeypatch.setenv("IA_ACCESS_KEY", "ACCESS123")
    monkeypatch.setenv("IA_SECRET_KEY", "SECRET456")
    assert config.archive_keys() == ("ACCESS123", "SECRET456")
    settings = Settings()
    assert "SECRET456" not in repr(settings) and "SECRET456" not in settings.digest()


@pytest.mark.parametrize(
    ("access", "secret", "message"),
    [
        ("ACCESS123", "", "IA_ACCESS_KEY is set but IA_SECRET_KEY is not"),
        ("", "SECRET456", "IA_SECRET_KEY is set but IA_ACCESS_KEY is not"),
        ("ACC ESS", "SECRET456", "IA_ACCESS_KEY holds characters"),
        ("ACCESS123", "SEC\nRET", "IA_SECRET_KEY holds characters"),
        ("ACCESS123", "SECRÉT", "IA_SECRET_KEY holds characters"),
    ],
)
def test_archive_keys_set_wrongly_are_named_never_shown(monkeypatch, access, secret, message):
    """Half a key pair would silently mean anonymous captures; a key with a line break would
    break every request's header. Either is a usage error that names the variable, not its value."""
    monkeypatch.setenv("IA_ACCESS_KEY", access)
    monkeypatch.setenv("IA_SECRET_KEY", secret)
    with pytest.raises(ConfigError, match=message) as caught:
        config.archive_keys()
    for value in (access, secret):
        assert not value or value not in str(caught.value)


def test_no_archive_keys_means_anonymous(monkeypatch):
    monkeypatch.delenv("IA_ACCESS_KEY", raising=False)
    monkeypatch.setenv("IA_SECRET_KEY", "  ")
    assert config.archive_keys() is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"allow_private": "false"}, ("net.allow_private", False)),
        ({"allow_private": "yes"}, ("net.allow_private", True)),
        ({"one_shot": "no"}, ("one_shot", False)),
        ({"per_host": "2"}, ("per_host", 2)),
        ({"ignore": "https://ads.example/*"}, ("ignore", ["https://ads.example/*"])),
        ({"timeout": 2}, ("net.timeout", 2.0)),
    ],
)
def test_config_values_are_typed_not_truthy(values, expected):
    settings = apply(Settings(), values, "citewatch.toml")
    target, attribute = expected[0].split(".") if "." in expected[0] else (None, expected[0])
    holder = settings.net if target == "net" else settings
    assert getattr(holder, attribute) == expected[1]


@pytest.mark.parametrize(
    "values",
    [
        {"concurrency": "many"},
        {"concurrency": 0},
        {"allow_private": "maybe"},
        {"confirm_failures": "x"},
        {"ignore": 5},
        {"connect_to": 5},
        {"timeout": -1},
    ],
)
def test_bad_config_values_are_config_errors(values):
    with pytest.raises(ConfigError):
        apply(Settings(), values, "citewatch.toml")
