"""ADMIN_TOKEN and REINDEX_EVERY_S: the admin API's key is a secret like the others, and checked."""

from __future__ import annotations

import pytest

from shared.settings import ConfigurationError, load_settings


def test_admin_token_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", "adm-very-secret-token-123456")
    settings = load_settings()
    assert settings.admin_token is not None
    assert "adm-very-secret-token-123456" not in repr(settings)
    assert "adm-very-secret-token-123456" in settings.secret_values()


@pytest.mark.parametrize("value", ["changeme", "short-token"])
def test_placeholder_or_short_admin_tokens_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", value)
    with pytest.raises(ConfigurationError, match="configuration error: ADMIN_TOKEN"):
        load_settings()


def test_empty_admin_token_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", "")
    monkeypatch.delenv("REINDEX_EVERY_S", raising=False)
    settings = load_settings()
    assert settings.admin_token is None and settings.reindex_every_s == 0


def test_negative_schedule_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REINDEX_EVERY_S", "-5")
    with pytest.raises(ConfigurationError, match="configuration error: REINDEX_EVERY_S"):
        load_settings()
