"""Several app instances behind one proxy share MariaDB and Redis: a login session and an API
token issued by one instance work on the other, and rate limits count across instances
(Flask-Limiter's Redis storage), so N instances do not give a client N times the budget.

Two real gunicorn processes on loopback ports, as `docker compose up --scale app=2` runs them.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import PASSWORD

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/5"

pytestmark = pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _forget_limits() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter("LIMITS*"):
        client.delete(key)


@pytest.fixture
def instances(clean_database_url: str, tmp_path: Path) -> Iterator[list[str]]:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is needed for shared rate limits: {exc}")
    _forget_limits()
    env = {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": "scale-out-test-" + "k" * 32,
        "DATABASE_URL": clean_database_url,
        "AUTO_MIGRATE": "false",
        "SESSION_COOKIE_SECURE": "false",
        "MODELS_DIR": str(tmp_path / "no-models"),
        "PRELOAD_MODELS": "false",
        "BCRYPT_ROUNDS": "4",
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_LOGIN": "4 per minute",
        "LOGIN_MAX_FAILURES": "100",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
        "GUNICORN_HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    processes, bases = [], []
    gunicorn = Path(sys.executable).parent / "gunicorn"
    for _ in range(2):
        port = _free_port()
        processes.append(
            subprocess.Popen(
                [str(gunicorn), "-c", "gunicorn_config.py", "wsgi:app"],
                cwd=REPO,
                env={**env, "GUNICORN_PORT": str(port)},
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / f"gunicorn-{port}.log").open("wb"),
            )
        )
        bases.append(f"http://127.0.0.1:{port}")
    try:
        for base, process in zip(bases, processes, strict=True):
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, (tmp_path / f"gunicorn-{base.rsplit(':', 1)[1]}.log").read_text()
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"{base} did not start"
                    time.sleep(0.2)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        _forget_limits()


class Client:
    """One browser: a cookie jar shared by every instance it talks to."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def call(self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def csrf(self, base: str) -> dict[str, str]:
        return {"X-CSRFToken": self.call("GET", base + "/api/csrf")[1]["csrf_token"]}


def test_sessions_and_tokens_from_one_instance_work_on_the_other(instances: list[str]) -> None:
    a, b = instances
    browser = Client()
    status, _ = browser.call("POST", a + "/api/register", {"email": "ada@example.com", "password": PASSWORD},
                             browser.csrf(a))  # fmt: skip
    assert status == 201
    status, body = browser.call("GET", b + "/api/user/profile")
    assert status == 200 and body["user"]["email"] == "ada@example.com"
    status, body = browser.call("POST", b + "/api/tokens", {"name": "ci"}, browser.csrf(a))  # CSRF token from A
    assert status == 201
    status, body = Client().call("GET", a + "/api/user/profile", headers={"Authorization": f"Bearer {body['token']}"})
    assert status == 200 and body["user"]["email"] == "ada@example.com"


def test_the_login_rate_limit_counts_attempts_on_every_instance(instances: list[str]) -> None:
    a, b = instances
    client = Client()
    answers = []
    for attempt in range(6):  # 4 per minute allowed in all, alternating between the instances
        base = (a, b)[attempt % 2]
        status, body = client.call(
            "POST",
            base + "/api/login",
            {"email": "nobody@example.com", "password": "Wrong-pass-123"},
            client.csrf(base),
        )
        answers.append((status, (body or {}).get("error", {}).get("code")))
    assert [status for status, _ in answers[:4]] == [401] * 4, answers
    assert answers[4] == answers[5] == (429, "rate_limited"), answers
