"""Shared fixtures: the app on SQLite and on the real MariaDB, an API client, test recognisers.

Every database-touching test runs twice, ``[sqlite]`` and ``[mariadb]``. The MariaDB run is
skipped with the reason when the server at 127.0.0.1:3306 is unreachable, unless
``REQUIRE_MARIADB=1`` (CI), where that is a failure. The schema is built once per session
by the Alembic migrations; each test starts from empty tables.

The recognisers here are test doubles that answer known probabilities for known inputs so
the web layer can be specified without the trained models. They exist ONLY in tests; the
end-to-end tests (tests/test_api_e2e_models.py) use the real bundled models.
"""

from __future__ import annotations

import io
import json
import os
import re
import wave
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic.util import CommandError
from sqlalchemy import text

from errors import UnsupportedMediaType, UnusableInput
from inference.base import Recognizer
from inference.labels import EMOTIONS
from inference.registry import RecognizerRegistry

MARIADB_URL = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4")
TABLES = (
    "job_items",
    "jobs",
    "video_timelines",
    "transcripts",
    "modality_results",
    "user_daily_tallies",
    "predictions",
    "api_tokens",
    "login_sessions",
    "users",
)
PASSWORD = "Correct-horse-42"


# -- databases -----------------------------------------------------------------------------
def mariadb_unreachable_reason(url: str = MARIADB_URL) -> str | None:
    """None when MariaDB answers, else why not (for the skip message)."""
    import pymysql
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        connection = pymysql.connect(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 3306,
            user=parsed.username or "root",
            password=parsed.password or "",
            database=parsed.database,
            connect_timeout=3,
        )
        connection.close()
    except Exception as exc:
        return f"MariaDB at {parsed.host}:{parsed.port or 3306} is unreachable ({type(exc).__name__}: {exc})"
    return None


def require_mariadb() -> None:
    """Skip (or fail under REQUIRE_MARIADB=1) when MariaDB cannot be reached."""
    reason = mariadb_unreachable_reason()
    if reason is None:
        return
    if os.environ.get("REQUIRE_MARIADB") == "1":
        pytest.fail(f"{reason}; REQUIRE_MARIADB=1 makes this a failure. Start the server (see README).")
    pytest.skip(f"{reason}; start it or set REQUIRE_MARIADB=1 to make this a failure")


def drop_everything(url: str) -> None:
    """Drop every table in the test database, ours or not: it is empty afterwards.

    Reflected rather than listed, so tables left by another branch's migrations (and their
    foreign keys to ``users``) cannot block the rebuild.
    """
    from sqlalchemy import MetaData

    from database.session import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            metadata = MetaData()
            metadata.reflect(bind=connection)
            metadata.drop_all(bind=connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


def schema_differs(url: str) -> bool:
    """True when the database's tables do not match the models (Alembic autogenerate compare)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from database.models import Base
    from database.session import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return bool(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def backend_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'moodlens-test.db'}"
    require_mariadb()
    return MARIADB_URL


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


_CLEANERS: dict[str, Any] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``no_database`` touches no rows: the app it builds needs a database, SQLite is enough."""
    keep, extra = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_mariadb = callspec is not None and callspec.params.get("database_url") == "mariadb"
        (extra if on_mariadb and item.get_closest_marker("no_database") else keep).append(item)
    if extra:
        config.hook.pytest_deselected(items=extra)
        items[:] = keep


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated to head once per session, per backend (rows are cleaned per test)."""
    from database.migrate import upgrade
    from database.session import make_engine

    url = backend_url(request.param, tmp_path_factory)
    try:
        upgrade(url)
        stale = schema_differs(url)  # left behind by an older revision of the migrations
    except CommandError:  # stamped by a revision this tree does not have (another branch)
        stale = True
    if stale:
        drop_everything(url)
        upgrade(url)
    _CLEANERS[url] = make_engine(url)
    yield url
    _CLEANERS.pop(url).dispose()


@pytest.fixture
def clean_database_url(database_url: str) -> str:
    """The session database with every row deleted (fast: no schema work, nothing to do when empty)."""
    with _CLEANERS[database_url].begin() as connection:
        # Every row hangs off a user, so no user means nothing to delete.
        if connection.execute(text("SELECT id FROM users LIMIT 1")).first() is not None:
            for table in TABLES:
                connection.execute(text(f"DELETE FROM {table}"))
    return database_url


# -- test-only recognisers -----------------------------------------------------------------
def probabilities(top: str, confidence: float = 0.7) -> np.ndarray:
    """Known probabilities: ``confidence`` on ``top``, the rest spread evenly."""
    rest = (1.0 - confidence) / (len(EMOTIONS) - 1)
    return np.array([confidence if e == top else rest for e in EMOTIONS])


class _TestRecognizer(Recognizer):
    """Common part of the test doubles: a card.json in a temporary folder, nothing to load."""

    def _load(self) -> None:
        self.loads = getattr(self, "loads", 0) + 1

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        return np.tile(probabilities("neutral"), (len(batch), 1))


class KeywordTextRecognizer(_TestRecognizer):
    """Text double: the first emotion word in the text wins (0.7), otherwise neutral (0.6)."""

    modality = "text"

    def _predict(self, raw: Any, **options: Any) -> tuple[np.ndarray, dict[str, Any]]:
        self.last_options = options
        if not isinstance(raw, str) or not raw.strip():
            raise UnusableInput("The text is empty.", code="empty_text")
        lowered = raw.lower()
        for emotion in EMOTIONS:
            if emotion in lowered:
                return probabilities(emotion, 0.7), {"tokens": len(raw.split())}
        return probabilities("neutral", 0.6), {"tokens": len(raw.split())}


class ColourFaceRecognizer(_TestRecognizer):
    """Face double: a black image has "no face"; any other image is one surprised face."""

    modality = "face"

    def _predict(self, raw: Any, **options: Any) -> tuple[np.ndarray, dict[str, Any]]:
        from PIL import Image

        try:
            image = Image.open(io.BytesIO(raw)).convert("RGB")
        except Exception as exc:
            raise UnsupportedMediaType("not an image") from exc
        if image.getpixel((0, 0)) == (0, 0, 0):
            raise UnusableInput("No face was found in the photo.", code="no_face_detected")
        w, h = image.size
        face = {"box": [w // 4, h // 4, w // 2, h // 2], "emotion": "surprise", "confidence": 0.8}
        return probabilities("surprise", 0.8), {"faces": [face], "image": {"width": w, "height": h}}


class LoudnessSpeechRecognizer(_TestRecognizer):
    """Speech double: silence is refused; anything else is sad with a 500-point attention curve."""

    modality = "speech"

    def _predict(self, raw: Any, **options: Any) -> tuple[np.ndarray, dict[str, Any]]:
        try:
            with wave.open(io.BytesIO(raw)) as wav:
                frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
                duration = wav.getnframes() / wav.getframerate()
        except (wave.Error, EOFError, ValueError) as exc:
            raise UnsupportedMediaType("The test double reads only PCM WAV.") from exc
        if not np.any(frames):
            raise UnusableInput("The recording is silent.", code="silent_audio")
        attention = [{"time": duration * i / 500, "weight": 1 / 500} for i in range(500)]
        return probabilities("sad", 0.65), {"attention": attention, "duration_seconds": duration}


def write_card(folder: Path, modality: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "card.json").write_text(json.dumps({"model_name": f"test-{modality}", "version": "0.0-test"}))
    return folder


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    for modality in ("face", "speech", "text"):
        write_card(root / modality, modality)
    # Fitted temperatures of 1.0 keep the calibrated fusion of the doubles predictable; no stacker.
    (root / "fusion").mkdir()
    temperatures = {"temperatures": {"face": 1.0, "speech": 1.0, "text": 1.0}}
    (root / "fusion" / "temperatures.json").write_text(json.dumps(temperatures))
    return root


@pytest.fixture
def registry(models_dir: Path) -> RecognizerRegistry:
    """All three modalities served by the test doubles."""
    return RecognizerRegistry(
        {
            "face": ColourFaceRecognizer(models_dir / "face"),
            "speech": LoudnessSpeechRecognizer(models_dir / "speech"),
            "text": KeywordTextRecognizer(models_dir / "text"),
        }
    )


# -- media ---------------------------------------------------------------------------------
def png_bytes(colour: tuple[int, int, int] = (200, 150, 120), size: tuple[int, int] = (64, 48)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(seconds: float = 1.0, *, silent: bool = False, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    signal = np.zeros_like(t) if silent else 0.3 * np.sin(2 * np.pi * 220 * t)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((signal * 32767).astype(np.int16).tobytes())
    return buffer.getvalue()


# -- the app and a client ------------------------------------------------------------------
TEST_CONFIG: dict[str, Any] = {
    "TESTING": True,
    "AUTO_MIGRATE": False,
    "RATELIMIT_ENABLED": False,
    "BCRYPT_ROUNDS": 4,
    "WTF_CSRF_ENABLED": True,
    "SESSION_COOKIE_SECURE": False,
    "REMEMBER_COOKIE_SECURE": False,
    # The doubles load lazily on first use; tests of loading at start switch this on themselves.
    "PRELOAD_MODELS": False,
}


@pytest.fixture
def app_factory(
    clean_database_url: str, registry: RecognizerRegistry, models_dir: Path, tmp_path: Path
) -> Iterator[Any]:
    """Build apps on the clean test database; ``overrides`` change config, ``registry`` the models."""
    from app import create_app
    from database.session import get_database

    built: list[Any] = []

    def make(overrides: dict[str, Any] | None = None, *, registry_override: RecognizerRegistry | None = None) -> Any:
        config = {
            **TEST_CONFIG,
            "DATABASE_URL": clean_database_url,
            "INSTANCE_DIR": str(tmp_path / "instance"),
            "MODELS_DIR": str(models_dir),  # temperatures of 1.0 and no stacker: fusion of the doubles is predictable
            "SECRET_KEY": "test-secret-key-" + "x" * 32,
            **(overrides or {}),
        }
        application = create_app(config, registry=registry_override or registry)
        built.append(application)
        return application

    yield make
    for application in built:
        get_database(application).dispose()


@pytest.fixture
def app(app_factory: Any) -> Any:
    return app_factory()


class Api:
    """A test client that speaks JSON and adds the CSRF header (or a bearer token) to writes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._csrf: str | None = None

    def csrf_token(self) -> str:
        if self._csrf is None:
            self._csrf = self.client.get("/api/csrf").get_json()["csrf_token"]
        return self._csrf

    def request(self, method: str, url: str, *, token: str | None = None, csrf: bool = True, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif csrf and method.upper() in {"POST", "PUT", "PATCH", "DELETE"}:
            headers["X-CSRFToken"] = self.csrf_token()
        return self.client.open(url, method=method.upper(), headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Any:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)

    # -- conveniences --
    def register(self, email: str = "ada@example.com", password: str = PASSWORD, **extra: Any) -> Any:
        return self.post("/api/register", json={"email": email, "password": password, **extra})

    def login(self, email: str = "ada@example.com", password: str = PASSWORD) -> Any:
        return self.post("/api/login", json={"email": email, "password": password})

    def give_consent(self) -> Any:
        return self.put("/api/user/consent", json={"consent": True})


@pytest.fixture
def api(app: Any) -> Api:
    """A fresh anonymous client of ``app``."""
    return Api(app.test_client())


@pytest.fixture
def new_api(app: Any) -> Any:
    """Make more independent clients (e.g. user A and user B) of the same app."""
    return lambda: Api(app.test_client())


@pytest.fixture
def user_api(api: Api) -> Api:
    """A client logged in as a fresh user who has given consent to face/voice analysis."""
    assert api.register().status_code == 201
    assert api.give_consent().status_code == 200
    return api


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is our JSON error with ``status`` (and ``code`` when given)."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    body = response.get_json()
    assert body is not None and "error" in body, response.get_data(as_text=True)[:500]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


# -- report: show that the database tests really ran on both backends ----------------------
_BACKEND_IN_ID = re.compile(r"[\[-](sqlite|mariadb)[\]-]")
_backend_outcomes: dict[str, Counter[str]] = {"sqlite": Counter(), "mariadb": Counter()}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each database-parametrised test once, by backend and outcome."""
    match = _BACKEND_IN_ID.search(report.nodeid)
    if match is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _backend_outcomes[match.group(1)][report.outcome] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.section("database backends")
    for backend, outcomes in _backend_outcomes.items():
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) or "no tests"
        terminalreporter.write_line(f"{backend}: {counts}")


# -- pages: a light app for Flask test-client page tests -------------------------------------
def make_pages_app(tmp_path: Path, **overrides: Any) -> Any:
    """An app on its own SQLite file with no bundled models, CSRF and rate limits off unless overridden."""
    from app import create_app

    config: dict[str, Any] = {
        "APP_ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": "pages-test-" + "s" * 32,
        "INSTANCE_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pages.db'}",
        "BCRYPT_ROUNDS": 4,
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "MODELS_DIR": str(tmp_path / "no-models"),
    }
    config.update(overrides)
    return create_app(config)
