"""A few slow clients must not freeze the app: the compose nginx in front of a real gunicorn, on loopback.

gunicorn's threads read request bodies themselves: 12 sockets that announce
``Content-Length: 100000`` and then send one byte every 2 s hold every thread, and health
and profile probes time out. nginx (deploy/nginx/moodlens.conf.template, rendered here as
compose renders it) buffers whole requests and drops stalled ones, so gunicorn only sees
complete requests. The test is bounded: about 12 s of dripping, probes with a 5 s timeout.

nginx is a dev system package (``scripts/setup.sh --dev``); without it the test is skipped,
unless REQUIRE_NGINX=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SLOW_BODIES = 12
SLOW_HEADERS = 10
GUNICORN_THREADS = 4


def _nginx() -> str | None:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None and os.environ.get("REQUIRE_NGINX") == "1":
        pytest.fail("nginx is required (REQUIRE_NGINX=1); scripts/setup.sh --dev installs it")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="module")
def gunicorn_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real gunicorn (one gthread worker, 4 threads) on an SQLite database, bound to loopback."""
    folder = tmp_path_factory.mktemp("gunicorn")
    port = _free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "SECRET_KEY": "slow-client-test-" + "x" * 32,
        "INSTANCE_DIR": str(folder),
        "DATABASE_URL": f"sqlite:///{folder / 'moodlens.db'}",
        "AUTO_MIGRATE": "true",
        "PRELOAD_MODELS": "false",
        "RATELIMIT_ENABLED": "false",
        "RATELIMIT_STORAGE_URI": "memory://",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": str(GUNICORN_THREADS),
        "GUNICORN_HOST": "127.0.0.1",
        "GUNICORN_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    log = (folder / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn_config.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/healthz")
        yield port
    finally:
        _stop(process)
        log.close()


@pytest.fixture(scope="module")
def nginx_port(gunicorn_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The compose nginx template, filled in as the nginx image does, in front of that gunicorn."""
    binary = _nginx()
    if binary is None:
        pytest.skip("nginx is not installed (scripts/setup.sh --dev installs it)")
    folder = tmp_path_factory.mktemp("nginx")
    port = _free_port()
    server = (ROOT / "deploy/nginx/moodlens.conf.template").read_text()
    for name, value in {
        "NGINX_PORT": f"127.0.0.1:{port}",
        "APP_UPSTREAM": f"127.0.0.1:{gunicorn_port}",
        "MAX_UPLOAD_MB": "20",
    }.items():
        server = server.replace("${" + name + "}", value)
    (folder / "moodlens.conf").write_text(server)
    user = "user root;\n" if os.geteuid() == 0 else ""
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "".join(f"    {kind}_temp_path {folder / kind};\n" for kind in kinds)
    (folder / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log off;\n{temp}    include {folder / 'moodlens.conf'};\n}}\n"
    )
    process = subprocess.Popen(
        [binary, "-p", str(folder), "-c", str(folder / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/healthz", 10)
        yield port
    finally:
        _stop(process)


class SlowClients:
    """Sockets that announce a body (or headers) and then send one byte every 2 s."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: list[tuple[socket.socket, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)

    def open(self, bodies: int, headers: int) -> SlowClients:
        for _ in range(bodies):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(
                b"POST /api/predict/text HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n{"
            )
            self.sockets.append((sock, b" "))
        for _ in range(headers):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(b"GET /api/user/profile HTTP/1.1\r\nHost: localhost\r\n")
            self.sockets.append((sock, b"X-Slow: 1\r\n"))
        self._thread.start()
        return self

    def _drip(self) -> None:
        while not self._stop.wait(2.0):
            for entry in list(self.sockets):
                try:
                    entry[0].sendall(entry[1])
                except OSError:  # the server dropped it (nginx: a header that took too long)
                    self.sockets.remove(entry)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock, _ in self.sockets:
            sock.close()


def _probe(port: int, path: str, timeout: float) -> int | None:
    """The status of one request, or None when it did not answer in time."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def test_probes_keep_answering_through_nginx_while_slow_clients_drip(nginx_port: int) -> None:
    slow = SlowClients(nginx_port).open(bodies=SLOW_BODIES, headers=SLOW_HEADERS)
    try:
        time.sleep(1.0)  # let every slow request reach its drip
        answers = []
        for n in range(10):
            answers.append(_probe(nginx_port, "/healthz" if n % 2 == 0 else "/api/user/profile", timeout=5))
            time.sleep(1.0)
    finally:
        slow.close()
    print(f"through nginx: {answers.count(None)} of {len(answers)} probes timed out (5 s)")
    assert answers == [200, 401] * 5, f"probes that timed out are None: {answers}"


def test_without_the_proxy_the_same_slow_clients_hold_every_gunicorn_thread(gunicorn_port: int) -> None:
    """Why nginx is there: gunicorn alone has no body-read timeout, and its threads wait on the slow bodies."""
    slow = SlowClients(gunicorn_port).open(bodies=SLOW_BODIES, headers=0)
    try:
        time.sleep(1.0)
        answers = [_probe(gunicorn_port, "/healthz", timeout=3) for _ in range(3)]
    finally:
        slow.close()
    print(f"gunicorn alone: {answers.count(None)} of {len(answers)} probes timed out (3 s)")
    assert None in answers, f"gunicorn answered every probe despite {SLOW_BODIES} slow bodies: {answers}"
