"""deploy/: the compose file's replicas are valid configurations of the one image, and HAProxy accepts the
configuration they and the tests share (tests/test_replicas.py runs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import yaml

from shared.entrypoint import role_argv
from shared.settings import PROJECT_ROOT
from tests.conftest import IsolatedSettings
from tests.ports import free_port

DEPLOY = PROJECT_ROOT / "deploy"


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def resolved(environment: dict[str, str | None]) -> dict[str, str]:
    """Compose's ``${NAME:-default}`` as it is when NAME is unset; a variable passed through by name (no value)
    is then not set at all."""
    return {
        name: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
        for name, value in environment.items()
        if value is not None
    }


def replicas() -> dict[str, dict[str, Any]]:
    """The services that run the project's image."""
    return {name: service for name, service in compose()["services"].items() if "build" in service}


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


def test_each_replica_runs_the_images_entrypoint_for_its_role() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "shared.entrypoint"]' in dockerfile
    for name, service in replicas().items():
        assert "command" not in service and "entrypoint" not in service, f"{name} must run shared/entrypoint.py"
        settings = IsolatedSettings(**{key.lower(): value for key, value in resolved(service["environment"]).items()})
        argv = role_argv(settings)
        assert argv[1:] == ["-m", settings.role], f"{name} runs {argv}"
        assert (PROJECT_ROOT / settings.role / "__main__.py").exists()


def test_no_variable_has_an_empty_default() -> None:
    """``${NAME:-}`` is left as it is by podman-compose 1.0 (Debian 12's): a secret would be that text."""
    lines = (DEPLOY / "compose.yaml").read_text().splitlines()
    uses = re.findall(r"\$\{([^}]*)\}", "\n".join(line for line in lines if not line.lstrip().startswith("#")))
    assert uses, "the file interpolates the Postgres password"
    for use in uses:
        assert re.fullmatch(r"[A-Z_]+(:-[^}]+)?", use), f"${{{use}}}: pass the variable through by name instead"


def test_every_variable_given_to_a_replica_is_documented() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    for name, service in replicas().items():
        for variable in service["environment"]:
            assert f"`{variable}`" in readme, f"{name} sets {variable}, which the README's configuration lacks"
    assert "deploy/compose.yaml" in readme


def test_the_shared_services_are_wired_as_the_replicas_expect() -> None:
    document = compose()
    services = document["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        conditions = depends_on if isinstance(depends_on, dict) else {key: {} for key in depends_on}
        for needed, condition in conditions.items():
            assert needed in services, f"{name} depends on {needed}, which is not a service"
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits for {needed} to be healthy: it has no check"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in document["volumes"], f"{name} mounts an undeclared volume {source}"
    referenced = set(re.findall(r"\$\{([A-Z_]+)\}", (DEPLOY / "haproxy.cfg").read_text()))
    assert referenced == set(services["haproxy"]["environment"]), "haproxy.cfg and the compose file name the same"
    assert "noeviction" in services["redis"]["command"], "an evicting Redis would drop queued turns"
    for name, replica in replicas().items():
        env = resolved(replica["environment"])
        for variable in ("REDIS_URL", "DATABASE_URL", "QDRANT_URL"):
            assert urlsplit(env[variable]).hostname in services, f"{name}'s {variable} names no service"


def test_the_qdrant_server_suits_the_pinned_client() -> None:
    """qdrant-client warns at every start when the server is more than one minor version away."""
    pinned = re.search(r"^qdrant-client==(\d+)\.(\d+)\.", (PROJECT_ROOT / "requirements.txt").read_text(), re.M)
    tag = re.search(r":v(\d+)\.(\d+)\.", compose()["services"]["qdrant"]["image"])
    assert pinned is not None and tag is not None
    assert pinned.group(1) == tag.group(1) and abs(int(pinned.group(2)) - int(tag.group(2))) <= 1, (
        pinned.group(0),
        tag.group(0),
    )
