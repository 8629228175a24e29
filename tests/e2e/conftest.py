"""End-to-end fixtures: the real app on 127.0.0.1 and a headless Chromium with fake media devices.

The app runs in a background thread with a temporary SQLite database and the real bundled
models from ``models/``; Chromium's fake camera plays a face photo (as a 4:2:0 y4m, the only
layout its capture service accepts) and its fake microphone plays a speech WAV. Everything is
skipped with a reason when Chromium, chromedriver, Selenium or ffmpeg is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Keep the in-process models to two threads on small CI machines (read when they first load).
for _name, _value in {
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "TF_NUM_INTRAOP_THREADS": "2",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "e2e"
FACE_PHOTO = FIXTURES / "face_happy.png"
SPEECH_WAV = FIXTURES / "speech_happy.wav"
OUTPUT_DIR = REPO_ROOT / "test-output" / "e2e"

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "chromium", "chromium-browser")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "chromedriver")


def _find(candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder drives a browser: mark it ``e2e`` (and ``slow``: real models load)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)


@dataclass
class LiveServer:
    """The running app: its base URL, the Flask app (for the DB and registry) and its models."""

    url: str
    app: Any
    available: list[str]
    status: dict[str, Any] = field(default_factory=dict)

    def require(self, *modalities: str) -> None:
        """Fail the calling test unless every named modality's model is installed (they are all committed)."""
        missing = [m for m in modalities if m not in self.available]
        if missing:
            details = "; ".join(f"{m}: {self.status.get(m, {}).get('error', 'no card.json yet')}" for m in missing)
            pytest.fail(f"the {', '.join(missing)} model is not installed in models/ ({details})")


@pytest.fixture(scope="session")
def browser_paths() -> tuple[str, str]:
    chromium = _find(CHROMIUM_CANDIDATES)
    driver = _find(CHROMEDRIVER_CANDIDATES)
    if chromium is None or driver is None:
        pytest.skip(
            "Chromium and chromedriver are needed for the browser tests (apt-get install chromium chromium-driver)"
        )
    pytest.importorskip("selenium", reason="selenium is needed for the browser tests (pip install selenium)")
    return chromium, driver


@pytest.fixture(scope="session")
def media_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The fake camera's y4m (generated from the face photo) and the fake microphone's WAV."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is needed to build the fake webcam video")
    folder = tmp_path_factory.mktemp("media")
    y4m = folder / "face.y4m"
    subprocess.run(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-y",
            "-loop",
            "1",
            "-i",
            str(FACE_PHOTO),
            "-t",
            "1",
            "-r",
            "10",
            "-vf",
            "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2:color=gray",
            "-pix_fmt",
            "yuv420p",
            str(y4m),
        ],
        check=True,
        timeout=60,
    )
    return {"y4m": y4m, "wav": SPEECH_WAV, "photo": FACE_PHOTO}


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real app (real models, fresh SQLite) served by werkzeug on a free local port."""
    from werkzeug.serving import make_server

    from app import create_app
    from services.analysis import REGISTRY_KEY

    folder = tmp_path_factory.mktemp("app")
    app = create_app(
        {
            "APP_ENV": "testing",
            "TESTING": True,
            "SECRET_KEY": "e2e-" + "k" * 40,
            "INSTANCE_DIR": str(folder),
            "DATABASE_URL": f"sqlite:///{folder / 'e2e.db'}",
            "BCRYPT_ROUNDS": 4,
            "RATELIMIT_ENABLED": False,
            "MODELS_DIR": str(REPO_ROOT / "models"),
        }
    )
    registry = app.extensions[REGISTRY_KEY]
    registry.wait_until_loaded(timeout=300)  # as a deployment waits for /readyz before routing users
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(
            url=f"http://127.0.0.1:{server.server_port}",
            app=app,
            available=registry.available(),
            status=registry.status(),
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def download_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def browser(browser_paths: tuple[str, str], media_files: dict[str, Path], download_dir: Path) -> Iterator[Any]:
    """Headless Chromium with fake, file-fed camera and microphone and console logging on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths
    profile = tempfile.mkdtemp(prefix="e2e-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
        f"--use-file-for-fake-audio-capture={media_files['wav']}",
        f"--use-file-for-fake-video-capture={media_files['y4m']}",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
        "--lang=en-GB",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    with contextlib.suppress(Exception):  # older drivers: the prefs above already point downloads there
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
