"""Specification of text clean-up: what reaches the text model and what is refused (no model needed)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from errors import InputTooLarge, InvalidInput, UnusableInput
from inference.text import WINDOW_STRIDE, WINDOW_TOKENS, apply_class_log_bias, window_spans
from preprocessing.text import clean_text, decode_text_bytes, spell_out_emoji


def test_whitespace_runs_and_newlines_collapse_to_single_spaces() -> None:
    assert clean_text("  I am\n\n so   happy\t today \r\n") == "I am so happy today"


def test_control_characters_are_removed() -> None:
    assert clean_text("what\x00 a\x07 day\x1b!\x7f") == "what a day!"


def test_text_is_nfc_normalised_so_equal_looking_words_are_equal() -> None:
    decomposed = "cafe\u0301"  # "e" + combining acute accent
    assert clean_text(decomposed) == "caf\u00e9"


def test_emoji_with_skin_tones_and_zwj_sequences_survive_intact() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
    thumbs = "\U0001f44d\U0001f3fd"  # thumbs up, medium skin tone
    heart = "\u2764\ufe0f"  # red heart with emoji presentation selector
    text = f"so proud {family} {thumbs} {heart} 😀🎉"
    assert clean_text(text) == text


def test_emoji_only_text_is_accepted() -> None:
    assert clean_text("😀🎉") == "😀🎉"


@pytest.mark.parametrize("blank", ["", "   ", "\n\t \r\n", "\x00\x01", "\u00a0\u2028"])
def test_empty_or_whitespace_only_text_is_refused_with_422(blank: str) -> None:
    with pytest.raises(UnusableInput) as caught:
        clean_text(blank)
    assert caught.value.status == 422
    assert caught.value.code == "empty_text"


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b",  # zero-width space
        "\ufe0f",  # emoji variation selector
        "\u200d",  # zero-width joiner
        " \u200b\u2060\ufeff \u200e ",  # zero-width space, word joiner, BOM, left-to-right mark
        "\u0301\u20e3",  # a lone combining accent and keycap
        "\U0001f3fd",  # a skin-tone modifier without an emoji to modify
    ],
)
def test_text_of_only_invisible_characters_is_refused_as_empty_with_422(invisible: str) -> None:
    with pytest.raises(UnusableInput) as caught:
        clean_text(invisible)
    assert caught.value.status == 422
    assert caught.value.code == "empty_text"


def test_invisible_characters_around_real_words_or_emoji_do_not_make_a_text_empty() -> None:
    assert clean_text("\u200bhi\u200b") == "\u200bhi\u200b"
    assert clean_text("\u2764\ufe0f") == "\u2764\ufe0f"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean_text(family) == family  # the zero-width joiners stay inside the emoji sequence


def test_text_over_the_limit_is_refused_with_413_and_says_the_limit() -> None:
    with pytest.raises(InputTooLarge) as caught:
        clean_text("word " * 1200)  # 6,000 characters
    assert caught.value.status == 413
    assert caught.value.code == "text_too_long"
    assert "5,000" in caught.value.message


def test_the_limit_counts_characters_after_clean_up_and_can_be_configured() -> None:
    assert clean_text("ab" + " " * 50 + "cd", max_chars=5) == "ab cd"
    with pytest.raises(InputTooLarge):
        clean_text("abcdef", max_chars=5)


def test_a_huge_raw_body_is_refused_before_any_normalisation() -> None:
    with pytest.raises(InputTooLarge):
        clean_text(" " * 30_000 + "hi")


def test_a_non_string_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        clean_text(b"bytes are the web layer's job")  # type: ignore[arg-type]


def test_utf8_bytes_decode_including_emoji_and_a_leading_bom() -> None:
    assert decode_text_bytes("I feel great 😀".encode()) == "I feel great 😀"
    assert decode_text_bytes(b"\xef\xbb\xbfhello") == "hello"


@pytest.mark.parametrize("data", [b"caf\xe9", b"\xff\xfe\x00h", b"ok \xc3"])
def test_invalid_utf8_bytes_are_refused_with_a_clear_400(data: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_text_bytes(data)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_utf8"
    assert "UTF-8" in caught.value.message


def test_short_texts_fit_one_window() -> None:
    assert window_spans(10) == [(0, 10)]
    assert window_spans(WINDOW_TOKENS - 2) == [(0, WINDOW_TOKENS - 2)]


def test_long_texts_are_covered_by_overlapping_windows_without_dropping_tokens() -> None:
    spans = window_spans(700)
    assert len(spans) > 1
    assert spans[0][0] == 0 and spans[-1][1] == 700
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert end - start <= WINDOW_TOKENS - 2
        assert next_start - start == WINDOW_STRIDE
        assert next_start < end  # windows overlap: no token falls between two windows


def test_emoji_are_spelled_out_for_the_model_because_its_vocabulary_has_none() -> None:
    assert spell_out_emoji("exam passed 😀🎉") == "exam passed grinning face party popper"
    assert spell_out_emoji("😭") == "loudly crying face"


def test_skin_tones_joiners_and_selectors_are_dropped_when_spelling_out_emoji() -> None:
    assert spell_out_emoji("👍🏽 ❤️") == "thumbs up sign heavy black heart"
    assert spell_out_emoji("👨\u200d👩\u200d👧") == "man woman girl"


def test_plain_text_passes_through_spelling_out_unchanged() -> None:
    assert spell_out_emoji("I am fine, café.") == "I am fine, café."


def test_a_zero_prior_correction_changes_nothing_and_a_positive_one_raises_its_class() -> None:

    probabilities = np.array([[0.1, 0.05, 0.05, 0.4, 0.3, 0.05, 0.05]])
    assert np.array_equal(apply_class_log_bias(probabilities, np.zeros(7)), probabilities)
    shifted = apply_class_log_bias(probabilities, np.array([0, 0, 0, 0, 0, 1.0, 0]))
    assert shifted.sum() == pytest.approx(1.0)
    assert shifted[0, 5] > probabilities[0, 5]
    assert shifted[0, 3] / shifted[0, 4] == pytest.approx(probabilities[0, 3] / probabilities[0, 4])
