"""The serving process runs on ONNX Runtime alone: no training framework is ever imported.

The recognisers are loaded in a fresh interpreter (as a gunicorn worker would load them),
predict one face photo, one speech clip and one text, fuse them with the stacker, and the
process then reports which modules it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
#: Packages that belong to training only: serving must not import any of them.
TRAINING_ONLY = ("tensorflow", "keras", "torch", "transformers", "sklearn", "librosa", "numba", "joblib", "tf2onnx")

SCRIPT = """
import json, sys
from inference.fusion import FusionEngine
from inference.registry import RecognizerRegistry

registry = RecognizerRegistry.from_models_dir("models")
errors = registry.load_all()
face = registry.get("face").predict(open(sys.argv[1], "rb").read())
speech = registry.get("speech").predict(open(sys.argv[2], "rb").read())
text = registry.get("text").predict("I just got the job of my dreams, I am so happy!")
fused = FusionEngine.from_models_dir("models").fuse(
    {p.modality: p.probabilities for p in (face, speech, text)}, "stacker"
)
print(json.dumps({
    "errors": errors,
    "labels": [face.label, speech.label, text.label, fused.label],
    "loaded": {m: s["loaded"] for m, s in registry.status().items()},
    "modules": sorted({name.split(".")[0] for name in sys.modules}),
}))
"""


def run_fresh(script: str, *args: str) -> Any:
    """Run ``script`` in a fresh interpreter (as a new worker starts) and return the JSON of its last line."""
    run = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def served() -> dict:
    return run_fresh(SCRIPT, str(FIXTURES / "e2e" / "face_happy.png"), str(FIXTURES / "e2e" / "speech_happy.wav"))


@pytest.mark.slow
def test_every_bundled_model_loads_and_predicts_without_a_training_framework(served: dict) -> None:
    assert served["errors"] == {"face": None, "speech": None, "text": None}
    assert served["loaded"] == {"face": True, "speech": True, "text": True}
    assert served["labels"][:3] == ["happy", "happy", "happy"]
    assert served["labels"][3] == "happy"  # the stacker fuses the three through its ONNX graph
    imported = [name for name in TRAINING_ONLY if name in served["modules"]]
    assert imported == [], f"the serving process imported {imported}"
    assert "onnxruntime" in served["modules"] and "tokenizers" in served["modules"]


@pytest.mark.parametrize("modality", ["face", "speech", "text", "fusion"])
def test_each_card_names_the_served_onnx_file_with_its_checksum_and_parity(modality: str) -> None:
    import hashlib

    folder = ROOT / "models" / modality
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    if "members" in card.get("files", {}):  # the voice ensemble: every member graph and the encoder head
        graphs = [m["serving"] for m in card["members"]] + [card["encoder"]["serving"]]
        listed = [m["graph"] for m in card["files"]["members"]] + [card["files"]["encoder_head"]]
        assert [Path(name).name for name in listed] == [g["file"] for g in graphs]
        section = "## Serving"
    else:
        graphs, listed, section = [card["serving"]], [card["serving"]["file"]], "## Serving (ONNX)"
    for serving, name in zip(graphs, listed, strict=True):
        path = folder / name
        assert path.suffix == ".onnx" and serving["opset"] >= 17
        assert serving["size_bytes"] == path.stat().st_size
        assert serving["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert serving["parity"]["max_abs_diff"] <= 1e-4 and serving["parity"]["argmax_agreement"] == 1.0
    assert section in (folder / "MODEL_CARD.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("modality", ["face", "speech", "text"])
def test_test_figures_re_measured_through_the_served_graph_did_not_drop(modality: str) -> None:
    card = json.loads((ROOT / "models" / modality / "card.json").read_text(encoding="utf-8"))
    if "members" in card.get("files", {}):
        # The voice ensemble has no framework-side test figures: release_speech measures the
        # test actors once, through the served recogniser, on the clips' bytes.
        assert card["test_metrics"]["RAVDESS actors 21-24"]["n"] == 240
        assert card["test_metrics"]["RAVDESS actors 21-24"]["accuracy"] >= card["previous_model"]["test_accuracy"]
        return
    served = card["serving"]["test_metrics"]
    assert served, "the card carries test figures measured through the ONNX graph"
    for split, metrics in served.items():
        framework = card["test_metrics"][split]
        assert metrics["n"] == framework["n"]
        assert metrics["accuracy"] >= framework["accuracy"] - 1e-9
        assert metrics["macro_f1"] >= framework["macro_f1"] - 1e-9


def test_no_pickle_ships_with_the_models() -> None:
    """Loading a bundled model reads data only: no joblib/pickle file is served."""
    shipped = [p.name for p in (ROOT / "models").rglob("*") if p.suffix in {".joblib", ".pkl", ".pickle"}]
    assert shipped == []


SERVING_PACKAGES = ("inference", "preprocessing", "services", "web", "database")
IMPORT_ALL = """
import importlib, json, pkgutil, sys
for package in sys.argv[1:]:
    for module in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
for name in ("app", "config", "security", "errors", "validation"):  # wsgi and worker build the app itself
    importlib.import_module(name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_no_module_of_the_serving_packages_imports_a_training_framework() -> None:
    """Importing every module a server could load (not only the ones one request touches) stays framework-free."""
    imported = set(run_fresh(IMPORT_ALL, *SERVING_PACKAGES))
    assert not imported & set(TRAINING_ONLY)
