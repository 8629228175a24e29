"""Temperature scaling of probability vectors, and fitting a temperature by minimising NLL.

The recognisers hand over probabilities, not logits, so a temperature is applied as
``softmax(log p / T)``, which equals ``p ** (1 / T)`` renormalised. ``T > 1`` softens an
overconfident model, ``T < 1`` sharpens an underconfident one, ``T = 1`` is the identity.
The argmax never changes, so temperature scaling changes confidence, never the label.

Temperatures are fitted on each model's *validation* outputs (Guo et al., 2017) by
``model_training/train_fusion.py`` and stored in ``models/fusion/temperatures.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from inference.labels import MODALITIES, NUM_EMOTIONS

TEMPERATURES_FILE = "temperatures.json"
#: Probabilities are clipped here before the log so an exact 0 stays finite.
_EPSILON = 1e-12
#: The search range for a fitted temperature; wider than any sane model needs.
TEMPERATURE_BOUNDS = (0.05, 20.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis, shifted by the row maximum so it never overflows."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(shifted - shifted.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def temperature_scale(probabilities: np.ndarray | Sequence[float], temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row-wise, for one ``(7,)`` vector or an ``(n, 7)`` batch."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, not {temperature!r}")
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.shape[-1] != NUM_EMOTIONS:
        raise ValueError(f"expected {NUM_EMOTIONS} probabilities per row, got shape {probs.shape}")
    return softmax(np.log(np.clip(probs, _EPSILON, 1.0)) / temperature)


def negative_log_likelihood(probabilities: np.ndarray, y_true: Sequence[int], temperature: float = 1.0) -> float:
    """Mean NLL of the true labels after temperature scaling."""
    scaled = temperature_scale(probabilities, temperature)
    y = np.asarray(y_true, dtype=int)
    picked = np.clip(scaled[np.arange(len(y)), y], _EPSILON, 1.0)
    return float(-np.mean(np.log(picked)))


def fit_temperature(probabilities: np.ndarray, y_true: Sequence[int]) -> float:
    """The temperature minimising validation NLL (bounded scalar search over log T)."""
    from scipy.optimize import minimize_scalar

    probs = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y_true, dtype=int)
    if probs.ndim != 2 or probs.shape[1] != NUM_EMOTIONS or len(probs) != len(y) or len(y) == 0:
        raise ValueError("fit_temperature needs an (n, 7) array and n labels, n > 0")
    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(probs, y, math.exp(log_t)),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(math.exp(result.x))


def load_temperatures(path: str | Path) -> dict[str, float]:
    """Read ``temperatures.json`` -> ``{modality: T}``; a missing file gives ``{}``.

    A present but malformed file raises ``ValueError``: a broken artefact must be noticed,
    not silently replaced by the identity.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    raw = data.get("temperatures", data) if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path.name}: expected an object of modality temperatures")
    temperatures: dict[str, float] = {}
    for modality, value in raw.items():
        if modality not in MODALITIES:
            raise ValueError(f"{path.name}: unknown modality {modality!r}")
        temperature = float(value)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"{path.name}: temperature for {modality} must be positive, not {value!r}")
        temperatures[modality] = temperature
    return temperatures


def load_fused_temperatures(path: str | Path) -> dict[str, float]:
    """Read the calibrated mixture's temperatures from ``temperatures.json`` -> ``{"face+speech": T, ...}``.

    Keys name the modalities a mixture used, in :data:`MODALITIES` order; a file without the
    ``fused`` section gives ``{}`` (the mixture is then left as averaged).
    """
    path = Path(path)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    raw = data.get("fused", {}) if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path.name}: 'fused' must map modality sets to temperatures")
    fused: dict[str, float] = {}
    for key, value in raw.items():
        parts = str(key).split("+")
        if len(parts) < 2 or any(p not in MODALITIES for p in parts) or parts != [m for m in MODALITIES if m in parts]:
            raise ValueError(f"{path.name}: {key!r} is not a set of two or more modalities in canonical order")
        temperature = float(value)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"{path.name}: fused temperature for {key} must be positive, not {value!r}")
        fused[str(key)] = temperature
    return fused
