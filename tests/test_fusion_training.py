"""Building label-matched triples and fitting the fusion artefacts (temperatures, stacker)."""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pytest

from inference.fusion import STACKER_FILE, FusionEngine
from inference.labels import EMOTIONS, MODALITIES
from model_training.common import DEFAULT_DATA_ROOT, ece_noise_floor, expected_calibration_error
from model_training.export import export_stacker
from model_training.train_fusion import (
    STACKER_GRID,
    dropout_masks,
    fit_fused_temperatures,
    fit_temperatures,
    select_stacker,
    stacker_training_set,
    train_stacker,
)
from model_training.triples import (
    Pool,
    attach_out_of_fold,
    build_triples,
    speech_pool,
    split_pool,
    text_pool,
    triple_probabilities,
)

pytestmark = pytest.mark.training  # the training test group: frameworks are imported here


def synthetic_pool(modality: str, labels: list[int], seed: int = 0, strength: float = 2.0) -> Pool:
    """A pool whose 'recogniser' probabilities lean towards the true label (for arithmetic only)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels, dtype=np.int64)
    logits = rng.normal(0.0, 1.0, (len(y), 7))
    logits[np.arange(len(y)), y] += strength
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ids = [f"{modality}:{i}" for i in range(len(y))]
    return Pool(modality, "validation", f"synthetic {modality}", ids, y, list(range(len(y))), probabilities=probs)


def all_label_pools(sizes=(50, 5, 200)) -> dict[str, Pool]:
    return {
        m: synthetic_pool(m, [label for label in range(7) for _ in range(size)], seed=i)
        for i, (m, size) in enumerate(zip(MODALITIES, sizes, strict=True))
    }


def test_triples_are_balanced_and_every_member_has_the_triples_label():
    pools = all_label_pools()

    triples = build_triples(pools, per_label=12, seed=3, split="validation")

    assert len(triples) == 7 * 12
    assert np.bincount(triples.labels, minlength=7).tolist() == [12] * 7
    for modality, pool in pools.items():
        assert np.array_equal(pool.labels[triples.index[modality]], triples.labels)
    assert triples.skipped_labels == {}


def test_triples_are_reproducible_from_the_seed():
    pools = all_label_pools()

    first = build_triples(pools, 10, seed=7, split="test")
    again = build_triples(pools, 10, seed=7, split="test")
    other = build_triples(pools, 10, seed=8, split="test")

    assert all(np.array_equal(first.index[m], again.index[m]) for m in MODALITIES)
    assert any(not np.array_equal(first.index[m], other.index[m]) for m in MODALITIES)


def test_a_small_pool_is_reused_evenly_not_at_random():
    pools = all_label_pools(sizes=(50, 5, 200))  # 5 speech clips per label

    triples = build_triples(pools, per_label=12, seed=1, split="validation")

    for label in range(7):
        used = triples.index["speech"][triples.labels == label]
        counts = np.bincount(used, minlength=len(pools["speech"]))[pools["speech"].labels == label]
        assert counts.max() - counts.min() <= 1  # 12 draws over 5 clips: each 2 or 3 times
        big = triples.index["text"][triples.labels == label]
        assert len(set(big.tolist())) == 12  # a large pool is not reused at all


def test_a_label_a_corpus_lacks_is_skipped_and_reported_never_filled_in():
    pools = all_label_pools()
    no_disgust = [label for label in range(7) if label != EMOTIONS.index("disgust") for _ in range(20)]
    pools["text"] = synthetic_pool("text", no_disgust)

    triples = build_triples(pools, per_label=5, seed=0, split="test")

    assert EMOTIONS.index("disgust") not in triples.labels
    assert "text" in triples.skipped_labels["disgust"]
    assert len(triples) == 6 * 5


def test_validation_folds_keep_a_speaker_on_one_side_and_split_other_pools_by_label():
    speech = synthetic_pool("speech", [label for label in range(7) for _ in range(8)])
    speech.groups = ["19", "20"] * 28
    text = synthetic_pool("text", [label for label in range(7) for _ in range(10)])

    rest, fold = split_pool(speech, 0, 2, seed=0)
    assert len(set(fold.groups)) == 1 and set(rest.groups) | set(fold.groups) == {"19", "20"}
    assert not set(rest.ids) & set(fold.ids)

    rest, fold = split_pool(text, 1, 2, seed=0)
    assert not set(rest.ids) & set(fold.ids) and len(rest) + len(fold) == len(text)
    assert np.bincount(fold.labels, minlength=7).tolist() == [5] * 7
    assert fold.probabilities is not None and len(fold.probabilities) == len(fold)


def test_dropout_masks_start_with_all_modalities_and_are_never_empty():
    masks = dropout_masks(500, copies=4, drop_probability=0.6, rng=np.random.default_rng(0))

    assert masks.shape == (2500, 3)
    assert np.all(masks[:500] == 1)
    assert np.all(masks.sum(axis=1) >= 1)
    seen = {tuple(row) for row in masks[500:].astype(int).tolist()}
    assert len(seen) == 7  # every non-empty subset occurs


def test_the_stacker_training_set_zeroes_the_dropped_modalities():
    pools = all_label_pools()
    triples = build_triples(pools, 10, seed=0, split="validation")
    probs = triple_probabilities(triples, pools)

    features, labels = stacker_training_set(probs, triples.labels, copies=3, drop_probability=0.5, seed=0)

    assert features.shape == (4 * len(triples), 24)
    assert np.array_equal(labels[: len(triples)], triples.labels)
    for j in range(3):
        absent = features[:, 21 + j] == 0
        assert np.all(features[absent, 7 * j : 7 * j + 7] == 0)
        present = ~absent
        assert np.allclose(features[present, 7 * j : 7 * j + 7].sum(axis=1), 1.0)


@pytest.mark.training
def test_a_trained_stacker_answers_every_subset_through_the_engine(tmp_path):
    pools = all_label_pools()
    triples = build_triples(pools, 40, seed=0, split="validation")
    probs = triple_probabilities(triples, pools)
    features, labels = stacker_training_set(probs, triples.labels, copies=3, drop_probability=0.4, seed=0)
    args = argparse.Namespace(n_estimators=20, min_samples_leaf=5, max_depth=8, threads=1, seed=0)
    export_stacker(train_stacker(features, labels, args), tmp_path / STACKER_FILE, validation_features=features)
    engine = FusionEngine(tmp_path)

    for size in (1, 2, 3):
        for subset in itertools.combinations(MODALITIES, size):
            result = engine.fuse({m: probs[m][0] for m in subset}, "stacker")
            assert sum(result.probabilities) == pytest.approx(1.0)
            assert result.explanation["used"] == list(subset)


def test_stacker_settings_are_chosen_from_the_grid_by_validation_folds():
    pools = all_label_pools(sizes=(20, 8, 20))
    pools["speech"].groups = ["19", "20"] * (len(pools["speech"]) // 2)
    args = argparse.Namespace(
        train_per_label=16, copies=1, drop_probability=0.4, seed=0, n_estimators=5, max_depth=6, threads=1
    )

    chosen, table = select_stacker(pools, args)

    assert chosen in list(STACKER_GRID)
    assert len(table) == len(STACKER_GRID)
    assert all(len(row["fold_scores"]) == 2 for row in table)


def test_temperatures_are_fitted_per_modality_and_lower_the_validation_nll():
    pools = all_label_pools(sizes=(300, 300, 300))

    temperatures, report = fit_temperatures(pools)

    assert set(temperatures) == set(MODALITIES)
    for modality in MODALITIES:
        assert report[modality]["nll_after"] <= report[modality]["nll_before"] + 1e-9
        assert temperatures[modality] > 0


def test_the_calibrated_mixture_gets_a_temperature_per_set_of_modalities_that_sharpens_it():
    """Averaging three calibrated, independent answers is under-confident; its fitted temperature is below 1."""
    pools = all_label_pools(sizes=(300, 300, 300))
    temperatures, _ = fit_temperatures(pools)
    triples = build_triples(pools, 100, 0, "validation")
    probs = triple_probabilities(triples, pools)

    fused, report = fit_fused_temperatures(probs, triples.labels, temperatures)

    assert "face+speech+text" in fused and fused["face+speech+text"] < 1.0
    assert set(fused) <= {"face+speech+text", "face+speech", "face+text", "speech+text"}
    for key in fused:
        assert report[key]["ece_after"] < report[key]["ece_before"]


def test_the_engine_applies_the_mixture_temperature_without_changing_the_label(tmp_path):
    import json

    probabilities = {"face": [0.5, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05], "text": [0.4, 0.1, 0.2, 0.1, 0.1, 0.05, 0.05]}
    (tmp_path / "temperatures.json").write_text(json.dumps({"temperatures": {m: 1.0 for m in MODALITIES}}))
    plain = FusionEngine(tmp_path).fuse(probabilities)
    (tmp_path / "temperatures.json").write_text(
        json.dumps({"temperatures": {m: 1.0 for m in MODALITIES}, "fused": {"face+text": 0.5}})
    )
    sharpened = FusionEngine(tmp_path).fuse(probabilities)

    assert sharpened.label == plain.label
    assert sharpened.confidence > plain.confidence
    assert sharpened.explanation["fused_temperature"] == 0.5
    alone = FusionEngine(tmp_path).fuse({"face": probabilities["face"]})  # one modality: nothing to sharpen
    assert "fused_temperature" not in alone.explanation


def test_a_malformed_mixture_temperature_file_is_refused_not_ignored(tmp_path):
    import json

    from errors import ModelUnavailable

    (tmp_path / "temperatures.json").write_text(
        json.dumps({"temperatures": {m: 1.0 for m in MODALITIES}, "fused": {"text+face": 0.5}})
    )
    with pytest.raises(ModelUnavailable):
        FusionEngine(tmp_path).fuse({"face": [1 / 7] * 7, "text": [1 / 7] * 7})


def test_actor_fold_validation_probabilities_come_from_the_out_of_fold_file(tmp_path):
    from pathlib import Path

    names = ["03-01-05-01-01-01-01.wav", "03-01-03-01-01-01-02.wav", "03-01-04-01-01-01-03.wav"]
    saved = np.full((2, 7), 0.05)
    saved[0, 3], saved[1, 0] = 0.7, 0.7
    np.savez(tmp_path / "oof.npz", names=np.array(names[:2]), probabilities=saved)
    pool = Pool(
        "speech", "validation", "RAVDESS", [f"speech:{n}" for n in names], np.array([0, 3, 5]), [Path(n) for n in names]
    )
    pool.groups = ["1", "2", "3"]

    attached = attach_out_of_fold(pool, tmp_path / "oof.npz")

    assert attached.ids == [f"speech:{n}" for n in names[:2]]
    assert np.allclose(attached.probabilities, saved / saved.sum(axis=1, keepdims=True))
    assert list(attached.refused) == [f"speech:{names[2]}"]
    assert attached.groups == ["1", "2"]


# -- the real data: validation and test never share an example ---------------------------
needs_data = pytest.mark.skipif(
    not (DEFAULT_DATA_ROOT / "text").is_dir() or not (DEFAULT_DATA_ROOT / "speech").is_dir(),
    reason="the datasets are not beside the repository (see model_training.common.DEFAULT_DATA_ROOT)",
)


@pytest.mark.needs_data
@needs_data
def test_speech_validation_and_test_triples_come_from_different_actors():
    validation = speech_pool("validation", ["19", "20"])
    test = speech_pool("test", ["21", "22", "23", "24"])

    assert not set(validation.ids) & set(test.ids)
    assert len(validation) == 120 and len(test) == 240
    assert all(count > 0 for count in test.label_counts().values())


@pytest.mark.needs_data
@needs_data
def test_text_validation_and_test_pools_are_disjoint_single_label_rows_with_every_label():
    validation = text_pool("validation")
    test = text_pool("test")

    assert not set(validation.ids) & set(test.ids)
    assert all(count > 0 for count in validation.label_counts().values())
    assert all(count > 0 for count in test.label_counts().values())
    assert all(":GoEmotions dev:" in i or ":CARER val:" in i for i in validation.ids)


def test_the_ece_noise_floor_shrinks_with_more_examples_and_matches_a_calibrated_model():
    """A perfectly calibrated model still shows ECE on a small set; the floor says how much."""
    rng = np.random.default_rng(7)

    def calibrated_set(n: int) -> tuple[np.ndarray, np.ndarray]:
        probs = rng.dirichlet(np.ones(7) * 0.4, size=n)
        y = np.array([rng.choice(7, p=row) for row in probs])  # labels drawn from the probabilities
        return probs, y

    small_probs, small_y = calibrated_set(240)
    large_probs, _ = calibrated_set(20000)
    small, large = ece_noise_floor(small_probs, draws=300), ece_noise_floor(large_probs, draws=30)
    assert large["mean"] < 0.02 < small["mean"] < small["p95"]
    assert expected_calibration_error(small_probs, small_y) <= small["p95"]  # within the spread of the floor
