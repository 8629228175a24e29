"""Load benchmark of the production stack on loopback: gunicorn (gunicorn_config.py) + MariaDB + Redis.

    python -m benchmarks.load                 # or: make loadtest
    python -m benchmarks.load --duration 5 --only text,history

It migrates the database named by ``--database-url`` (created if missing), creates two users
with API tokens (one predicts, one owns ``--rows`` stored predictions, bulk-inserted once),
starts gunicorn with rate limits off and waits for ``/readyz``, then drives each endpoint for
``--duration`` seconds with ``wrk`` (a C load generator: the client costs little of the two
cores) and prints req/s, p50/p95/p99 and non-2xx answers. ``/healthz`` is measured in the same
run as the ceiling of the stack, and the text model alone (one thread, no web server) as the
reference of the prediction rows: every figure is printed beside its ratio to those, with the
date. One warm request per endpoint is profiled with cProfile (``--out``/profiles).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WRK_SCRIPT = REPO / "benchmarks" / "wrk" / "request.lua"
FIXTURES = REPO / "tests" / "fixtures" / "e2e"
TEXT = "I honestly cannot believe how well the whole day went, we laughed until midnight"  # 15 words
PREDICT_EMAIL = "load-predict@bench.invalid"
HISTORY_EMAIL = "load-history@bench.invalid"
SEED_DAYS = 200
HISTORY_PATH = "/api/predictions?per_page=20"
DEFAULT_DATABASE_URL = "mysql+pymysql://root@127.0.0.1:3306/moodlens_load?charset=utf8mb4"


@dataclass
class Endpoint:
    name: str
    label: str
    method: str
    path: str
    token: str = "predict"  # which user's token
    body: bytes | None = None
    content_type: str | None = None
    connections: tuple[int, ...] = (8,)
    idempotent: bool = False


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = "moodlens" + secrets.token_hex(8)
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (file_name, data, media_type) in files.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file_name}"\r\n'
            f"Content-Type: {media_type}\r\n\r\n".encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def endpoints(export_day: str, deep_cursor: str) -> list[Endpoint]:
    image = (FIXTURES / "face_happy.png").read_bytes()
    audio = (FIXTURES / "speech_happy.wav").read_bytes()
    image_body, image_type = multipart({}, {"image": ("face.png", image, "image/png")})
    audio_body, audio_type = multipart({}, {"audio": ("clip.wav", audio, "audio/wav")})
    multi_body, multi_type = multipart(
        {"text": TEXT}, {"image": ("face.png", image, "image/png"), "audio": ("clip.wav", audio, "audio/wav")}
    )
    text_body = json.dumps({"text": TEXT}).encode()
    return [
        Endpoint("healthz", "`GET /healthz` (ceiling)", "GET", "/healthz", token="", connections=(8,)),
        Endpoint(
            "text",
            "`POST /api/predict/text` (15 words)",
            "POST",
            "/api/predict/text",
            body=text_body,
            content_type="application/json",
            connections=(1, 8),
            idempotent=True,
        ),
        Endpoint(
            "image",
            "`POST /api/predict/image`",
            "POST",
            "/api/predict/image",
            body=image_body,
            content_type=image_type,
            idempotent=True,
        ),
        Endpoint(
            "speech",
            "`POST /api/predict/speech` (3.7 s clip)",
            "POST",
            "/api/predict/speech",
            body=audio_body,
            content_type=audio_type,
            idempotent=True,
        ),
        Endpoint(
            "multimodal",
            "`POST /api/predict/multimodal` (all three)",
            "POST",
            "/api/predict/multimodal",
            body=multi_body,
            content_type=multi_type,
            idempotent=True,
        ),
        Endpoint("history", "`GET /api/predictions?per_page=20`", "GET", HISTORY_PATH, token="history"),
        Endpoint("history_deep", "`GET ...&page=2000`", "GET", HISTORY_PATH + "&page=2000", token="history"),
        Endpoint(
            "history_cursor",
            "`GET ...&cursor=` (page 2000 by keyset)",
            "GET",
            f"{HISTORY_PATH}&cursor={deep_cursor}",
            token="history",
        ),
        Endpoint("statistics", "`GET /api/statistics`", "GET", "/api/statistics", token="history"),
        Endpoint(
            "export",
            "`GET /api/predictions/export.csv` (one day)",
            "GET",
            f"/api/predictions/export.csv?date_from={export_day}&date_to={export_day}",
            token="history",
        ),
    ]


# -- database: users, tokens, 100k rows ----------------------------------------------------------
def prepare_database(url: str, rows: int | None) -> dict[str, Any]:
    """Migrate, create the two users and tokens, seed ``rows`` predictions for the history user
    (None: leave its rows as they are)."""
    from sqlalchemy import delete, func, insert, select, text
    from sqlalchemy.engine import make_url

    from database.migrate import upgrade
    from database.models import ApiToken, ModalityResult, Prediction, User, UserDailyTally, utcnow
    from database.session import Database
    from security import new_api_token

    parsed = make_url(url)
    if parsed.get_backend_name() in {"mysql", "mariadb"} and parsed.database:
        server = Database(parsed.set(database="").render_as_string(hide_password=False))
        with server.engine.begin() as connection:
            connection.execute(text(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}` CHARACTER SET utf8mb4"))
        server.dispose()
    upgrade(url)
    database = Database(url)
    tokens: dict[str, str] = {}
    with database.session() as session:
        for role, email in (("predict", PREDICT_EMAIL), ("history", HISTORY_EMAIL)):
            user = session.scalar(select(User).where(User.email == email))
            if user is None:
                user = User(email=email, password_hash="!", display_name=role, consent_given_at=utcnow())
                session.add(user)
                session.flush()
            value, digest, prefix = new_api_token()
            session.add(ApiToken(user_id=user.id, name="load benchmark", token_hash=digest, prefix=prefix))
            session.commit()
            tokens[role] = value
            tokens[f"{role}_id"] = user.id
        history_id = tokens["history_id"]
        have = session.scalar(select(func.count()).select_from(Prediction).where(Prediction.user_id == history_id))
        if rows is not None and have != rows:
            started = time.perf_counter()
            session.execute(
                delete(ModalityResult).where(
                    ModalityResult.prediction_id.in_(select(Prediction.id).where(Prediction.user_id == history_id))
                )
            )
            session.execute(delete(Prediction).where(Prediction.user_id == history_id))
            session.execute(delete(UserDailyTally).where(UserDailyTally.user_id == history_id))
            session.commit()
            seed(session, history_id, rows, insert=insert, prediction=Prediction, result=ModalityResult)
            session.execute(text(TALLY_REBUILD), {"user_id": history_id})
            session.commit()
            print(f"seeded {rows} predictions in {time.perf_counter() - started:.1f} s", flush=True)
        first = session.scalar(select(func.min(Prediction.created_at)).where(Prediction.user_id == history_id))
        deep = session.execute(  # the row page 2,000 starts after, as a keyset cursor
            select(Prediction.created_at, Prediction.id)
            .where(Prediction.user_id == history_id)
            .order_by(Prediction.created_at.desc(), Prediction.id.desc())
            .offset(2000 * 20 - 21)
            .limit(1)
        ).first()
    database.dispose()
    from services.predictions.queries import encode_cursor

    tokens["deep_cursor"] = encode_cursor(deep) if deep is not None else ""
    tokens["export_day"] = (first or utcnow()).date().isoformat()
    return tokens


TALLY_REBUILD = (
    "INSERT INTO user_daily_tallies (user_id, day, kind, emotion, predictions, confidence_sum,"
    " face_used, speech_used, text_used)"
    " SELECT p.user_id, DATE(p.created_at), p.kind, p.emotion, COUNT(*), SUM(p.confidence), 0, 0, COUNT(*)"
    " FROM predictions p WHERE p.user_id = :user_id GROUP BY p.user_id, DATE(p.created_at), p.kind, p.emotion"
)


def seed(session: Any, user_id: int, rows: int, *, insert: Any, prediction: Any, result: Any) -> None:
    """``rows`` text predictions over SEED_DAYS days, in executemany chunks (seconds, not minutes)."""
    from inference.labels import EMOTIONS

    rng = random.Random(12)
    start = dt.datetime(2026, 1, 1)
    step = dt.timedelta(days=SEED_DAYS) / max(rows, 1)
    chunk = 5000
    for begin in range(0, rows, chunk):
        batch = []
        for i in range(begin, min(begin + chunk, rows)):
            emotion = rng.choice(EMOTIONS)
            probs = {f"p_{e}": (0.7 if e == emotion else 0.05) for e in EMOTIONS}
            batch.append(
                {
                    "user_id": user_id,
                    "created_at": start + step * i,
                    "kind": "text",
                    "emotion": emotion,
                    "confidence": 0.7,
                    "input_summary": {"text": {"text": f"seeded text {i}", "characters": 14}},
                    **probs,
                }
            )
        session.execute(insert(prediction), batch)
        ids = session.execute(
            prediction.__table__.select()
            .with_only_columns(prediction.id, prediction.emotion)
            .where(prediction.user_id == user_id)
            .order_by(prediction.id.desc())
            .limit(len(batch))
        ).all()
        session.execute(
            insert(result),
            [
                {
                    "prediction_id": pid,
                    "modality": "text",
                    "status": "used",
                    "emotion": emotion,
                    "confidence": 0.7,
                    "model_name": "seed",
                    "model_version": "seed",
                    "latency_ms": 5.0,
                    "details": {"tokens": 4},
                    **{f"p_{e}": (0.7 if e == emotion else 0.05) for e in EMOTIONS},
                }
                for pid, emotion in ids
            ],
        )
        session.commit()


# -- the server --------------------------------------------------------------------------------
def start_gunicorn(
    url: str,
    redis_url: str,
    port: int,
    log_path: Path,
    *,
    extra_env: dict[str, str] | None = None,
    app_dir: Path = REPO,
) -> subprocess.Popen:
    env = {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": url,
        "RATELIMIT_ENABLED": "false",
        "RATELIMIT_STORAGE_URI": redis_url,
        "GUNICORN_HOST": "127.0.0.1",
        "GUNICORN_PORT": str(port),
        "AUTO_MIGRATE": "false",
        "LOG_FORMAT": "json",
        **(extra_env or {}),
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [str(gunicorn), "-c", "gunicorn_config.py", "wsgi:app"],
        cwd=app_dir,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,  # its own process group: a drill can kill the master and its workers at once
    )
    wait_ready(f"http://127.0.0.1:{port}", process)
    return process


def wait_ready(base: str, process: subprocess.Popen, timeout: float = 180) -> None:
    """Until /readyz answers 200 on both workers (a few tries in a row)."""
    deadline = time.monotonic() + timeout
    good = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}; see its log")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=5) as response:
                good = good + 1 if response.status == 200 else 0
        except (urllib.error.URLError, OSError):
            good = 0
        if good >= 6:
            return
        time.sleep(0.5)
    raise SystemExit(f"{base}/readyz did not turn 200 within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# -- wrk ---------------------------------------------------------------------------------------
def run_wrk(
    base: str, endpoint: Endpoint, token: str, *, connections: int, seconds: float, tmp: Path
) -> dict[str, Any]:
    env = {**os.environ, "WRK_METHOD": endpoint.method, "WRK_TOKEN": token}
    if endpoint.body is not None:
        body_file = tmp / f"{endpoint.name}.body"
        body_file.write_bytes(endpoint.body)
        env["WRK_BODY_FILE"] = str(body_file)
    if endpoint.content_type:
        env["WRK_CONTENT_TYPE"] = endpoint.content_type
    if endpoint.idempotent:
        env["WRK_IDEMPOTENT"] = "1"
        env["WRK_KEY_PREFIX"] = secrets.token_hex(8)
    threads = max(1, min(2, connections))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        base + endpoint.path,
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next((row for row in output.splitlines() if row.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no summary:\n{output}")
    result = json.loads(line.removeprefix("WRKJSON "))
    result["rps"] = result["requests"] / result["seconds"] if result["seconds"] else 0.0
    return result


def model_reference(repeats: int = 50) -> float:
    """Milliseconds per 15-word sentence of the text model alone (one thread, warm)."""
    from inference.text import TextRecognizer

    recognizer = TextRecognizer(REPO / "models" / "text")
    recognizer.load()
    for _ in range(5):
        recognizer.predict(TEXT)
    started = time.perf_counter()
    for _ in range(repeats):
        recognizer.predict(TEXT)
    return (time.perf_counter() - started) / repeats * 1000


# -- profiles ----------------------------------------------------------------------------------
def profile_endpoints(url: str, tokens: dict[str, str], chosen: list[Endpoint], out: Path) -> None:
    """One warm request per endpoint through the app in this process, profiled with cProfile."""
    from app import create_app

    app = create_app(
        {
            "APP_ENV": "testing",
            "TESTING": True,
            "SECRET_KEY": secrets.token_hex(32),
            "DATABASE_URL": url,
            "AUTO_MIGRATE": False,
            "RATELIMIT_ENABLED": False,
            "PRELOAD_MODELS": False,
        }
    )
    client = app.test_client()
    out.mkdir(parents=True, exist_ok=True)
    for endpoint in chosen:
        headers = {"Authorization": f"Bearer {tokens[endpoint.token]}"} if endpoint.token else {}
        if endpoint.content_type:
            headers["Content-Type"] = endpoint.content_type

        def call(headers: dict[str, str] = headers, endpoint: Endpoint = endpoint) -> Any:
            return client.open(endpoint.path, method=endpoint.method, headers=headers, data=endpoint.body)

        for _ in range(3):  # warm: models loaded, pools filled
            call()
        profiler = cProfile.Profile()
        profiler.enable()
        response = call()
        response.get_data()
        profiler.disable()
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream).sort_stats("cumulative")
        stream.write(f"{endpoint.method} {endpoint.path} -> {response.status_code}\n")
        stats.print_stats(40)
        (out / f"{endpoint.name}.txt").write_text(stream.getvalue(), encoding="utf-8")
        profiler.dump_stats(str(out / f"{endpoint.name}.prof"))


# -- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load benchmark of the production stack on loopback.")
    parser.add_argument("--database-url", default=os.environ.get("LOAD_DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=os.environ.get("LOAD_REDIS_URL") or "redis://127.0.0.1:6379/5")
    parser.add_argument("--rows", type=int, default=100_000, help="stored predictions of the history user")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--only", default="", help="comma-separated endpoint names (default: all)")
    parser.add_argument("--out", default=str(REPO / "test-output" / "load"))
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--app-dir",
        default=str(REPO),
        help="serve another checkout of the app (e.g. the previous release) on the same database, for before/after",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (scripts/setup.sh --dev does)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop gunicorn on the way out
    tokens = prepare_database(args.database_url, args.rows)
    chosen = endpoints(tokens["export_day"], tokens["deep_cursor"])
    if args.only:
        names = set(args.only.split(","))
        chosen = [e for e in chosen if e.name in names or e.name == "healthz"]
    reference_ms = model_reference()
    process = start_gunicorn(
        args.database_url, args.redis_url, args.port, out / "gunicorn.log", app_dir=Path(args.app_dir)
    )
    base = f"http://127.0.0.1:{args.port}"
    results: list[dict[str, Any]] = []
    try:
        for endpoint in chosen:
            for connections in endpoint.connections:
                token = tokens[endpoint.token] if endpoint.token else ""
                warm_up = min(2.0, args.duration)
                run_wrk(base, endpoint, token, connections=connections, seconds=warm_up, tmp=out)
                result = run_wrk(base, endpoint, token, connections=connections, seconds=args.duration, tmp=out)
                result.update(name=endpoint.name, label=endpoint.label, connections=connections)
                results.append(result)
                print(
                    f"{endpoint.name:<13} c={connections:<2} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.1f} ms"
                    f"  p99 {result['p99_ms']:7.1f} ms  non-2xx {result['non_2xx_3xx']}",
                    flush=True,
                )
    finally:
        stop(process)
    if not args.no_profile:
        profile_endpoints(args.database_url, tokens, [e for e in chosen if e.name != "healthz"], out / "profiles")
    print_report(results, reference_ms, args, out)
    return 0


def print_report(results: list[dict[str, Any]], reference_ms: float, args: Any, out: Path) -> None:
    ceiling = next((r["rps"] for r in results if r["name"] == "healthz"), None)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cores = os.cpu_count()
    lines = [
        f"Load benchmark, {stamp}: gunicorn (gunicorn_config.py: {os.environ.get('WEB_CONCURRENCY', '2')} gthread"
        f" workers x {os.environ.get('GUNICORN_THREADS', '4')} threads), {args.database_url.split('@')[-1]},"
        f" {cores} cores, wrk for {args.duration:g} s per row, {args.rows} stored predictions for history/statistics.",
        f"Reference in the same run: the text model alone takes {reference_ms:.1f} ms per sentence on one thread"
        f" ({1000 / reference_ms:.0f}/s).",
        "",
        "| request | connections | req/s | p50 | p95 | p99 | non-2xx | vs /healthz | vs model alone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        vs_ceiling = f"{r['rps'] / ceiling:.3f}" if ceiling else "-"
        vs_model = f"{r['rps'] * reference_ms / 1000:.2f}" if r["name"] == "text" else ""
        lines.append(
            f"| {r['label']} | {r['connections']} | {r['rps']:.1f} | {r['p50_ms']:.1f} ms | {r['p95_ms']:.1f} ms"
            f" | {r['p99_ms']:.1f} ms | {r['non_2xx_3xx']} | {vs_ceiling} | {vs_model} |"
        )
    report = "\n".join(lines)
    print("\n" + report)
    (out / "report.md").write_text(report + "\n", encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps({"date": stamp, "reference_ms": reference_ms, "results": results}, indent=2), encoding="utf-8"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
