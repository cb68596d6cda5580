"""docker-compose.yml and the Dockerfile hold together (no Docker engine on the build machines).

`docker compose config` validates the file when the compose plugin is installed; the structural
tests below always run: services, images, health checks, ports, volumes, start order, and an
environment that resolves to the compose services through nova_pipeline.connections.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from nova_pipeline import connections

REPO = Path(__file__).resolve().parents[1]
APP_SERVICES = ("dagster-webserver", "dagster-daemon")
DESIGN_ENV = {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_SSL",
              "MONGO_URI", "BACKUP_SCHEDULE", "BACKUP_RETENTION_DAYS", "NOVA_SPEC", "NOVA_BACKUP_KEY", "DAGSTER_HOME"}


def _interpolate(node):
    """What compose substitutes in values when no variable is set: ${VAR:-default} → default, ${VAR} → ''."""
    if isinstance(node, dict):
        return {k: _interpolate(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v) for v in node]
    if isinstance(node, str):
        return re.sub(r"\$\{[A-Z0-9_]+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", node)
    return node


@pytest.fixture(scope="module")
def compose() -> dict:
    return _interpolate(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _compose_plugin() -> bool:
    docker = shutil.which("docker")
    return bool(docker) and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_plugin(), reason="docker compose plugin not installed (structure is checked below)")
def test_docker_compose_config_accepts_the_file():
    done = subprocess.run(["docker", "compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_services_images_and_ports(services):
    assert {"postgres", "mongo", "nova-sample", *APP_SERVICES} <= set(services)
    assert services["postgres"]["image"] == "postgres:16"
    assert services["mongo"]["image"] == "mongo:7"
    published = {s: {p.split(":")[-1] for p in svc.get("ports", [])} for s, svc in services.items()}
    assert published["postgres"] == {"5432"} and published["mongo"] == {"27017"}
    assert published["dagster-webserver"] == {"3000"}


def test_webserver_and_daemon_are_built_from_the_project(services):
    for name in ("nova-sample", *APP_SERVICES):
        assert services[name]["build"] == ".", name
    assert services["dagster-webserver"]["command"][:1] == ["dagster-webserver"]
    assert services["dagster-daemon"]["command"][:2] == ["dagster-daemon", "run"]
    for name in APP_SERVICES:
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == "/app/workspace.yaml", name


def test_every_long_running_service_has_a_health_check(services):
    for name in ("postgres", "mongo", *APP_SERVICES):
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    assert services["dagster-daemon"]["healthcheck"]["test"][1:] == ["dagster-daemon", "liveness-check"]
    assert "/server_info" in " ".join(services["dagster-webserver"]["healthcheck"]["test"])


def test_start_order_waits_for_healthy_targets_and_the_sample(services):
    for name in APP_SERVICES:
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"}, "mongo": {"condition": "service_healthy"},
            "nova-sample": {"condition": "service_completed_successfully"}}, name
    command = " ".join(services["nova-sample"]["command"])
    assert "test -f /app/data/nova.sqlite ||" in command and "/app/data/generate_nova.py" in command


def test_named_volumes_are_declared_and_data_is_persistent(compose, services):
    used = {}
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            source, target = v.split(":")[:2]
            used.setdefault(source, set()).add(target)
    assert set(used) <= set(compose["volumes"]), set(used) - set(compose["volumes"])
    assert used["pgdata"] == {"/var/lib/postgresql/data"} and used["mongodata"] == {"/data/db"}
    assert used["novadata"] == {"/app/data"} and used["dagsterhome"] == {"/opt/dagster/home"}
    for name in ("nova-sample", *APP_SERVICES):
        assert {"novadata:/app/data", "dagsterhome:/opt/dagster/home"} <= set(services[name]["volumes"]), name


def test_environment_resolves_to_the_compose_services(services, monkeypatch):
    pg = services["postgres"]["environment"]
    for name in ("nova-sample", *APP_SERVICES):
        env = services[name]["environment"]
        assert DESIGN_ENV <= set(env), DESIGN_ENV - set(env)
    env = services["dagster-webserver"]["environment"]
    assert env["BACKUP_SCHEDULE"] == "0 2 * * *" and env["BACKUP_RETENTION_DAYS"] == "7"
    for key in [k for k in os.environ if k.startswith(("POSTGRES_", "NOVA_", "MONGO_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    url = connections.postgres_url_from_env()
    assert url == (f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/"
                   f"{pg['POSTGRES_DB']}?sslmode=prefer")
    assert connections.mongo_uri() == "mongodb://mongo:27017"


def test_dockerfile_provides_what_compose_expects(services):
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = [src for line in dockerfile.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]]
    assert all((REPO / src).exists() for src in copied), [s for s in copied if not (REPO / s).exists()]
    assert {"workspace.yaml", "dagster.yaml", "data/nova.spec.yaml", "data/generate_nova.py"} <= set(copied)
    assert "WORKDIR /app" in dockerfile and "DAGSTER_HOME=/opt/dagster/home" in dockerfile
    env = services["dagster-webserver"]["environment"]
    assert env["NOVA_SPEC"] == "/app/" + "data/nova.spec.yaml" and env["DAGSTER_HOME"] == "/opt/dagster/home"
    instance = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert instance["telemetry"] == {"enabled": False} and instance["nux"] == {"enabled": False}
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == "nova_pipeline.definitions"
