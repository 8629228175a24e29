"""`make run` as a newcomer meets it: a production server on the embedded default.

``scripts/run.sh`` (what ``make run`` calls) is started for real: it finds the runtime set
installed, serves through gunicorn with one process, turns ready once the bundled models are
loaded, logs one line per request, and Ctrl-C (SIGINT) stops it with exit status 0.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_make_run_serves_through_gunicorn_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "DATABASE_URL": "",
        "APP_ENV": "development",
        "LOG_LEVEL": "INFO",
    }
    env.pop("WEB_CONCURRENCY", None)
    server = subprocess.Popen(
        [str(ROOT / "scripts" / "run.sh")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/readyz")
            except (ConnectionError, urllib.error.URLError):
                time.sleep(0.2)
                continue
            if status == 200:
                ready = body
                break
            assert status == 503 and body["status"] in {"loading", "starting"}, body
            time.sleep(0.2)
        assert ready is not None, "the server never became ready"
        assert all(model["loaded"] for model in ready["models"].values())
        assert _get(f"http://127.0.0.1:{port}/api/models")[0] == 200
    finally:
        os.killpg(server.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output[-3000:]
    assert "Starting gunicorn" in output and "Booting worker" in output
    assert output.count("Booting worker") == 1, "make run serves with one process"
    assert "development server" not in output.lower()
    request_lines = [line for line in output.splitlines() if "path=/api/models" in line]
    assert len(request_lines) == 1, request_lines
