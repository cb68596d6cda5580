"""docker-compose.yml and the Dockerfile hold together (no Docker engine on the build machines).

`docker compose config` validates the file when the compose plugin is installed; the structural
tests below always run: services, images, health checks, ports, volumes, start order, and an
environment that resolves to the compose services through nova_pipeline.core.connections. Issue 22:
ports on 127.0.0.1 only, no default passwords, MongoDB with authentication and the app using it. Issue 18:
Dagster's deploy_docker layout (webserver, daemon, a gRPC code location) with the instance in the compose
PostgreSQL.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import pg_url_from_config
from pymongo.uri_parser import parse_uri

from nova_pipeline.core import connections

REPO = Path(__file__).resolve().parents[2]
APP_SERVICES = ("dagster-webserver", "dagster-daemon")
DESIGN_ENV = {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_SSL",
              "MONGO_URI", "BACKUP_SCHEDULE", "BACKUP_RETENTION_DAYS", "NOVA_SPEC", "NOVA_BACKUP_KEY", "DAGSTER_HOME"}
SECRETS = {"POSTGRES_PASSWORD": "pg-secret-1", "MONGO_PASSWORD": "mongo-secret-2"}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z0-9_]+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    """A `${VAR:?message}` / `${VAR?message}` whose variable is not set: compose refuses to start."""


def _interpolate(node, env: dict[str, str]):
    """Compose's substitution of ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} from env."""
    if isinstance(node, dict):
        return {k: _interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def substitute(m: re.Match) -> str:
        name, op, arg = m.group("name", "op", "arg")
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op and op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op and op.endswith("-") and unset:
            return arg
        return value or ""

    return VARIABLE.sub(substitute, node)


@pytest.fixture(scope="module")
def raw_compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def compose(raw_compose) -> dict:
    """The file as compose resolves it with the required secrets set (as in .env) and nothing else."""
    return _interpolate(raw_compose, SECRETS)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _compose_plugin() -> bool:
    docker = shutil.which("docker")
    return bool(docker) and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_plugin(), reason="docker compose plugin not installed (structure is checked below)")
def test_docker_compose_config_accepts_the_file_and_requires_the_passwords():
    def config(env):
        clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
        return subprocess.run(["docker", "compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
                              capture_output=True, text=True, cwd=REPO, env={**clean, **env})

    done = config(SECRETS)
    assert done.returncode == 0, done.stderr
    for name in SECRETS:
        refused = config({k: v for k, v in SECRETS.items() if k != name})
        assert refused.returncode != 0 and name in refused.stderr, refused.stderr


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
    assert connections.mongo_uri() == f"mongodb://nova_admin:{SECRETS['MONGO_PASSWORD']}@mongo:27017/?authSource=admin"


def test_dockerfile_provides_what_compose_expects(services):
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = [src for line in dockerfile.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]]
    assert all((REPO / src).exists() for src in copied), [s for s in copied if not (REPO / s).exists()]
    assert {"workspace.yaml", "nova_pipeline", "data/nova.spec.yaml", "data/generate_nova.py"} <= set(copied)
    assert "WORKDIR /app" in dockerfile and "DAGSTER_HOME=/opt/dagster/home" in dockerfile
    env = services["dagster-webserver"]["environment"]
    assert env["NOVA_SPEC"] == "/app/" + "data/nova.spec.yaml" and env["DAGSTER_HOME"] == "/opt/dagster/home"
    # The image's own instance: the packaged default home's dagster.yaml (none in the repository root, where
    # `dagster dev` would warn that it "will not be used").
    assert 'cp nova_pipeline/orchestration/dagster.yaml "$DAGSTER_HOME"/' in dockerfile
    assert not (REPO / "dagster.yaml").exists()
    instance = yaml.safe_load((REPO / "nova_pipeline" / "orchestration" / "dagster.yaml").read_text())
    assert instance["telemetry"] == {"enabled": False} and instance["nux"] == {"enabled": False}
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == "nova_pipeline.orchestration.definitions"


def _published(svc) -> list[tuple[str, str]]:
    """(host address, container port) of every published port, short or long syntax."""
    out = []
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            out.append((p.get("host_ip", ""), str(p["target"])))
        else:
            parts = str(p).rsplit(":", 2)
            out.append((parts[0] if len(parts) == 3 else "", parts[-1]))
    return out


def test_ports_are_published_on_loopback_only(services):
    published = {name: _published(svc) for name, svc in services.items() if svc.get("ports")}
    assert set(published) == {"postgres", "mongo", "dagster-webserver"}
    for name, ports in published.items():
        assert ports and all(host == "127.0.0.1" for host, _ in ports), (name, ports)
    for name, svc in services.items():
        assert svc.get("network_mode") != "host", name


def test_no_password_has_a_default(raw_compose):
    text = (REPO / "docker-compose.yml").read_text()
    for m in VARIABLE.finditer(text):
        if "PASSWORD" in m["name"] or "KEY" in m["name"]:
            assert m["op"] in (None, ":?") or m["arg"] == "", m.group(0)
        if "PASSWORD" in m["name"]:
            assert m["op"] == ":?", f"{m.group(0)}: a password must be required, not defaulted"
    for name in SECRETS:
        with pytest.raises(MissingVariable, match=name):
            _interpolate(raw_compose, {k: v for k, v in SECRETS.items() if k != name})
        with pytest.raises(MissingVariable, match=name):  # set but empty is refused as well
            _interpolate(raw_compose, {**SECRETS, name: ""})
    for name, svc in raw_compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert VARIABLE.fullmatch(str(value)), (name, key, value)


def test_postgres_password_is_the_one_the_app_uses(services):
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    for name in ("nova-sample", *APP_SERVICES):
        assert services[name]["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"], name


def test_mongo_requires_authentication_and_the_app_connects_with_credentials(services, monkeypatch):
    mongo = services["mongo"]
    env = mongo["environment"]
    assert env["MONGO_INITDB_ROOT_PASSWORD"] == SECRETS["MONGO_PASSWORD"] and env["MONGO_INITDB_ROOT_USERNAME"]
    assert "--noauth" not in " ".join(mongo.get("command") or [])  # the image runs mongod --auth with a root user
    for name in ("nova-sample", *APP_SERVICES):
        app = services[name]["environment"]
        for key in ("NOVA_MONGO_URI", "MONGO_URI"):
            parsed = parse_uri(app[key])
            assert parsed["nodelist"] == [("mongo", 27017)], (name, key)
            assert (parsed["username"], parsed["password"]) == (env["MONGO_INITDB_ROOT_USERNAME"],
                                                                 SECRETS["MONGO_PASSWORD"]), (name, key)
            assert parsed["options"].get("authSource") == "admin", (name, key)
    for key in [k for k in os.environ if k.startswith(("NOVA_", "MONGO_"))]:
        monkeypatch.delenv(key)
    for key, value in services["dagster-webserver"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    assert connections.mongo_uri() == services["dagster-webserver"]["environment"]["NOVA_MONGO_URI"]


def test_readme_tells_users_to_set_the_passwords_and_to_guard_the_webserver():
    readme = (REPO / "README.md").read_text()
    docker = readme.split("## With Docker", 1)[1].split("\n## ", 1)[0]
    assert "nova_password" not in readme
    assert ".env" in docker and "POSTGRES_PASSWORD" in docker and "MONGO_PASSWORD" in docker
    security = readme.split("## Security", 1)[1].split("\n## ", 1)[0]
    assert "127.0.0.1" in security and "proxy" in security
    assert "`rollback`" in security and "`migrate`" in security


DAGSTER_SERVICES = ("nova-code", *APP_SERVICES)


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_the_code_location_is_a_grpc_server_the_webserver_and_daemon_reach(compose, services):
    code = services["nova-code"]
    command = code["command"]
    assert command[:3] == ["dagster", "code-server", "start"] and _option(command, "-h") == "0.0.0.0"
    assert _option(command, "-m") == "nova_pipeline.orchestration.definitions"
    assert code["build"] == "." and "ports" not in code  # on the compose network only
    assert code["healthcheck"]["test"][1:] == ["dagster", "api", "grpc-health-check", "-p", _option(command, "-p")]
    assert code["depends_on"] == services["dagster-webserver"]["depends_on"]
    assert {"novadata:/app/data", "dagsterhome:/opt/dagster/home"} <= set(code["volumes"])
    assert DESIGN_ENV <= set(code["environment"])

    files = {name: REPO / c["file"] for name, c in compose["configs"].items()}
    assert all(path.exists() for path in files.values()), files
    for name in DAGSTER_SERVICES:
        mounted = {c["target"]: files[c["source"]] for c in services[name]["configs"]}
        assert mounted == {"/opt/dagster/home/dagster.yaml": REPO / "deploy" / "dagster.yaml",
                           "/app/workspace.yaml": REPO / "deploy" / "workspace.yaml"}, name
        assert services[name]["environment"]["DAGSTER_HOME"] == "/opt/dagster/home", name
    [location] = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())["load_from"]
    name = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dg"]["project"]["code_location_name"]
    assert location == {"grpc_server": {"host": "nova-code", "port": int(_option(command, "-p")),
                                        "location_name": name}}
    assert _option(command, "--location-name") == name


def test_the_dagster_instance_is_stored_in_its_own_database_of_the_compose_postgres(compose, services, tmp_path,
                                                                                   monkeypatch):
    env = services["nova-code"]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    (tmp_path / "dagster.yaml").write_bytes((REPO / "deploy" / "dagster.yaml").read_bytes())
    instance, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema check
    assert set(instance["storage"]) == {"postgres"}
    storage = process_config(DagsterPostgresStorage.config_type(), instance["storage"]["postgres"])
    assert storage.success, storage.errors
    pg = services["postgres"]["environment"]
    assert pg_url_from_config(storage.value) == (
        f"postgresql+psycopg2://{pg['POSTGRES_USER']}:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/dagster")
    assert env["DAGSTER_POSTGRES_DB"] != pg["POSTGRES_DB"]  # not among the migrated tables
    init = {c["target"]: compose["configs"][c["source"]]["file"] for c in services["postgres"]["configs"]}
    sql = (REPO / init["/docker-entrypoint-initdb.d/10-dagster.sql"]).read_text()
    assert f"CREATE DATABASE {env['DAGSTER_POSTGRES_DB']} OWNER {pg['POSTGRES_USER']};" in sql
    assert instance["telemetry"] == {"enabled": False}
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
