"""What an operator meets: install size, start-up, first predictions, memory, ONNX vs framework.

    python -m benchmarks.bench_serving [--warm 10] [--skip-framework]

1. **Runtime install**: the bytes on disk of the distributions ``requirements.txt`` locks
   (measured in the current ``.venv``, which may also hold the training set), and ``du`` of the
   whole ``.venv`` beside it.
2. **A fresh server process**: gunicorn with one worker as ``make run`` starts it, on SQLite in
   a temporary instance folder; seconds from ``exec`` to ``/readyz`` 200 (every bundled model
   loaded), then the first prediction of each modality through the API next to the median of
   ``--warm`` later ones (the ratio is what counts), and the worker's resident memory.
3. **Warm model time, ONNX graph vs training framework**, on the same inputs in one run (face:
   a batch of one crop; speech: a 4 s clip's features): ratios, since machines differ.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

FACE = REPO_ROOT / "examples" / "face.png"
SPEECH = REPO_ROOT / "examples" / "speech.flac"
TEXT = "I waited all afternoon and the email finally said I passed every exam, I am so happy!"
BOUNDARY = "moodlens-bench"


# -- 1. install size ---------------------------------------------------------------------
def locked_names(lock: Path) -> list[str]:
    return re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", lock.read_text(), re.MULTILINE)


def distribution_bytes(name: str) -> int:
    """Bytes on disk of one installed distribution's files (0 when it is not installed)."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return 0
    total = 0
    for file in dist.files or ():
        path = Path(dist.locate_file(file))
        if path.is_file():
            total += path.stat().st_size
    return total


def install_size() -> dict[str, Any]:
    names = locked_names(REPO_ROOT / "requirements.txt")
    sizes = {name: distribution_bytes(name) for name in names}
    venv = Path(sys.prefix)
    du = subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True, check=False).stdout.split()
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
    return {
        "runtime_packages": len(names),
        "runtime_mb": round(sum(sizes.values()) / 2**20, 1),
        "largest_mb": {name: round(size / 2**20, 1) for name, size in largest},
        "this_venv_du_mb": int(du[0]) if du else None,
    }


# -- 2. a fresh server -------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Client:
    """A tiny JSON/multipart client: the session cookie and CSRF header, then a bearer token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.token = ""
        self.csrf = ""
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        elif self.csrf:
            request.add_header("X-CSRFToken", self.csrf)
        try:
            with self._opener.open(request, timeout=120) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def json(self, method: str, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
        return self.call(method, path, json.dumps(payload).encode(), "application/json")

    def upload(self, path: str, field: str, file: Path) -> tuple[int, Any]:
        body = (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{file.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + file.read_bytes()
            + f"\r\n--{BOUNDARY}--\r\n".encode()
        )
        return self.call("POST", path, body, f"multipart/form-data; boundary={BOUNDARY}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def fresh_server(warm: int) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory() as instance:
        env = {
            **os.environ,
            "APP_ENV": "development",
            "INSTANCE_DIR": instance,
            "DATABASE_URL": "",
            "GUNICORN_HOST": "127.0.0.1",
            "GUNICORN_PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "RATELIMIT_ENABLED": "false",
            "BCRYPT_ROUNDS": "4",
            "LOG_LEVEL": "WARNING",
        }
        started = time.perf_counter()
        server = subprocess.Popen(
            [str(Path(sys.prefix) / "bin" / "gunicorn"), "-c", "gunicorn_config.py", "wsgi:app"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Client(f"http://127.0.0.1:{port}")
        try:
            ready_s = None
            while time.perf_counter() - started < 120:
                try:
                    if client.call("GET", "/readyz")[0] == 200:
                        ready_s = time.perf_counter() - started
                        break
                except (ConnectionError, urllib.error.URLError):
                    pass
                time.sleep(0.05)
            if ready_s is None:
                raise RuntimeError("the server did not become ready within 120 s")
            account = {"email": "bench@example.org", "password": "a long bench password"}
            client.csrf = client.call("GET", "/api/csrf")[1]["csrf_token"]
            client.json("POST", "/api/register", account)
            client.json("POST", "/api/login", account)
            client.csrf = client.call("GET", "/api/csrf")[1]["csrf_token"]
            status, body = client.json("POST", "/api/tokens", {"name": "bench"})
            if status != 201:
                raise RuntimeError(f"could not get an API token: {status} {body}")
            client.token = body["token"]
            client.json("PUT", "/api/user/consent", {"consent": True})
            requests = {
                "face": lambda: client.upload("/api/predict/image", "image", FACE),
                "speech": lambda: client.upload("/api/predict/speech", "audio", SPEECH),
                "text": lambda: client.json("POST", "/api/predict/text", {"text": TEXT}),
            }
            first: dict[str, Any] = {}
            for modality, send in requests.items():
                began = time.perf_counter()
                status, body = send()
                if status not in (200, 201):
                    raise RuntimeError(f"{modality}: {status} {body}")
                first[modality] = (time.perf_counter() - began) * 1000
            figures: dict[str, Any] = {}
            for modality, send in requests.items():
                timings = []
                for _ in range(warm):
                    began = time.perf_counter()
                    send()
                    timings.append((time.perf_counter() - began) * 1000)
                median = statistics.median(timings)
                figures[modality] = {
                    "first_ms": round(first[modality], 1),
                    "warm_median_ms": round(median, 1),
                    "first_over_warm": round(first[modality] / median, 2),
                }
            workers = worker_pids(server.pid)
            return {
                "start_to_ready_s": round(ready_s, 2),
                "requests": figures,
                "worker_rss_mb": [round(rss_mb(pid), 1) for pid in workers],
                "master_rss_mb": round(rss_mb(server.pid), 1),
            }
        finally:
            server.terminate()
            server.wait(30)


# -- 3. ONNX vs framework ----------------------------------------------------------------
def _median_ms(call: Any, repeats: int) -> float:
    for _ in range(3):
        call()
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        timings.append((time.perf_counter() - began) * 1000)
    return statistics.median(timings)


def onnx_vs_framework(repeats: int = 30) -> dict[str, Any]:
    """Model-only time for the same inputs: the served graph and the Keras model it came from (tf.function)."""
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from inference.face import FaceRecognizer
    from inference.speech import SpeechRecognizer
    from preprocessing.audio import FeatureStats, pad_frames, standardise

    face = FaceRecognizer(REPO_ROOT / "models" / "face")
    face.load()
    crop = np.random.default_rng(0).uniform(-1, 1, (1, 48, 48, 1)).astype(np.float32)

    import keras
    import tensorflow as tf

    from model_training.speech_layers import CUSTOM_OBJECTS

    tf.config.threading.set_intra_op_parallelism_threads(1)
    face_keras = keras.models.load_model(REPO_ROOT / "models" / "face" / "face_model.keras", compile=False)
    mirrored = crop[:, :, ::-1, :].copy()
    # Graph mode (tf.function), the framework's fast path, not eager calls.
    face_graph = tf.function(lambda x: face_keras(x, training=False))

    def face_framework() -> None:
        face_graph(crop)
        face_graph(mirrored)

    results: dict[str, Any] = {
        "face": {
            "onnx_ms": _median_ms(lambda: face.predict_proba(crop), repeats),
            "framework_ms": _median_ms(face_framework, repeats),
        },
    }
    speech_keras_file = REPO_ROOT / "models" / "speech" / "speech_model.keras"
    if speech_keras_file.is_file():  # a single network (train_speech); the fold ensemble ships its graphs only
        speech = SpeechRecognizer(REPO_ROOT / "models" / "speech")
        features, _ = speech.preprocess(SPEECH.read_bytes())
        stats = FeatureStats.from_json(speech_keras_file.with_name("feature_stats.json"))
        batch = pad_frames([standardise(features.frames, stats)])
        speech_keras = keras.models.load_model(speech_keras_file, custom_objects=CUSTOM_OBJECTS, compile=False)
        speech_graph = tf.function(lambda x: speech_keras(x, training=False))
        results["speech"] = {
            "onnx_ms": _median_ms(lambda: speech.predict_proba([features]), repeats),
            "framework_ms": _median_ms(lambda: speech_graph(batch), repeats),
        }
    for figures in results.values():
        figures["framework_over_onnx"] = round(figures["framework_ms"] / figures["onnx_ms"], 2)
        figures["onnx_ms"] = round(figures["onnx_ms"], 2)
        figures["framework_ms"] = round(figures["framework_ms"], 2)
    return results


def run(warm: int = 10, framework: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} logical CPUs",
        "install": install_size(),
        "fresh_server": fresh_server(warm),
    }
    if framework:
        result["model_only"] = onnx_vs_framework()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", type=int, default=10, help="warm requests per modality after the first")
    parser.add_argument("--skip-framework", action="store_true", help="skip the Keras comparison (runtime-only venv)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.warm, not args.skip_framework), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
