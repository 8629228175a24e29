"""Pure functions of the prediction service: bounded details, JSON safety, CSV neutralisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.predictions.export import export_header, spreadsheet_safe
from services.predictions.serialize import bound_details, downsample_series, to_jsonable


def test_a_long_attention_curve_is_averaged_down_to_200_points() -> None:
    curve = [{"time": i / 100, "weight": 1.0 if i < 500 else 3.0} for i in range(1000)]
    small = downsample_series(curve)
    assert len(small) == 200
    assert small[0]["time"] == pytest.approx(0.02)  # mean of 0.00 .. 0.04
    assert small[0]["weight"] == pytest.approx(1.0) and small[-1]["weight"] == pytest.approx(3.0)
    assert sum(p["weight"] for p in small) / 200 == pytest.approx(2.0)


def test_short_series_are_kept_as_they_are() -> None:
    curve = [{"time": 0.0, "weight": 1.0}]
    assert downsample_series(curve) is curve


def test_other_long_lists_keep_evenly_spaced_items() -> None:
    assert downsample_series(list(range(1000)))[:3] == [0, 5, 10]


def test_details_become_plain_bounded_json() -> None:
    details = {
        "attention": [{"time": float(t), "weight": np.float32(0.5)} for t in range(450)],
        "faces": [{"box": np.array([1, 2, 3, 4])}],
        "score": np.float64(0.25),
        "nan": math.nan,
    }
    clean = bound_details(details)
    assert len(clean["attention"]) == 200
    assert clean["faces"][0]["box"] == [1, 2, 3, 4]
    assert clean["score"] == 0.25 and clean["nan"] is None
    assert isinstance(clean["attention"][0]["weight"], float)


def test_to_jsonable_handles_numpy_and_odd_values() -> None:
    assert to_jsonable({"a": np.int64(3), "b": (1, 2), "c": {np.str_("x")}}) == {"a": 3, "b": [1, 2], "c": ["x"]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=x", "'\t=x"),
        ("plain text", "plain text"),
        (-0.5, -0.5),
        (3, 3),
    ],
)
def test_spreadsheet_formulas_in_text_are_neutralised(value: object, expected: object) -> None:
    assert spreadsheet_safe(value) == expected


def test_the_export_header_has_per_modality_columns() -> None:
    header = export_header()
    assert len(header) == len(set(header))
    for modality in ("face", "speech", "text"):
        for column in ("status", "emotion", "confidence", "model_name", "model_version", "p_happy", "input_file_name"):
            assert f"{modality}_{column}" in header
