"""Configuration from the environment and the deployment recipes (Dockerfile, compose, gunicorn)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from config import ConfigError, build_config
from database.session import normalise_url

ROOT = Path(__file__).resolve().parent.parent


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        build_config({"APP_ENV": "production", "INSTANCE_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="32"):
        build_config({"APP_ENV": "production", "SECRET_KEY": "short", "INSTANCE_DIR": str(tmp_path)})


def test_production_defaults_to_secure_cookies(tmp_path: Path) -> None:
    config = build_config({"APP_ENV": "production", "SECRET_KEY": "k" * 40, "INSTANCE_DIR": str(tmp_path)})
    assert config["SESSION_COOKIE_SECURE"] is True and config["BCRYPT_ROUNDS"] == 12
    blank = build_config(
        {"APP_ENV": "production", "SECRET_KEY": "k" * 40, "INSTANCE_DIR": str(tmp_path), "SESSION_COOKIE_SECURE": ""}
    )
    assert blank["SESSION_COOKIE_SECURE"] is True  # an empty line copied from .env.example keeps the default


def test_development_generates_a_secret_key_once_and_keeps_it(tmp_path: Path) -> None:
    first = build_config({"INSTANCE_DIR": str(tmp_path)})["SECRET_KEY"]
    second = build_config({"INSTANCE_DIR": str(tmp_path)})["SECRET_KEY"]
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_the_default_database_is_an_absolute_sqlite_file_in_the_instance_folder(tmp_path: Path) -> None:
    url = build_config({"INSTANCE_DIR": str(tmp_path)})["DATABASE_URL"]
    assert url == f"sqlite:///{tmp_path.resolve()}/moodlens.db"


def test_limits_and_switches_come_from_the_environment(tmp_path: Path) -> None:
    config = build_config(
        {
            "INSTANCE_DIR": str(tmp_path),
            "MAX_UPLOAD_MB": "5",
            "MAX_TEXT_CHARS": "100",
            "KEEP_UPLOADS": "yes",
            "RATELIMIT_ENABLED": "off",
            "RATELIMIT_STORAGE_URI": "redis://redis:6379/0",
        }
    )
    assert config["MAX_CONTENT_LENGTH"] == 5 * 1024 * 1024 and config["MAX_TEXT_CHARS"] == 100
    assert config["KEEP_UPLOADS"] is True and config["RATELIMIT_ENABLED"] is False
    assert config["RATELIMIT_STORAGE_URI"] == "redis://redis:6379/0"
    assert build_config({"INSTANCE_DIR": str(tmp_path)})["KEEP_UPLOADS"] is False
    with pytest.raises(ConfigError):
        build_config({"INSTANCE_DIR": str(tmp_path), "MAX_UPLOAD_MB": "lots"})
    with pytest.raises(ConfigError):
        build_config({"INSTANCE_DIR": str(tmp_path), "KEEP_UPLOADS": "perhaps"})


def test_mysql_urls_use_pymysql_and_utf8mb4() -> None:
    assert normalise_url("mysql://u:p@db/moodlens") == "mysql+pymysql://u:p@db/moodlens?charset=utf8mb4"
    kept = normalise_url("mysql+pymysql://u:p@db/moodlens?charset=utf8mb4")
    assert kept == "mysql+pymysql://u:p@db/moodlens?charset=utf8mb4"


def test_env_example_documents_every_variable_config_reads() -> None:
    source = (ROOT / "config.py").read_text()
    names = set(re.findall(r'env(?:\.get)?\(\s*"([A-Z_]+)"', source))
    names |= set(re.findall(r'_env_\w+\(env, "([A-Z_]+)"', source))
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert names, "no variables found in config.py"
    assert names <= documented, f"undocumented: {sorted(names - documented)}"


def test_the_dockerfile_builds_a_slim_image_from_the_runtime_lock_that_runs_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)
    assert "ffmpeg" in dockerfile
    assert "pip install --require-hashes -r requirements.txt" in dockerfile
    assert "torch" not in dockerfile and "tensorflow" not in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert "gunicorn -c gunicorn_config.py wsgi:app" in dockerfile


def test_the_runtime_lock_has_no_training_framework_and_every_lock_pins_hashes() -> None:
    runtime = (ROOT / "requirements.txt").read_text()
    pinned = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", runtime, re.MULTILINE | re.IGNORECASE))
    assert {"onnxruntime", "tokenizers", "flask", "gunicorn"} <= pinned
    assert not pinned & {"tensorflow", "tensorflow-cpu", "torch", "transformers", "keras", "scikit-learn"}
    train = (ROOT / "requirements-train.txt").read_text()
    assert re.search(r"^torch==2\.13\.0", train, re.MULTILINE) and "tensorflow-cpu==" in train
    for lock in ("requirements.txt", "requirements-train.txt", "requirements-dev.txt"):
        text = (ROOT / lock).read_text()
        requirements = re.findall(r"^[a-z0-9][^\s]*==\S+", text, re.MULTILINE | re.IGNORECASE)
        hashed = re.findall(r"^[a-z0-9]\S*==\S+ \\\n\s+--hash=sha256:", text, re.MULTILINE | re.IGNORECASE)
        assert requirements and len(hashed) == len(requirements), f"{lock}: every pin needs its hashes"


def test_gunicorn_loads_the_app_after_forking() -> None:
    namespace: dict[str, object] = {}
    exec((ROOT / "gunicorn_config.py").read_text(), namespace)
    assert namespace["preload_app"] is False
    assert namespace["worker_class"] in {"sync", "gthread"}
    assert 1 <= int(namespace["workers"]) <= 8  # type: ignore[call-overload]


def test_compose_runs_the_app_with_mysql_and_redis_after_a_healthy_database() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"app", "db", "redis"} <= set(services)
    assert services["db"]["image"].startswith("mysql:8")
    assert "healthcheck" in services["db"] and any("mysql" in v for v in services["db"]["volumes"])
    assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"
    # one migration run before any replica starts, so `--scale app=3` never races on alembic
    assert " ".join(services["migrate"]["command"]) == "alembic upgrade head"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "alembic" not in " ".join(services["app"]["command"])
    assert services["app"]["environment"]["AUTO_MIGRATE"] == "false"
    env = services["app"]["environment"]
    assert env["RATELIMIT_STORAGE_URI"].startswith("redis://")
    assert "charset=utf8mb4" in env["DATABASE_URL"]


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _compose_available(), reason="the docker client with the compose plugin is not installed")
def test_docker_compose_accepts_the_file() -> None:
    env = {**os.environ, "SECRET_KEY": "k" * 40, "MYSQL_PASSWORD": "pw", "MYSQL_ROOT_PASSWORD": "rootpw"}
    result = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_env_example_leaves_the_development_server_on_localhost_5000() -> None:
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert not {"HOST", "PORT"} & documented  # app.py reads these; a copied .env must not expose it
    assert {"GUNICORN_HOST", "GUNICORN_PORT"} <= documented
    source = (ROOT / "app.py").read_text()
    assert 'os.environ.get("HOST", "127.0.0.1")' in source and 'os.environ.get("PORT", "5000")' in source


def test_gunicorn_binds_from_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    def bind() -> object:
        namespace: dict[str, object] = {}
        exec((ROOT / "gunicorn_config.py").read_text(), namespace)
        return namespace["bind"]

    for name in ("GUNICORN_HOST", "GUNICORN_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOST", "203.0.113.9")
    monkeypatch.setenv("PORT", "1234")
    assert bind() == "0.0.0.0:8000"
    monkeypatch.setenv("GUNICORN_HOST", "127.0.0.1")
    monkeypatch.setenv("GUNICORN_PORT", "9000")
    assert bind() == "127.0.0.1:9000"


def test_compose_runs_a_job_worker_on_the_redis_queue_beside_the_app() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    worker = services["worker"]
    assert worker["command"][:2] == ["huey_consumer", "worker.huey"]
    assert worker["environment"]["JOBS_BROKER_URL"] == services["app"]["environment"]["JOBS_BROKER_URL"]
    assert worker["environment"]["JOBS_BROKER_URL"].startswith("redis://redis:")
    assert worker["volumes"] == services["app"]["volumes"]  # the uploads the app keeps for the worker


def test_make_run_starts_the_worker_beside_gunicorn_and_stops_both() -> None:
    script = (ROOT / "scripts" / "run.sh").read_text()
    assert "scripts/worker.sh &" in script and "trap stop INT TERM EXIT" in script
    assert "huey_consumer worker.huey" in (ROOT / "scripts" / "worker.sh").read_text()
