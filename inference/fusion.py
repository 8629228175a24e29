"""Fuse per-modality emotion probabilities into one answer, and explain how.

Every strategy takes the 7-class probabilities of any non-empty subset of the modalities
(face, speech, text) and returns a :class:`FusionResult`: fused probabilities, label,
confidence and an explanation naming the modalities used, their effective weights and the
ones gated out (with the reason). Strategies:

``calibrated`` (default)
    Temperature-scale each modality (``softmax(log p / T)``, temperatures *fitted* on each
    model's validation split, see :mod:`inference.calibration`), gate out a modality whose
    calibrated confidence is below ``gate_threshold`` (0.30; the most confident one is
    always kept), weight by ``base weight x calibrated confidence`` and normalise. Without a
    fitted temperature for every modality of the request (``temperatures.json``) it raises
    :class:`~errors.ModelUnavailable`; it never assumes the identity instead.
``weighted``
    Fixed base weights (default face 0.40, speech 0.30, text 0.30) renormalised over the
    modalities present.
``adaptive``
    ``base weight x confidence`` on the raw probabilities (no calibration, no gating).
``voting``
    Each modality votes for its top label; the majority wins, ties are broken by the summed
    probabilities of the tied labels (then by label order). The reported probabilities are
    the plain mean of the modalities' probabilities, and the confidence is that mean's value
    for the voted label, so the label can differ from the mean's argmax.
``stacker``
    A scikit-learn Random Forest over the 21 concatenated probabilities plus a 3-value
    presence mask (an absent modality is all zeros), trained with random modality dropout by
    ``model_training/train_fusion.py``. Without the trained file it raises
    :class:`~errors.ModelUnavailable`; it never falls back to another strategy.

Base weights are user-adjustable per request for ``calibrated``, ``weighted`` and
``adaptive``; a partial mapping keeps the defaults for the modalities it does not name.
Invalid strategies or weights raise :class:`InvalidFusionOptions` (HTTP 422). This is the one
place their meaning is checked (a known strategy, known modalities, finite weights from 0 to
MAX_WEIGHT, not all zero); the API's request models (``web/schemas.py``) only parse their shape
(a string, a JSON object, a form field) and pass the values on as sent.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from errors import EmotionAppError, ModelUnavailable
from inference.calibration import TEMPERATURES_FILE, load_fused_temperatures, load_temperatures, temperature_scale
from inference.labels import EMOTIONS, MODALITIES, NUM_EMOTIONS, EmotionProbabilities

STRATEGIES: tuple[str, ...] = ("calibrated", "weighted", "adaptive", "voting", "stacker")
DEFAULT_STRATEGY = "calibrated"
DEFAULT_WEIGHTS: dict[str, float] = {"face": 0.40, "speech": 0.30, "text": 0.30}
DEFAULT_GATE_THRESHOLD = 0.30
#: Weights are renormalised, so only ratios matter; the cap keeps sums far from overflow.
MAX_WEIGHT = 1e6
#: Strategies whose arithmetic uses the base weights (the others ignore them).
WEIGHTED_STRATEGIES: frozenset[str] = frozenset({"calibrated", "weighted", "adaptive"})

logger = logging.getLogger(__name__)

STACKER_FILE = "stacker.onnx"
FUSION_CARD_FILE = "card.json"
#: Where the committed fusion artefacts live when no folder is given.
DEFAULT_FUSION_DIR = Path(__file__).resolve().parent.parent / "models" / "fusion"


class InvalidFusionOptions(EmotionAppError):
    """The requested strategy or weights are not usable (unknown, negative, NaN, all zero)."""

    status = 422
    code = "invalid_fusion_options"


# -- option validation -------------------------------------------------------------------
def validate_strategy(strategy: Any) -> str:
    """The canonical strategy name; :class:`InvalidFusionOptions` for anything else."""
    if strategy is None:
        return DEFAULT_STRATEGY
    if not isinstance(strategy, str) or strategy.strip().lower() not in STRATEGIES:
        raise InvalidFusionOptions(f"Unknown fusion strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    return strategy.strip().lower()


def _as_weight(modality: str, value: Any) -> float:
    """A weight as sent (a number, or a form field's string) -> a float from 0 to MAX_WEIGHT."""
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if isinstance(value, bool):
        raise InvalidFusionOptions(f"The weight for {modality} must be a number, not {shown}.")
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise InvalidFusionOptions(f"The weight for {modality} must be a number, not {shown}.") from None
    except OverflowError:  # an integer beyond any float
        weight = math.inf
    if not math.isfinite(weight) or weight < 0 or weight > MAX_WEIGHT:
        raise InvalidFusionOptions(f"The weight for {modality} must be a number from 0 to {MAX_WEIGHT:g}, not {shown}.")
    return weight


def resolve_weights(weights: Mapping[str, Any] | None, modalities: Iterable[str] | None = None) -> dict[str, float]:
    """Defaults overridden by ``weights``; checked finite, ≥ 0, known keys, not all zero.

    ``modalities`` (when given) are the ones the request actually has: their weights must not
    all be zero, or nothing could be fused.
    """
    resolved = dict(DEFAULT_WEIGHTS)
    if weights is not None:
        if not isinstance(weights, Mapping):
            raise InvalidFusionOptions('Weights must be an object like {"face": 0.4, "speech": 0.3, "text": 0.3}.')
        unknown = [str(key) for key in weights if key not in MODALITIES]
        if unknown:
            raise InvalidFusionOptions(
                f"Unknown modality in weights: {', '.join(sorted(unknown))}; expected {', '.join(MODALITIES)}."
            )
        for modality, value in weights.items():
            resolved[modality] = _as_weight(modality, value)
    considered = list(MODALITIES) if modalities is None else [m for m in modalities if m in MODALITIES]
    if considered and sum(resolved[m] for m in considered) <= 0:
        raise InvalidFusionOptions(f"The weights of {', '.join(considered)} are all zero; nothing could be fused.")
    return resolved


# -- results -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FusionResult(EmotionProbabilities):
    """The fused answer plus the explanation the API stores and shows."""

    strategy: str
    probabilities: tuple[float, ...]
    label: str
    confidence: float
    weights: dict[str, float]
    explanation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``fusion`` object of the API: strategy, base weights and explanation."""
        return {"strategy": self.strategy, "weights": dict(self.weights), "explanation": dict(self.explanation)}


def _check_probabilities(probabilities: Mapping[str, Sequence[float] | np.ndarray]) -> dict[str, np.ndarray]:
    """Validate the input mapping (non-empty, known modalities, 7 finite probabilities each)."""
    if not probabilities:
        raise ValueError("fusion needs the probabilities of at least one modality")
    checked: dict[str, np.ndarray] = {}
    for modality in MODALITIES:  # canonical order, so explanations are stable
        if modality not in probabilities:
            continue
        row = np.asarray(probabilities[modality], dtype=np.float64).reshape(-1)
        if row.shape != (NUM_EMOTIONS,) or not np.all(np.isfinite(row)) or np.any(row < 0) or row.sum() <= 0:
            raise ValueError(f"{modality}: expected {NUM_EMOTIONS} finite non-negative probabilities")
        checked[modality] = row / row.sum()
    unknown = set(probabilities) - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities: {sorted(unknown)}")
    return checked


def _result(
    strategy: str,
    fused: np.ndarray,
    weights: Mapping[str, float],
    explanation: dict[str, Any],
    label_index: int | None = None,
) -> FusionResult:
    fused = np.asarray(fused, dtype=np.float64)
    fused = fused / fused.sum()
    index = int(np.argmax(fused)) if label_index is None else label_index
    return FusionResult(
        strategy=strategy,
        probabilities=tuple(float(p) for p in fused),
        label=EMOTIONS[index],
        confidence=float(fused[index]),
        weights={m: float(w) for m, w in weights.items()},
        explanation=explanation,
    )


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {key: round(float(value), 6) for key, value in values.items()}


def _zero_weight_split(
    probs: Mapping[str, np.ndarray], weights: Mapping[str, float]
) -> tuple[list[str], dict[str, str]]:
    """Modalities with a positive base weight, and the zero-weight ones with their reason."""
    kept = [m for m in probs if weights[m] > 0]
    gated = {m: "base weight is 0" for m in probs if weights[m] <= 0}
    if not kept:
        raise InvalidFusionOptions(f"The weights of {', '.join(probs)} are all zero; nothing could be fused.")
    return kept, gated


# -- the strategies as pure functions ----------------------------------------------------
def _linear_pool(
    strategy: str,
    probabilities: Mapping[str, Sequence[float]],
    weights: Mapping[str, Any] | None,
    *,
    raw_weights: Callable[[dict[str, float], dict[str, np.ndarray]], Mapping[str, float]],
    method: str,
    explain: Callable[[dict[str, np.ndarray]], dict[str, Any]] | None = None,
) -> FusionResult:
    """The weighted and adaptive strategies: a linear pool whose per-modality weights
    (``raw_weights`` of the base weights and probabilities) are renormalised over the modalities used."""
    probs = _check_probabilities(probabilities)
    base = resolve_weights(weights, probs)
    used, gated = _zero_weight_split(probs, base)
    raw = raw_weights({m: base[m] for m in probs}, probs)
    total = sum(raw[m] for m in used)
    effective = {m: raw[m] / total for m in used}
    fused = sum(effective[m] * probs[m] for m in used)
    explanation = {
        "used": used,
        "effective_weights": _rounded(effective),
        "gated_out": gated,
        "base_weights": _rounded({m: base[m] for m in probs}),
        **(explain(probs) if explain else {}),
        "method": method,
    }
    return _result(strategy, fused, {m: base[m] for m in probs}, explanation)


def fuse_weighted(
    probabilities: Mapping[str, Sequence[float]], weights: Mapping[str, Any] | None = None
) -> FusionResult:
    """Base weights renormalised over the modalities present; a linear pool."""
    return _linear_pool(
        "weighted",
        probabilities,
        weights,
        raw_weights=lambda base, _probs: base,
        method="fixed base weights renormalised over the modalities present",
    )


def fuse_adaptive(
    probabilities: Mapping[str, Sequence[float]], weights: Mapping[str, Any] | None = None
) -> FusionResult:
    """``base weight x confidence`` (top probability), on uncalibrated probabilities."""
    return _linear_pool(
        "adaptive",
        probabilities,
        weights,
        raw_weights=lambda base, probs: {m: base[m] * float(probs[m].max()) for m in base},
        method="base weight x confidence, normalised; no calibration",
        explain=lambda probs: {"confidences": _rounded({m: float(probs[m].max()) for m in probs})},
    )


def missing_temperature_error(missing: Sequence[str], *, file_missing: bool = False) -> ModelUnavailable:
    """The 503 for a calibrated request whose modalities lack a fitted temperature."""
    where = (
        "models/fusion/temperatures.json is missing"
        if file_missing
        else f"models/fusion/temperatures.json has none for {'it' if len(missing) == 1 else 'them'}"
    )
    return ModelUnavailable(
        f"Calibrated fusion needs a fitted temperature for {', '.join(missing)}, but {where}; "
        "choose another fusion strategy or run model_training.train_fusion."
    )


def fuse_calibrated(
    probabilities: Mapping[str, Sequence[float]],
    weights: Mapping[str, Any] | None = None,
    *,
    temperatures: Mapping[str, float],
    gate_threshold: float = DEFAULT_GATE_THRESHOLD,
    fused_temperatures: Mapping[str, float] | None = None,
) -> FusionResult:
    """Temperature-scale, gate out low-confidence modalities, weight by base x confidence.

    Every modality given needs a fitted temperature: a missing one raises
    :class:`ModelUnavailable` rather than passing uncalibrated probabilities off as calibrated.
    Averaging calibrated modalities gives an *under*-confident mixture (two agreeing 70 %
    answers are worth more than 70 %), so when ``fused_temperatures`` holds one for the
    modalities used (keyed ``"face+speech"`` etc., fitted on validation triples) the mixture is
    scaled by it too; the label never changes.
    """
    probs = _check_probabilities(probabilities)
    base = resolve_weights(weights, probs)
    temperatures = dict(temperatures)
    missing = [m for m in probs if m not in temperatures]
    if missing:
        raise missing_temperature_error(missing)
    used_t = {m: float(temperatures[m]) for m in probs}
    calibrated = {m: temperature_scale(probs[m], used_t[m]) for m in probs}
    confidences = {m: float(calibrated[m].max()) for m in probs}

    candidates, gated = _zero_weight_split(probs, base)
    confident = [m for m in candidates if confidences[m] >= gate_threshold]
    if not confident:  # never gate out the last one: keep the most confident
        best = max(candidates, key=lambda m: confidences[m])
        confident = [best]
    for m in candidates:
        if m not in confident:
            gated[m] = f"calibrated confidence {confidences[m]:.2f} is below the threshold {gate_threshold:.2f}"

    used = [m for m in MODALITIES if m in confident]
    raw = {m: base[m] * confidences[m] for m in used}
    total = sum(raw.values())
    effective = {m: raw[m] / total for m in used}
    fused = sum(effective[m] * calibrated[m] for m in used)
    mixture = "+".join(used)
    fused_t = (fused_temperatures or {}).get(mixture) if len(used) > 1 else None
    if fused_t is not None:
        fused = temperature_scale(fused, float(fused_t))
    explanation: dict[str, Any] = {
        "used": used,
        "effective_weights": _rounded(effective),
        "gated_out": gated,
        "base_weights": _rounded({m: base[m] for m in probs}),
        "temperatures": _rounded(used_t),
        "calibrated_confidences": _rounded(confidences),
        "gate_threshold": gate_threshold,
        "method": "temperature scaling, confidence gating, base weight x calibrated confidence",
        "calibration": "fitted",
    }
    if fused_t is not None:
        explanation["fused_temperature"] = round(float(fused_t), 6)
    return _result("calibrated", fused, {m: base[m] for m in probs}, explanation)


def fuse_voting(probabilities: Mapping[str, Sequence[float]]) -> FusionResult:
    """Majority of top labels; ties broken by summed probabilities, then by label order."""
    probs = _check_probabilities(probabilities)
    votes: dict[str, list[str]] = {}
    for m, row in probs.items():
        votes.setdefault(EMOTIONS[int(np.argmax(row))], []).append(m)
    most = max(len(voters) for voters in votes.values())
    tied = [label for label in EMOTIONS if len(votes.get(label, ())) == most]
    summed = sum(probs.values())
    winner = max(tied, key=lambda label: (summed[EMOTIONS.index(label)], -EMOTIONS.index(label)))
    mean = summed / len(probs)
    used = list(probs)
    explanation: dict[str, Any] = {
        "used": used,
        "effective_weights": _rounded({m: 1.0 / len(used) for m in used}),
        "gated_out": {},
        "votes": {label: voters for label, voters in votes.items()},
        "method": "majority of top labels; probabilities are the mean of the modalities'",
    }
    if len(tied) > 1:
        explanation["tie_break"] = {
            "tied": tied,
            "summed_probabilities": _rounded({label: summed[EMOTIONS.index(label)] for label in tied}),
        }
    return _result("voting", mean, {}, explanation, label_index=EMOTIONS.index(winner))


def stacker_features(probabilities: Mapping[str, Sequence[float] | np.ndarray]) -> np.ndarray:
    """The stacker's 24 inputs: face, speech, text probabilities (zeros if absent) + presence mask."""
    blocks: list[np.ndarray] = []
    mask: list[float] = []
    for modality in MODALITIES:
        if modality in probabilities and probabilities[modality] is not None:
            blocks.append(np.asarray(probabilities[modality], dtype=np.float64).reshape(NUM_EMOTIONS))
            mask.append(1.0)
        else:
            blocks.append(np.zeros(NUM_EMOTIONS))
            mask.append(0.0)
    return np.concatenate([*blocks, np.asarray(mask)])


def stacker_feature_matrix(probabilities: Mapping[str, np.ndarray], present: np.ndarray | None = None) -> np.ndarray:
    """Batch version: ``{modality: (n, 7)}`` plus an optional ``(n, 3)`` presence mask -> ``(n, 24)``."""
    n = len(next(iter(probabilities.values())))
    if present is None:
        present = np.asarray([[m in probabilities for m in MODALITIES]] * n, dtype=float)
    present = np.asarray(present, dtype=float)
    blocks = []
    for j, modality in enumerate(MODALITIES):
        block = np.asarray(probabilities.get(modality, np.zeros((n, NUM_EMOTIONS))), dtype=np.float64)
        blocks.append(block * present[:, j : j + 1])
    return np.concatenate([*blocks, present], axis=1)


def stacker_proba(model: Any, features: np.ndarray) -> np.ndarray:
    """``model.predict_proba`` mapped onto the 7 labels (classes unseen in training get 0)."""
    raw = np.asarray(model.predict_proba(np.atleast_2d(features)), dtype=np.float64)
    out = np.zeros((raw.shape[0], NUM_EMOTIONS))
    for column, cls in enumerate(model.classes_):
        out[:, int(cls)] = raw[:, column]
    return out


def fuse_stacker(
    probabilities: Mapping[str, Sequence[float]], model: Any, importances: Mapping[str, float] | None = None
) -> FusionResult:
    """The trained Random Forest's answer for this subset of modalities."""
    probs = _check_probabilities(probabilities)
    fused = stacker_proba(model, stacker_features(probs))[0]
    if fused.sum() <= 0:
        raise ModelUnavailable("The fusion stacker returned no probabilities; it needs retraining.")
    used = list(probs)
    explanation: dict[str, Any] = {
        "used": used,
        "gated_out": {},
        "presence_mask": {m: int(m in probs) for m in MODALITIES},
        "method": "Random Forest over the 21 probabilities plus a presence mask",
    }
    if importances:
        share = {m: float(importances.get(m, 0.0)) for m in used}
        total = sum(share.values())
        if total > 0:
            explanation["effective_weights"] = _rounded({m: v / total for m, v in share.items()})
            explanation["effective_weights_note"] = (
                "the forest's global feature-importance share of each modality present, not a per-request weight"
            )
    explanation.setdefault("effective_weights", {})
    return _result("stacker", fused, {}, explanation)


class OnnxStacker:
    """The Random Forest exported by ``model_training.export`` (skl2onnx), run by ONNX Runtime.

    It answers like the scikit-learn model it came from (``predict_proba``, ``classes_``,
    ``feature_importances_``), so the strategies do not care which one they hold; loading it
    reads data only, never a pickle.
    """

    def __init__(self, path: str | Path) -> None:
        from inference.onnx_session import open_session

        self._session = open_session(path, threads=1)
        self._input = self._session.get_inputs()[0].name
        metadata = self._session.get_modelmeta().custom_metadata_map
        self.classes_ = np.asarray(json.loads(metadata["classes"]), dtype=int)
        self.feature_importances_ = np.asarray(json.loads(metadata.get("feature_importances", "[]")), dtype=float)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(np.atleast_2d(features), dtype=np.float32)
        return np.asarray(self._session.run(None, {self._input: rows})[1], dtype=np.float64)


# -- the engine the predictor and the web layer use --------------------------------------
class FusionEngine:
    """Holds the fitted artefacts (temperatures, stacker) and dispatches to a strategy.

    Artefacts load lazily and once, from ``model_dir`` (``models/fusion`` by default), unless
    given explicitly. A missing ``temperatures.json`` (or one without a modality a request
    needs) makes only the ``calibrated`` strategy unavailable for that request; a missing
    stacker makes only the ``stacker`` strategy unavailable.
    """

    def __init__(
        self,
        model_dir: str | Path | None = DEFAULT_FUSION_DIR,
        *,
        temperatures: Mapping[str, float] | None = None,
        stacker: Any | None = None,
        gate_threshold: float = DEFAULT_GATE_THRESHOLD,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.gate_threshold = float(gate_threshold)
        self._temperatures = dict(temperatures) if temperatures is not None else None
        #: Given temperatures come without a fitted mixture temperature (nothing is read from disk).
        self._fused_temperatures: dict[str, float] | None = {} if temperatures is not None else None
        self._stacker = stacker
        self._importances: dict[str, float] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_models_dir(cls, models_dir: str | Path, **kwargs: Any) -> FusionEngine:
        """The engine for ``<models_dir>/fusion`` (the layout the registry uses)."""
        return cls(Path(models_dir) / "fusion", **kwargs)

    # -- artefacts ----------------------------------------------------------------------
    @property
    def temperatures(self) -> dict[str, float]:
        """Fitted temperatures per modality (``{}`` when none were fitted)."""
        if self._temperatures is None:
            self._temperatures = self._read_temperatures(load_temperatures)
        return dict(self._temperatures)

    @property
    def fused_temperatures(self) -> dict[str, float]:
        """Temperatures of the calibrated mixture per set of modalities used (``{}`` when none were fitted)."""
        if self._fused_temperatures is None:
            self._fused_temperatures = self._read_temperatures(load_fused_temperatures)
        return dict(self._fused_temperatures)

    def _read_temperatures(self, loader: Callable[[Path], dict[str, float]]) -> dict[str, float]:
        """One section of ``temperatures.json`` (``{}`` without the file); an unreadable file is a 503."""
        with self._lock:
            path = self.model_dir / TEMPERATURES_FILE if self.model_dir else None
            try:
                return loader(path) if path else {}
            except (OSError, ValueError) as exc:
                logger.exception("The fusion temperatures file %s could not be read", path)
                raise ModelUnavailable("The fusion temperatures file is unreadable; see the server log.") from exc

    def missing_temperatures(self, modalities: Iterable[str] | None = None) -> list[str]:
        """The modalities among ``modalities`` (all when None) without a fitted temperature."""
        wanted = set(MODALITIES if modalities is None else modalities)
        temperatures = self.temperatures
        return [m for m in MODALITIES if m in wanted and m not in temperatures]

    def require_temperatures(self, modalities: Iterable[str] | None = None) -> dict[str, float]:
        """The fitted temperatures; :class:`ModelUnavailable` when one of ``modalities`` has none."""
        missing = self.missing_temperatures(modalities)
        if missing:
            temperatures = self.temperatures
            raise missing_temperature_error(missing, file_missing=not temperatures)
        return self.temperatures

    def unavailable_strategies(self) -> list[str]:
        """Strategies whose trained artefact is missing: calibrated without fitted temperatures
        (or with an unreadable file), stacker without its Random Forest."""
        missing = []
        try:
            if not self.temperatures:
                missing.append("calibrated")
        except ModelUnavailable:
            missing.append("calibrated")
        if not self.stacker_available():
            missing.append("stacker")
        return missing

    def stacker_available(self) -> bool:
        return self._stacker is not None or bool(self.model_dir and (self.model_dir / STACKER_FILE).is_file())

    @property
    def stacker(self) -> Any:
        """The trained Random Forest; :class:`ModelUnavailable` when it is not installed."""
        if self._stacker is None:
            with self._lock:
                if self._stacker is None:
                    self._stacker = self._load_stacker()
        return self._stacker

    def _load_stacker(self) -> Any:
        path = self.model_dir / STACKER_FILE if self.model_dir else None
        if path is None or not path.is_file():
            raise ModelUnavailable(
                f"The fusion stacker is not installed (models/fusion/{STACKER_FILE} is missing); "
                "choose another fusion strategy or run model_training.train_fusion."
            )
        try:
            model = OnnxStacker(path)
        except Exception as exc:  # a broken file must not look like a client error
            logger.exception("The fusion stacker %s failed to load", path)
            raise ModelUnavailable("The fusion stacker failed to load; see the server log.") from exc
        return model

    def _stacker_importances(self) -> dict[str, float]:
        if self._importances is None:
            raw = getattr(self.stacker, "feature_importances_", None)
            importances: dict[str, float] = {}
            if raw is not None and len(raw) == NUM_EMOTIONS * len(MODALITIES) + len(MODALITIES):
                for j, modality in enumerate(MODALITIES):
                    block = raw[j * NUM_EMOTIONS : (j + 1) * NUM_EMOTIONS]
                    importances[modality] = float(np.sum(block) + raw[NUM_EMOTIONS * len(MODALITIES) + j])
            self._importances = importances
        return self._importances

    def card(self) -> dict[str, Any]:
        """``models/fusion/card.json`` when present (else ``{}``)."""
        path = self.model_dir / FUSION_CARD_FILE if self.model_dir else None
        if path is None or not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    # -- requests -----------------------------------------------------------------------
    def validate(
        self,
        strategy: Any = DEFAULT_STRATEGY,
        weights: Mapping[str, Any] | None = None,
        modalities: Iterable[str] | None = None,
    ) -> tuple[str, dict[str, float]]:
        """Check options before any model runs: canonical strategy, resolved weights.

        Also raises :class:`ModelUnavailable` for ``stacker`` when it is not installed, and for
        ``calibrated`` when a modality of the request (all three when ``modalities`` is None)
        has no fitted temperature, so a request fails fast instead of after running three
        recognisers.
        """
        name = validate_strategy(strategy)
        if modalities is not None:
            modalities = list(modalities)
        resolved = resolve_weights(weights, modalities if name in WEIGHTED_STRATEGIES else None)
        if name == "stacker":
            self.stacker  # noqa: B018 - load (or refuse) now
        if name == "calibrated":
            self.require_temperatures(modalities)
        return name, resolved

    def fuse(
        self,
        probabilities: Mapping[str, Sequence[float] | np.ndarray],
        strategy: Any = DEFAULT_STRATEGY,
        weights: Mapping[str, Any] | None = None,
        *,
        spoken_text: bool = False,
    ) -> FusionResult:
        """Fuse ``{modality: 7 probabilities}`` with ``strategy``.

        ``spoken_text``: the text is the transcript of the voice recording. Words the text model
        reads as neutral then carry no emotional content rather than evidence of a neutral mood
        ("Dogs are sitting by the door" shouted in anger), so they are left out and the voice
        (and face) decide; words with an emotion are fused as usual.
        """
        if spoken_text and "text" in probabilities and len(probabilities) > 1:
            words = np.asarray(probabilities["text"], dtype=np.float64).reshape(-1)
            if words.shape == (NUM_EMOTIONS,) and EMOTIONS[int(np.argmax(words))] == "neutral":
                rest = {m: p for m, p in probabilities.items() if m != "text"}
                result = self._fuse(rest, strategy, weights)
                result.explanation.setdefault("gated_out", {})["text"] = (
                    "the spoken words read as neutral: words without emotion say nothing about how they were said, "
                    "so the voice decides"
                )
                return result
        return self._fuse(probabilities, strategy, weights)

    def _fuse(
        self,
        probabilities: Mapping[str, Sequence[float] | np.ndarray],
        strategy: Any = DEFAULT_STRATEGY,
        weights: Mapping[str, Any] | None = None,
    ) -> FusionResult:
        name = validate_strategy(strategy)
        if name == "calibrated":
            resolve_weights(weights)  # a malformed option is the client's error, whatever is installed
            temperatures = self.require_temperatures(probabilities)
            return fuse_calibrated(
                probabilities,
                weights,
                temperatures=temperatures,
                gate_threshold=self.gate_threshold,
                fused_temperatures=self.fused_temperatures,
            )
        if name == "weighted":
            return fuse_weighted(probabilities, weights)
        if name == "adaptive":
            return fuse_adaptive(probabilities, weights)
        resolve_weights(weights)  # still reject malformed weights for the strategies that ignore them
        if name == "voting":
            result = fuse_voting(probabilities)
        else:
            result = fuse_stacker(probabilities, self.stacker, self._stacker_importances())
        if weights:
            result.explanation["weights_note"] = f"The {name} strategy does not use base weights; they were ignored."
        return result

    def status(self) -> dict[str, Any]:
        """What /api/models reports about fusion (never loads the stacker)."""
        try:
            temperatures = self.temperatures
            temperature_error = None
        except ModelUnavailable as exc:
            temperatures, temperature_error = {}, exc.message
        card = self.card()
        missing = [m for m in MODALITIES if m not in temperatures]
        report: dict[str, Any] = {
            "strategies": list(STRATEGIES),
            "default_strategy": DEFAULT_STRATEGY,
            "default_weights": dict(DEFAULT_WEIGHTS),
            "gate_threshold": self.gate_threshold,
            "temperatures": temperatures,
            "calibration": "fitted" if not missing else f"unavailable (no fitted temperature for {', '.join(missing)})",
            "stacker_available": self.stacker_available(),
            "model_version": card.get("version"),
            "fitted_for": card.get("component_models", {}),
        }
        if temperature_error:
            report["error"] = temperature_error
        return report
