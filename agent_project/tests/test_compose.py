"""docker-compose.yml, checked where Docker cannot run: valid against the Compose
Specification's JSON schema, and shaped as production needs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_valid_against_the_compose_specification(compose):
    schema = json.loads((Path(__file__).parent / "compose_spec.json").read_text())
    # The spec names draft 2019-09 by a URL jsonschema does not know; say which draft it is.
    jsonschema.Draft201909Validator(schema).validate(compose)


def test_services(compose):
    assert {"db", "redis", "migrate", "web", "worker"} == set(compose["services"])


def test_postgres_is_pgvector_with_a_volume_and_a_health_check(compose):
    db = compose["services"]["db"]
    assert db["image"].startswith("pgvector/pgvector:")
    assert any(v.split(":")[0] in compose["volumes"] for v in db["volumes"])
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])


def test_web_is_gunicorn_sized_from_the_environment_with_a_health_check(compose):
    web = compose["services"]["web"]
    assert web["command"][0] == "gunicorn" and "agent_project.wsgi" in web["command"]
    assert web["environment"]["WEB_CONCURRENCY"].startswith("${WEB_CONCURRENCY")
    conf = (ROOT / "agent_project" / "gunicorn_conf.py").read_text()
    assert 'os.environ.get("WEB_CONCURRENCY"' in conf
    assert "/health" in " ".join(web["healthcheck"]["test"])


def test_worker_runs_the_cluster_and_serves_its_metrics(compose):
    worker = compose["services"]["worker"]
    assert worker["command"] == ["python", "manage.py", "run_worker"]
    port = worker["environment"]["WORKER_METRICS_PORT"]
    assert worker["environment"]["PROMETHEUS_MULTIPROC_DIR"] and int(port) > 0
    assert worker["expose"] == [port] and "ports" not in worker  # inside the compose network only


def test_migrations_and_schedules_run_once_before_web_and_worker(compose):
    migrate = compose["services"]["migrate"]
    assert "manage.py migrate" in migrate["command"][-1] and "setup_schedules" in migrate["command"][-1]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        assert compose["services"][name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_app_services_read_env_and_share_redis_and_postgres(compose):
    for name in ("migrate", "web", "worker"):
        service = compose["services"][name]
        assert service["env_file"] == ".env"
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert "@db:5432/" in service["environment"]["DATABASE_URL"]
    assert compose["services"]["redis"]["image"].startswith("redis:")


def test_every_interpolated_variable_is_documented_in_env_example(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    documented = set(re.findall(r"^#?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert used - documented == set()


def test_dockerfile_runs_gunicorn_with_the_shared_config():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"torch==2.13.0"' in dockerfile
    assert 'CMD ["gunicorn", "-c", "agent_project/gunicorn_conf.py", "agent_project.wsgi"]' in dockerfile
