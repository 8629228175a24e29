"""Scale-out on one machine, the shape of ``docker compose up --scale app=3``, without Docker:
N gunicorn instances on loopback ports behind a local nginx, one MariaDB, one Redis.

    python -m benchmarks.scaleout                  # 1, 2 and 3 instances, then the failure drills
    python -m benchmarks.scaleout --instances 1,3 --duration 5

1. Throughput of ``POST /api/predict/text`` through nginx with 1, 2 and 3 instances (wrk, the
   same connections each time), beside ``/healthz`` through the same nginx.
2. Kill one instance (SIGKILL) in the middle of a load of text predictions whose clients retry
   with their ``Idempotency-Key``: every acknowledged (201) prediction must be in the database,
   none twice, no 500.
3. Cut the database (a TCP relay between the app and MariaDB) for a few seconds under the same
   load: answers are 503 with Retry-After, never 500; acknowledged predictions are all stored once.

Each instance runs WEB_CONCURRENCY workers (default 1 here, so N instances = N workers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from benchmarks.load import (
    DEFAULT_DATABASE_URL,
    REPO,
    TEXT,
    Endpoint,
    prepare_database,
    run_wrk,
    start_gunicorn,
    stop,
)
from benchmarks.tcp_relay import TcpRelay

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream app {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 25m;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # a refused connection (instance down) moves to the next one; a POST already sent is not replayed
            proxy_next_upstream error timeout http_502;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


def start_nginx(ports: list[int], port: int, prefix: Path) -> subprocess.Popen:
    prefix.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in ports)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, servers=servers, port=port), encoding="utf-8")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
            return process
        except OSError:
            time.sleep(0.2)
    raise SystemExit("nginx did not start; see " + str(prefix / "error.log"))


class RetryingClients:
    """``threads`` clients posting texts, each retrying a failed POST with the same key."""

    def __init__(self, base: str, token: str, threads: int = 8) -> None:
        self.base, self.token, self.threads = base, token, threads
        self.acknowledged: dict[str, int] = {}  # key -> prediction id
        self.statuses: dict[int, int] = {}
        self.replays = 0
        self.lock = threading.Lock()
        self.running = threading.Event()

    def _post(self, key: str) -> tuple[int, Any, dict[str, str]]:
        request = urllib.request.Request(
            self.base + "/api/predict/text",
            data=json.dumps({"text": TEXT}).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Idempotency-Key": key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read()), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, None, dict(error.headers)
        except OSError:
            return 0, None, {}  # connection reset or refused: retry

    def _client(self) -> None:
        while self.running.is_set():
            key = uuid.uuid4().hex
            for _attempt in range(60):
                status, body, headers = self._post(key)
                with self.lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 201:
                    with self.lock:
                        self.acknowledged[key] = body["id"]
                        self.replays += headers.get("Idempotent-Replayed") == "true"
                    break
                if status not in {0, 502, 503, 504}:
                    break
                time.sleep(min(float(headers.get("Retry-After") or 0.2), 0.5))

    def run(self, seconds: float, during: Any = None) -> None:
        self.running.set()
        workers = [threading.Thread(target=self._client, daemon=True) for _ in range(self.threads)]
        for worker in workers:
            worker.start()
        if during is not None:
            during()
        time.sleep(seconds)
        self.running.clear()
        for worker in workers:
            worker.join(timeout=60)


def check_stored(url: str, user_id: int, clients: RetryingClients) -> dict[str, Any]:
    """Every acknowledged prediction is stored, exactly once per key."""
    from sqlalchemy import func, select

    from database.models import Prediction
    from database.session import Database

    database = Database(url)
    with database.session() as session:
        keys = list(clients.acknowledged)
        stored: dict[str, int] = {}
        for begin in range(0, len(keys), 500):
            rows = session.execute(
                select(Prediction.idempotency_key, Prediction.id).where(
                    Prediction.user_id == user_id, Prediction.idempotency_key.in_(keys[begin : begin + 500])
                )
            ).all()
            stored.update(dict(rows))
        duplicates = (
            session.scalar(
                select(func.count() - func.count(func.distinct(Prediction.idempotency_key))).where(
                    Prediction.user_id == user_id, Prediction.idempotency_key.is_not(None)
                )
            )
            or 0
        )
    database.dispose()
    lost = [k for k, pid in clients.acknowledged.items() if stored.get(k) != pid]
    return {
        "acknowledged": len(clients.acknowledged),
        "lost": len(lost),
        "duplicates": int(duplicates),
        "replayed_acks": clients.replays,
        "statuses": dict(sorted(clients.statuses.items())),
        "http_500": clients.statuses.get(500, 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="N gunicorn instances behind nginx; failure drills.")
    parser.add_argument("--database-url", default=os.environ.get("LOAD_DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=os.environ.get("LOAD_REDIS_URL") or "redis://127.0.0.1:6379/5")
    parser.add_argument("--instances", default="1,2,3")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", default=os.environ.get("WEB_CONCURRENCY", "1"), help="per instance")
    parser.add_argument("--port", type=int, default=8780, help="nginx; instances use the next ports")
    parser.add_argument("--out", default=str(REPO / "test-output" / "scaleout"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the instances on the way out
    tokens = prepare_database(args.database_url, rows=None)
    counts = [int(n) for n in args.instances.split(",")]
    ports = [args.port + 1 + i for i in range(max(counts))]
    env = {"WEB_CONCURRENCY": args.workers}
    text = Endpoint("text", "text", "POST", "/api/predict/text", body=json.dumps({"text": TEXT}).encode(),
                    content_type="application/json", idempotent=True)  # fmt: skip
    health = Endpoint("healthz", "healthz", "GET", "/healthz", token="")
    base = f"http://127.0.0.1:{args.port}"
    rows: list[dict[str, Any]] = []
    drills: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        instances = [
            start_gunicorn(args.database_url, args.redis_url, port, out / f"gunicorn-{port}.log", extra_env=env)
            for port in ports
        ]
        try:
            for n in counts:
                nginx = start_nginx(ports[:n], args.port, Path(tmp) / f"nginx-{n}")
                try:
                    for endpoint in (health, text):
                        token = tokens["predict"] if endpoint.token else ""
                        run_wrk(base, endpoint, token, connections=args.connections, seconds=2, tmp=Path(tmp))
                        r = run_wrk(
                            base, endpoint, token, connections=args.connections, seconds=args.duration, tmp=Path(tmp)
                        )
                        r.update(instances=n, name=endpoint.name)
                        rows.append(r)
                        print(f"{n} instance(s) {endpoint.name:<8} {r['rps']:7.1f} req/s p50 {r['p50_ms']:.1f} ms "
                              f"p99 {r['p99_ms']:.1f} ms non-2xx {r['non_2xx_3xx']}", flush=True)  # fmt: skip
                finally:
                    nginx.send_signal(signal.SIGQUIT)
                    nginx.wait(timeout=10)
            # drill: kill one of the instances mid-load
            nginx = start_nginx(ports, args.port, Path(tmp) / "nginx-kill")
            try:
                clients = RetryingClients(base, tokens["predict"], threads=args.connections)

                def kill_one() -> None:
                    time.sleep(args.duration / 3)
                    os.killpg(instances[-1].pid, signal.SIGKILL)  # master and workers at once, as a crash

                threading.Thread(target=kill_one, daemon=True).start()
                clients.run(args.duration)
                drills["kill_one_instance"] = check_stored(args.database_url, tokens["predict_id"], clients)
                print("kill one instance mid-load:", drills["kill_one_instance"], flush=True)
            finally:
                nginx.send_signal(signal.SIGQUIT)
                nginx.wait(timeout=10)
        finally:
            for process in instances:
                stop(process)
        # drill: the database goes away for a few seconds under load
        from sqlalchemy.engine import make_url

        parsed = make_url(args.database_url)
        relay = TcpRelay((parsed.host or "127.0.0.1", parsed.port or 3306)).start()
        relayed = parsed.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        extra = {**env, "DATABASE_CONNECT_TIMEOUT": "2", "DATABASE_READ_TIMEOUT": "5", "DATABASE_WRITE_TIMEOUT": "5"}
        single = start_gunicorn(relayed, args.redis_url, ports[0], out / "gunicorn-outage.log", extra_env=extra)
        try:
            clients = RetryingClients(f"http://127.0.0.1:{ports[0]}", tokens["predict"], threads=args.connections)

            def cut() -> None:
                time.sleep(args.duration / 3)
                relay.stop()
                time.sleep(3)
                relay.start()

            threading.Thread(target=cut, daemon=True).start()
            clients.run(args.duration)
            drills["database_outage_3s"] = check_stored(args.database_url, tokens["predict_id"], clients)
            print("database cut for 3 s under load:", drills["database_outage_3s"], flush=True)
        finally:
            stop(single)
            relay.stop()
    report(rows, drills, args, out)
    return 0


def report(rows: list[dict[str, Any]], drills: dict[str, Any], args: Any, out: Path) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    one = next((r["rps"] for r in rows if r["name"] == "text" and r["instances"] == 1), None)
    lines = [
        f"Scale-out, {stamp}: N gunicorn instances ({args.workers} worker(s) x 4 threads each) behind nginx,"
        f" one MariaDB, one Redis, {os.cpu_count()} cores, wrk {args.connections} connections, {args.duration:g} s.",
        "",
        "| instances | `POST /api/predict/text` req/s | p50 | p99 | vs 1 instance | `/healthz` req/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sorted({r["instances"] for r in rows}):
        t = next(r for r in rows if r["instances"] == n and r["name"] == "text")
        h = next(r for r in rows if r["instances"] == n and r["name"] == "healthz")
        ratio = f"{t['rps'] / one:.2f}" if one else "-"
        lines.append(
            f"| {n} | {t['rps']:.1f} | {t['p50_ms']:.1f} ms | {t['p99_ms']:.1f} ms | {ratio} | {h['rps']:.0f} |"
        )
    lines.append("")
    for name, result in drills.items():
        lines.append(f"- {name}: {json.dumps(result)}")
    text = "\n".join(lines)
    print("\n" + text)
    (out / "report.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
