"""deploy/: the compose file's replicas are valid configurations of the one image, and HAProxy accepts the
configuration they and the tests share (tests/test_replicas.py runs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import yaml

from shared.settings import PROJECT_ROOT
from tests.conftest import IsolatedSettings
from tests.ports import free_port

DEPLOY = PROJECT_ROOT / "deploy"


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def resolved(environment: dict[str, str]) -> dict[str, str]:
    """Compose's ``${NAME:-default}`` as it is when NAME is unset."""
    return {name: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value)) for name, value in environment.items()}


def test_the_compose_file_runs_two_gateways_two_workers_and_the_shared_state() -> None:
    services = compose()["services"]
    assert set(services) == {"gateway-a", "gateway-b", "worker-1", "worker-2", "haproxy", "redis", "postgres", "qdrant"}
    roles = {name: service.get("environment", {}).get("ROLE") for name, service in services.items()}
    assert [n for n, r in roles.items() if r == "gateway"] == ["gateway-a", "gateway-b"]
    assert [n for n, r in roles.items() if r == "worker"] == ["worker-1", "worker-2"]


def test_each_replica_is_a_valid_configuration_on_the_shared_services() -> None:
    services = compose()["services"]
    balancer = services["haproxy"]["environment"]
    for name in ("gateway-a", "gateway-b", "worker-1", "worker-2"):
        env = resolved(services[name]["environment"])
        settings = IsolatedSettings(**{key.lower(): value for key, value in env.items()})
        assert settings.redis_url == "redis://redis:6379/0" and str(settings.qdrant_url) == "http://qdrant:6333/"
        assert settings.provider == "offline" and settings.admin_token is None  # secrets only from the environment
        if settings.role == "gateway":
            assert settings.trust_proxy_headers, "behind HAProxy the reader's address is in X-Forwarded-For"
            assert f"{name}:{settings.port}" in balancer.values(), "HAProxy sends sockets to this gateway"


def test_haproxy_accepts_the_configuration() -> None:
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    assert binary is not None, "haproxy is installed by `make system-deps`"
    assert compose()["services"]["haproxy"]["volumes"] == ["./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    env = {"HAPROXY_BIND": f"127.0.0.1:{free_port()}", "GATEWAY_A": "127.0.0.1:7861", "GATEWAY_B": "127.0.0.1:7862"}
    result = subprocess.run(
        [binary, "-c", "-f", str(DEPLOY / "haproxy.cfg")], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr
