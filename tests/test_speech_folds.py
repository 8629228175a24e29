"""The actor folds of the voice model's cross-validation: whole actors, disjoint, never the test actors."""

from pathlib import Path

import numpy as np
import pytest

from inference.calibration import fit_temperature
from model_training import train_speech
from model_training.datasets import Clip
from model_training.speech_encoder_probe import out_of_fold, pooled_states
from model_training.speech_ensemble import ensemble_summary
from model_training.speech_folds import TEST_ACTORS, actor_folds, fold_arguments, pooled

pytestmark = pytest.mark.no_database

RAVDESS_ACTORS = [f"{n:02d}" for n in range(1, 25)]


def test_five_folds_cover_actors_1_to_20_once_each():
    folds = actor_folds(RAVDESS_ACTORS, 5)
    flat = [a for fold in folds for a in fold]
    assert sorted(flat, key=int) == [str(n) for n in range(1, 21)]
    assert len(flat) == len(set(flat))


def test_no_fold_holds_a_test_actor():
    for fold in actor_folds(RAVDESS_ACTORS, 5):
        assert not set(fold) & set(TEST_ACTORS)


def test_each_fold_has_two_men_and_two_women():
    for fold in actor_folds(RAVDESS_ACTORS, 5):
        assert sum(int(a) % 2 for a in fold) == 2
        assert len(fold) == 4


def test_too_few_actors_for_the_folds_is_refused():
    with pytest.raises(ValueError):
        actor_folds(["1", "2", "3"], 5)


def test_a_fold_trains_on_the_other_sixteen_actors_and_never_reads_the_test_actors(tmp_path):
    clips = [Clip(Path(f"a{n}-{i}.flac"), 0, str(n)) for n in range(1, 25) for i in range(2)]
    fold = actor_folds(RAVDESS_ACTORS, 5)[0]
    args = train_speech.parse_args(fold_arguments(fold, tmp_path / "fold-1", []))
    train, val, test = train_speech.split_clips(clips, args)
    assert {c.speaker for c in val} == set(fold)
    assert {c.speaker for c in train} == {str(n) for n in range(1, 21)} - set(fold)
    assert test == []
    assert not {c.speaker for c in train + val} & set(TEST_ACTORS)


def test_pooled_out_of_fold_figures_cross_fit_the_temperature(tmp_path):
    rng = np.random.default_rng(0)
    for fold in (1, 2, 3):
        labels = rng.integers(0, 7, 120)
        predicted = np.where(rng.random(120) < 0.6, labels, rng.integers(0, 7, 120))
        logits = rng.normal(0, 0.5, (120, 7))
        logits[np.arange(120), predicted] += 6.0  # sure of itself, right only about 65 % of the time
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        (tmp_path / f"fold-{fold}").mkdir()
        np.savez(tmp_path / f"fold-{fold}" / "oof.npz", probabilities=probs, labels=labels, paths=np.array([""] * 120))
    summary = pooled(tmp_path)
    assert summary["clips"] == 360 and summary["folds"] == 3
    assert summary["temperature_all_folds"] > 1.0  # over-confidence is softened
    assert summary["ece_cross_fitted_temperature"] < summary["ece"]
    assert 0.0 < summary["ece_noise_floor"]["mean"] < summary["ece_noise_floor"]["p95"]


def test_no_finished_fold_gives_no_figures(tmp_path):
    assert pooled(tmp_path) is None


def _one_hot_ish(labels: np.ndarray, right: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities that put ``right`` on the true class for most clips and spread the rest."""
    probs = rng.dirichlet(np.ones(7), size=len(labels)) * (1 - right)
    probs[np.arange(len(labels)), labels] += right
    return probs / probs.sum(axis=1, keepdims=True)


def test_the_ensemble_is_the_mean_of_its_members():
    rng = np.random.default_rng(0)
    labels = np.arange(70) % 7
    members = [_one_hot_ish(labels, 0.4, rng) for _ in range(5)]
    summary = ensemble_summary(members, labels, members[0], labels)
    mean = np.mean(members, axis=0)
    assert summary["members"] == 5
    assert summary["accuracy"] == float((mean.argmax(axis=1) == labels).mean())
    assert len(summary["member_accuracy"]) == 5


def test_the_ensemble_temperature_comes_from_out_of_fold_predictions_not_the_test_actors():
    rng = np.random.default_rng(1)
    labels = np.arange(140) % 7
    members = [_one_hot_ish(labels, 0.3, rng) for _ in range(3)]
    overconfident_oof = np.eye(7)[labels] * 0.98 + 0.02 / 7
    overconfident_oof[::2] = np.roll(overconfident_oof[::2], 1, axis=1)  # half of them confidently wrong
    summary = ensemble_summary(members, labels, overconfident_oof, labels)
    assert summary["temperature_from_out_of_fold"] == pytest.approx(fit_temperature(overconfident_oof, labels))
    assert summary["temperature_from_out_of_fold"] > 1


def test_the_encoder_probe_is_scored_on_actors_it_never_saw():
    """Features that only identify the actor carry no emotion: out-of-fold they must score at chance."""
    rng = np.random.default_rng(2)
    speakers = np.repeat([str(a) for a in range(1, 21)], 21)
    labels = rng.integers(0, 7, size=len(speakers))  # drawn independently of the actor
    actor_identity = np.eye(20)[speakers.astype(int) - 1] + rng.normal(0, 0.01, (len(speakers), 20))
    probs = out_of_fold(actor_identity, labels, speakers, actor_folds(RAVDESS_ACTORS, 5), c=1.0)
    assert probs.shape == (420, 7)
    assert np.allclose(probs.sum(axis=1), 1)
    assert (probs.argmax(axis=1) == labels).mean() < 0.3


def test_the_probe_pools_mean_and_spread_over_time():
    states = np.array([[0.0, 2.0], [2.0, 2.0]])
    assert pooled_states(states).tolist() == [1.0, 2.0, 1.0, 0.0]
