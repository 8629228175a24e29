"""Production security settings: HSTS by default, shared rate-limit storage, nginx in front of gunicorn."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError, build_config, check_rate_limit_storage

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {"APP_ENV": "production", "SECRET_KEY": "k" * 40}


def test_production_refuses_per_process_rate_limits_with_several_workers(tmp_path: Path) -> None:
    """With memory:// two gunicorn workers let 20 logins through "10 per minute": refuse to start instead."""
    settings = build_config({**PRODUCTION, "INSTANCE_DIR": str(tmp_path), "WEB_CONCURRENCY": "2"})
    with pytest.raises(ConfigError, match=r"RATELIMIT_STORAGE_URI=memory:// counts per process.*redis://"):
        check_rate_limit_storage(settings)
    for fine in ({"WEB_CONCURRENCY": "1"}, {"RATELIMIT_STORAGE_URI": "redis://redis:6379/0"}):
        check_rate_limit_storage(build_config({**PRODUCTION, "INSTANCE_DIR": str(tmp_path), **fine}))
    check_rate_limit_storage(build_config({"INSTANCE_DIR": str(tmp_path), "WEB_CONCURRENCY": "4"}))  # development


def test_the_app_factory_refuses_it_too(app_factory: Any) -> None:
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY"):
        app_factory({**PRODUCTION, "RATELIMIT_ENABLED": True, "WEB_CONCURRENCY": 3})


def test_hsts_is_on_by_default_in_production_and_sent_on_https_responses(app_factory: Any) -> None:
    assert build_config({**PRODUCTION, "INSTANCE_DIR": "/tmp"})["HSTS"] is True
    assert build_config({"INSTANCE_DIR": "/tmp"})["HSTS"] is False
    app = app_factory({**PRODUCTION, "HSTS": True, "TRUST_PROXY": 1, "WEB_CONCURRENCY": 1})
    client = app.test_client()
    via_tls_proxy = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert via_tls_proxy.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "Strict-Transport-Security" not in client.get("/healthz").headers  # browsers ignore it over HTTP


def test_hsts_can_be_switched_off_and_its_max_age_set(tmp_path: Path) -> None:
    config = build_config({**PRODUCTION, "INSTANCE_DIR": str(tmp_path), "HSTS": "false", "HSTS_MAX_AGE": "600"})
    assert config["HSTS"] is False and config["HSTS_MAX_AGE"] == 600


def test_compose_publishes_only_nginx_which_buffers_requests_and_drops_slow_clients() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "ports" not in services["app"], "gunicorn's port must not be published"
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:") and proxy["ports"]
    assert any("deploy/nginx/moodlens.conf.template" in volume for volume in proxy["volumes"])
    env = services["app"]["environment"]
    assert env["HSTS"] == "${HSTS:-true}" and env["TRUST_PROXY"] == "${TRUST_PROXY:-1}"
    assert env["RATELIMIT_STORAGE_URI"].startswith("redis://")
    conf = (ROOT / "deploy/nginx/moodlens.conf.template").read_text()
    for directive in (
        r"client_body_timeout \d+s;",
        r"client_header_timeout \d+s;",
        r"client_max_body_size \$\{MAX_UPLOAD_MB\}m;",
        r"proxy_request_buffering on;",
        r"proxy_buffering on;",
        r"proxy_pass http://moodlens_app;",
    ):
        assert re.search(directive, conf), directive


def test_gunicorn_takes_its_timeouts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUNICORN_TIMEOUT", "45")
    monkeypatch.setenv("GUNICORN_KEEPALIVE", "3")
    namespace: dict[str, object] = {}
    exec((ROOT / "gunicorn_config.py").read_text(), namespace)
    assert (namespace["timeout"], namespace["keepalive"]) == (45, 3)


def test_the_readme_states_the_rate_limits() -> None:
    readme = (ROOT / "README.md").read_text()
    for limit in ("30 per minute", "10 per minute", "RATELIMIT_PREDICT", "redis://"):
        assert limit in readme, limit
