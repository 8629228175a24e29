"""The exported ONNX graphs give the framework's probabilities (the training test group).

Each test exports the committed framework weights again into a temporary folder with the
same ``model_training.export`` function training calls, on the repository's fixtures, and
compares the graph's answers with the framework's within 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.onnx_session import open_session
from preprocessing.audio import TARGET_RATE, FeatureStats, decode_audio, mfcc_features, pad_frames, standardise
from preprocessing.image import crop_face, decode_image, detect_faces, whole_image_face

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
FIXTURES = ROOT / "tests" / "fixtures"

pytestmark = [pytest.mark.training, pytest.mark.slow]


def fixture_faces() -> np.ndarray:
    """The two pre-cropped FER2013 faces and the face found in the end-to-end photo."""
    faces = [
        whole_image_face(decode_image(p.read_bytes(), max_pixels=10**7))
        for p in sorted((FIXTURES / "face").glob("*.png"))
    ]
    photo = decode_image((FIXTURES / "e2e" / "face_happy.png").read_bytes(), max_pixels=10**7)
    faces.append(crop_face(photo, detect_faces(photo)[0]))
    return np.stack(faces).astype(np.float32)[..., None]


def fixture_features() -> list[np.ndarray]:
    """Standardised MFCC frames of two recordings of different lengths (each clip's own statistics)."""
    clips = [FIXTURES / "speech" / "03-01-05-02-02-02-24.flac", FIXTURES / "e2e" / "speech_happy.wav"]
    frames = [
        mfcc_features(d.signal, d.rate) for d in (decode_audio(p.read_bytes(), target_rate=TARGET_RATE) for p in clips)
    ]
    stats = FeatureStats.fit(np.concatenate(frames))
    return [standardise(f, stats) for f in frames]


def voice_network(path: Path) -> Path:
    """The voice network of the card's recipe, with seeded random weights, saved as Keras."""
    import keras

    from model_training import train_speech

    keras.utils.set_random_seed(7)
    hp = train_speech.hyper_parameters(train_speech.parse_args([]))
    _, serving = train_speech.build_model(hp)
    serving(pad_frames(fixture_features()), training=False)
    serving.save(path)
    return path


def test_the_face_graph_gives_keras_flip_averaged_probabilities(tmp_path: Path) -> None:
    import keras

    from model_training.export import export_face

    faces = fixture_faces()
    fields = export_face(MODELS / "face" / "face_model.keras", tmp_path / "face.onnx", validation=faces)
    model = keras.models.load_model(MODELS / "face" / "face_model.keras", compile=False)
    keras_probs = (model.predict(faces, verbose=0) + model.predict(faces[:, :, ::-1], verbose=0)) / 2
    session = open_session(MODELS / "face" / "face_model.onnx")
    served = session.run(None, {session.get_inputs()[0].name: faces})[0]
    assert np.max(np.abs(served - keras_probs)) <= 1e-4
    assert fields["parity"]["max_abs_diff"] <= 1e-4 and fields["opset"] >= 17


@pytest.mark.parametrize("float16_weights", [False, True], ids=["float32", "float16 storage"])
def test_the_speech_graph_gives_keras_probabilities_and_attention_for_any_length(
    tmp_path: Path, float16_weights: bool
) -> None:
    import keras

    from model_training.export import export_speech
    from model_training.speech_layers import CUSTOM_OBJECTS

    sequences = fixture_features()
    network = voice_network(tmp_path / "voice.keras")
    fields = export_speech(network, tmp_path / "speech.onnx", validation=sequences, float16_weights=float16_weights)
    assert fields["parity"]["attention_max_abs_diff"] <= 1e-4
    model = keras.models.load_model(network, custom_objects=CUSTOM_OBJECTS, compile=False)
    if float16_weights:  # the graph reproduces the network with its weights rounded to float16
        model.set_weights([w.astype(np.float16).astype(np.float32) for w in model.get_weights()])
        assert "float16" in fields["weights_storage"]
    session = open_session(tmp_path / "speech.onnx")
    for sequence in sequences:  # one clip at a time, as serving runs it, at its own length
        batch = pad_frames([sequence])
        probabilities, attention = model(batch, training=False)
        served_probs, served_attention = session.run(None, {session.get_inputs()[0].name: batch})
        assert np.max(np.abs(served_probs - np.asarray(probabilities))) <= 1e-4
        assert np.max(np.abs(served_attention - np.asarray(attention))) <= 1e-4


def test_float16_storage_halves_the_voice_graph(tmp_path: Path) -> None:
    from model_training.export import export_speech

    network = voice_network(tmp_path / "voice.keras")
    export_speech(network, tmp_path / "float32.onnx", validation=fixture_features())
    export_speech(network, tmp_path / "float16.onnx", validation=fixture_features(), float16_weights=True)
    assert (tmp_path / "float16.onnx").stat().st_size < 0.6 * (tmp_path / "float32.onnx").stat().st_size


def test_the_encoder_head_graph_gives_the_fitted_regression_s_probabilities(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from model_training.export import export_linear_head

    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, (350, 512)).astype(np.float32)
    y = np.repeat(np.arange(7), 50)
    x[np.arange(350), y] += 6.0
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(x, y)
    fields = export_linear_head(probe, tmp_path / "head.onnx", validation=x[:64], on="64 training vectors")
    assert fields["parity"]["max_abs_diff"] <= 1e-4
    session = open_session(tmp_path / "head.onnx")
    fresh = rng.normal(2.0, 3.0, (20, 512)).astype(np.float32)
    served = session.run(None, {"encoded": fresh})[0]
    assert np.max(np.abs(served - probe.predict_proba(fresh))) <= 1e-4


def test_the_text_export_reproduces_pytorch_through_the_same_windows(tmp_path: Path) -> None:
    import shutil

    from model_training.export import export_text

    folder = tmp_path / "text"
    shutil.copytree(MODELS / "text", folder, ignore=shutil.ignore_patterns("*.png", "model.onnx"))
    fields = export_text(folder, validation_texts=["I love this!", "🙂", "so tired of waiting " * 60])
    assert fields["parity"]["max_abs_diff"] <= 1e-4
    assert "float16 initializers" in fields["weights_storage"]
    assert (folder / "model.onnx").stat().st_size < 50 * 1024 * 1024  # float16 storage, not float32


def test_numpy_mfcc_features_equal_librosa_s_training_features() -> None:
    """Serving computes MFCC + deltas in numpy; training used librosa: the same numbers."""
    import librosa

    from preprocessing.audio import N_MELS, N_MFCC, _scaled_frames

    def librosa_features(signal: np.ndarray, rate: int) -> np.ndarray:
        n_fft, hop = _scaled_frames(rate)
        if len(signal) < n_fft:
            signal = np.pad(signal, (0, n_fft - len(signal)))
        mfcc = librosa.feature.mfcc(
            y=signal, sr=rate, n_mfcc=N_MFCC, n_fft=n_fft, hop_length=hop, n_mels=N_MELS, fmin=20.0, fmax=rate / 2
        )
        width = min(9, mfcc.shape[1] if mfcc.shape[1] % 2 == 1 else mfcc.shape[1] - 1)
        if width < 3:
            return np.concatenate([mfcc, np.zeros_like(mfcc), np.zeros_like(mfcc)]).T
        deltas = [librosa.feature.delta(mfcc, width=width, order=o, mode="nearest") for o in (1, 2)]
        return np.concatenate([mfcc, *deltas]).T

    signals = []
    for path in (FIXTURES / "speech" / "03-01-05-02-02-02-24.flac", FIXTURES / "e2e" / "speech_happy.wav"):
        decoded = decode_audio(path.read_bytes(), target_rate=TARGET_RATE)
        signals.append((decoded.signal, decoded.rate))
    signals.append((signals[0][0][:2000], TARGET_RATE))  # a few frames: narrower delta windows
    signals.append((librosa.resample(signals[1][0], orig_sr=TARGET_RATE, target_sr=22_050), 22_050))
    for signal, rate in signals:
        ours = mfcc_features(signal, rate)
        theirs = librosa_features(np.asarray(signal, dtype=np.float32), rate)
        assert ours.shape == theirs.shape
        assert np.max(np.abs(ours - theirs)) <= 1e-4
