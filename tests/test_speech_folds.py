"""The actor folds of the voice model's cross-validation: whole actors, disjoint, never the test actors."""

from pathlib import Path

import pytest

from model_training import train_speech
from model_training.datasets import Clip
from model_training.speech_folds import TEST_ACTORS, actor_folds, fold_arguments

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
