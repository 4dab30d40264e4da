"""Configuration: environment variables in, one clear line out when something is wrong."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.settings import ConfigurationError, Settings, load_settings


def run_module(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COHERE_", "QDRANT_"))}
    return subprocess.run(
        [sys.executable, "-m", module], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "not-a-port"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"QDRANT_URL": "not a url"}, "QDRANT_URL"),
        ({"COHERE_API_KEY": "changeme"}, "COHERE_API_KEY"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"QDRANT_COLLECTION": "bad name!"}, "QDRANT_COLLECTION"),
    ],
)
@pytest.mark.parametrize("module", ["gateway", "worker"])
def test_bad_configuration_stops_with_one_line(module: str, env: dict[str, str], variable: str) -> None:
    result = run_module(module, env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"configuration error: {variable}:")
    assert "Traceback" not in result.stderr


def test_secret_values_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHERE_API_KEY", "sk-very-secret-value-123")
    settings = load_settings()
    assert "sk-very-secret-value-123" not in repr(settings)
    assert "sk-very-secret-value-123" not in settings.model_dump_json()
    assert settings.provider == "cohere"


def test_defaults_run_with_no_account(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "QDRANT_URL", "REDIS_URL", "COHERE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.port == 7860 and settings.qdrant_url is None
    assert settings.effective_redis_url.startswith("unix://")


def test_empty_key_means_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHERE_API_KEY", "")
    assert load_settings().provider == "offline"


def test_configuration_error_is_a_clean_exit() -> None:
    with pytest.raises(ConfigurationError, match="configuration error: RETRIEVAL_TOP_K"):
        load_settings(retrieval_top_k=0)


@pytest.mark.parametrize(
    ("env", "trusted"),
    [
        ({}, False),
        ({"SPACE_ID": "reader/physical-ai-tutor"}, True),
        ({"SPACE_ID": "reader/physical-ai-tutor", "TRUST_PROXY_HEADERS": "false"}, False),
        ({"TRUST_PROXY_HEADERS": "true"}, True),
    ],
)
def test_on_a_space_the_proxy_is_trusted_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], trusted: bool
) -> None:
    for name in ("SPACE_ID", "TRUST_PROXY_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings().trust_proxy_headers is trusted
