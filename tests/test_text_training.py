"""Specification of the text training data handling: label mapping, multi-label rows, batching."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import numpy as np
import pytest

from inference.labels import EMOTIONS
from model_training.common import DEFAULT_DATA_ROOT
from model_training.datasets import label_index, load_carer, load_csv, load_goemotions
from model_training.train_text import bucketed_batches

TEXT_DATA = DEFAULT_DATA_ROOT / "text"
needs_data = pytest.mark.skipif(
    not (TEXT_DATA / "goemotions").is_dir() or not (TEXT_DATA / "emotions_nlp").is_dir(),
    reason=f"the text datasets are not beside the repository ({TEXT_DATA.name}/ under the data root)",
)

pytestmark = pytest.mark.training  # the training test group: frameworks are imported here


@pytest.mark.needs_data
@needs_data
def test_goemotions_test_keeps_every_row_and_4968_map_to_one_ekman_class() -> None:
    data = load_goemotions(TEXT_DATA / "goemotions", "test")
    single = [h for h in data.hard if h >= 0]
    assert len(data) == 5427
    assert len(single) == 4968  # as counted in the dataset's SOURCE.md


@pytest.mark.needs_data
@needs_data
def test_goemotions_multi_label_rows_train_with_a_soft_target_split_between_their_classes() -> None:
    data = load_goemotions(TEXT_DATA / "goemotions", "dev")
    multi = [i for i, h in enumerate(data.hard) if h < 0]
    assert multi
    for i in multi[:50]:
        classes = data.label_sets[i]
        assert len(classes) > 1
        assert np.allclose(data.targets[i][list(classes)], 1.0 / len(classes))
        assert data.targets[i].sum() == pytest.approx(1.0)


@pytest.mark.needs_data
@needs_data
def test_carer_joy_and_love_both_count_as_happy_and_sadness_as_sad() -> None:
    data = load_carer(TEXT_DATA / "emotions_nlp", "test")
    counts = collections.Counter(EMOTIONS[h] for h in data.hard)
    assert counts == {"happy": 695 + 159, "sad": 581, "angry": 275, "fear": 224, "surprise": 66}


def test_a_users_csv_with_chosen_columns_and_separator_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("sentence;feeling\nwhat a lovely day;joy\nleave me alone;anger\n   ;sadness\n", encoding="utf-8")
    data = load_csv(path, "sentence", "feeling", ";")
    assert data.texts == ["what a lovely day", "leave me alone"]  # the empty row is skipped
    assert [EMOTIONS[h] for h in data.hard] == ["happy", "angry"]


def test_label_names_map_onto_the_seven_emotions_and_unknown_ones_are_refused() -> None:
    assert EMOTIONS[label_index("Sadness")] == "sad"
    assert EMOTIONS[label_index("love")] == "happy"
    assert EMOTIONS[label_index("neutral")] == "neutral"
    with pytest.raises(ValueError, match="unknown label"):
        label_index("boredom")


def test_length_buckets_cover_every_example_once_with_similar_lengths_per_batch() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(3, 64) for _ in range(1000)]
    batches = bucketed_batches(lengths, batch_size=16, rng=random.Random(42), pool=10)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(1000))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 10  # random batches would spread over most of 3..64
    again = bucketed_batches(lengths, batch_size=16, rng=random.Random(42), pool=10)
    assert again == batches  # seeded: reproducible


def test_the_worst_validation_drop_is_the_largest_loss_of_accuracy_or_macro_f1_on_any_set() -> None:
    from model_training.train_text import worst_validation_drop

    reference = [{"single": {"accuracy": 0.90, "macro_f1": 0.80}}, {"single": {"accuracy": 0.70, "macro_f1": 0.60}}]
    other = [{"single": {"accuracy": 0.89, "macro_f1": 0.81}}, {"single": {"accuracy": 0.70, "macro_f1": 0.58}}]
    assert abs(worst_validation_drop(reference, other) - 0.02) < 1e-9
    assert worst_validation_drop(reference, reference) == 0.0
