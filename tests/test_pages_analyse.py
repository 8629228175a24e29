"""The signed-in pages as served (before their scripts run): the analyse page's tabs, limits,
fusion controls and consent dialog, and the shells of result, history, statistics and account."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from inference.fusion import DEFAULT_STRATEGY, DEFAULT_WEIGHTS, STRATEGIES
from inference.labels import EMOTIONS, KIND_MODALITIES
from tests.conftest import make_pages_app as make_app

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def signed_in(app: Flask) -> Any:
    client = app.test_client()
    password = "Lovelace-1815"
    response = client.post(
        "/register", data={"name": "Ada", "email": "ada@example.org", "password": password, "confirm": password}
    )
    assert response.status_code == 302
    return client


@pytest.fixture
def member(tmp_path: Path) -> Any:
    return signed_in(make_app(tmp_path))


def html_of(client: Any, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_analyse_page_has_the_five_tabs_of_the_dashboard_in_order_with_short_labels(member: Any) -> None:
    html = html_of(member, "/analyse")
    tabs = re.findall(r'role="tab"[^>]*>([^<]+)<', html)
    assert tabs == ["Multi", "Image", "Audio", "Text", "Video"]  # short enough for one row at phone width
    assert html.count('role="tabpanel"') == 5
    assert 'id="video-record-start"' in html and 'accept="video/*' in html


def test_every_input_way_is_offered(member: Any) -> None:
    html = html_of(member, "/analyse")
    assert "Drop a photo here" in html and 'accept="image/jpeg' in html
    assert "Use webcam" in html and "Take photo" in html
    assert "Record from microphone" in html and "Stop recording" in html and 'role="timer"' in html
    assert "Drop a recording here" in html


def test_fusion_controls_offer_every_strategy_and_start_at_the_defaults(tmp_path: Path) -> None:
    html = html_of(signed_in(make_app(tmp_path, MODELS_DIR=str(BUNDLED_MODELS_DIR))), "/analyse")
    options = re.findall(r'<option value="([a-z]+)"( selected| disabled)?>', html)
    assert [value for value, _ in options] == list(STRATEGIES)
    assert [value for value, state in options if state == " selected"] == [DEFAULT_STRATEGY]
    for modality, weight in DEFAULT_WEIGHTS.items():
        assert re.search(rf'id="weight-{modality}"[^>]*value="{weight:.2f}"', html), modality


def test_the_page_carries_the_servers_kind_to_modality_vocabulary_for_its_script(member: Any) -> None:
    html = html_of(member, "/analyse")
    rendered = re.search(r"data-kind-modalities='([^']*)'", html)
    assert rendered is not None
    assert json.loads(html_lib.unescape(rendered.group(1))) == {k: list(v) for k, v in KIND_MODALITIES.items()}


def test_text_box_counts_towards_the_configured_limit(tmp_path: Path) -> None:
    html = html_of(signed_in(make_app(tmp_path, MAX_TEXT_CHARS=321)), "/analyse")
    assert 'maxlength="321"' in html
    assert "0 / 321 characters" in html


def test_recording_shows_the_configured_maximum_length(tmp_path: Path) -> None:
    html = html_of(signed_in(make_app(tmp_path, MAX_AUDIO_SECONDS=45)), "/analyse")
    assert "/ 0:45 max" in html


def test_installed_models_are_asked_for_not_assumed(member: Any) -> None:
    html = html_of(member, "/analyse")
    assert "Checking which models are installed" in html
    status = member.get("/api/models").get_json()["modalities"]
    assert not any(entry["available"] for entry in status.values())  # this app has no models folder


def test_consent_dialog_says_what_is_processed_and_that_media_is_not_kept(member: Any) -> None:
    html = html_of(member, "/analyse")
    dialog = html[html.index('<dialog id="consent-dialog"') : html.index("</dialog>")]
    assert "not kept" in dialog
    assert "account page" in dialog and 'href="/privacy"' in dialog
    assert 'data-has-consent="false"' in html


def test_consent_given_or_withdrawn_reaches_the_pages(member: Any) -> None:
    assert member.put("/api/user/consent", json={"consent": True}).status_code == 200
    assert 'data-has-consent="true"' in html_of(member, "/analyse")
    assert "Withdraw consent" in html_of(member, "/account")
    member.put("/api/user/consent", json={"consent": False})
    assert 'data-has-consent="false"' in html_of(member, "/analyse")
    assert "Give consent" in html_of(member, "/account")


def test_stored_result_page_knows_which_prediction_to_load(member: Any) -> None:
    html = html_of(member, "/predictions/42")
    assert 'data-prediction-id="42"' in html
    assert "/static/js/result.js" in html and "not stored" in html


def test_history_offers_every_filter_and_the_csv_download(member: Any) -> None:
    html = html_of(member, "/history")
    for emotion in EMOTIONS:
        assert f'<option value="{emotion}">' in html
    for modality in ("face", "speech", "text"):
        assert f'<option value="{modality}">' in html
    assert 'type="date" id="filter-from"' in html and 'type="date" id="filter-to"' in html
    assert 'href="/api/predictions/export.csv"' in html
    assert 'id="delete-dialog"' in html


def test_statistics_page_pairs_each_chart_with_a_table(member: Any) -> None:
    html = html_of(member, "/statistics")
    for chart in ("emotions", "modalities", "days"):
        assert f'id="chart-{chart}"' in html and f'id="table-{chart}"' in html


def test_account_page_offers_profile_tokens_consent_and_deletion(member: Any) -> None:
    html = html_of(member, "/account")
    assert "ada@example.org" in html
    assert 'id="token-form"' in html and "shown once" in html
    assert 'id="consent-toggle"' in html
    assert 'id="delete-account-dialog"' in html and "Type DELETE to confirm" in html


def test_navigation_marks_the_current_page_for_screen_readers(member: Any) -> None:
    html = html_of(member, "/history")
    assert re.search(r'<a href="/history" aria-current="page">History</a>', html)
    assert 'class="skip-link" href="#main"' in html


def test_a_missing_stacker_is_marked_rather_than_offered(member: Any) -> None:
    html = html_of(member, "/analyse")  # this app's models folder has no fusion/stacker.onnx
    assert '<option value="stacker" disabled>stacker (not installed)</option>' in html


def test_calibrated_fusion_without_fitted_temperatures_is_marked_and_not_the_default(member: Any) -> None:
    html = html_of(member, "/analyse")  # ... and no fusion/temperatures.json either
    assert '<option value="calibrated" disabled>calibrated (not installed)</option>' in html
    assert '<option value="weighted" selected>weighted</option>' in html
    models = member.get("/api/models").get_json()
    assert models["fusion"]["unavailable_strategies"] == ["calibrated", "stacker"]
    assert models["fusion"]["default_strategy"] == "weighted"  # what a client can actually use here


def test_the_bundled_fusion_artefacts_leave_no_strategy_marked(tmp_path: Path) -> None:
    client = signed_in(make_app(tmp_path, MODELS_DIR=str(BUNDLED_MODELS_DIR)))
    assert "(not installed)" not in html_of(client, "/analyse")
    fusion = client.get("/api/models").get_json()["fusion"]
    assert fusion["unavailable_strategies"] == [] and fusion["default_strategy"] == "calibrated"


def test_the_analyse_page_reuses_the_fusion_engine_of_the_apps_predictor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference.fusion import FusionEngine
    from services.analysis import get_predictor

    built: list[str] = []
    original = FusionEngine.from_models_dir.__func__  # type: ignore[attr-defined]

    def counting(cls: type, models_dir: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(str(models_dir))
        return original(cls, models_dir, *args, **kwargs)

    monkeypatch.setattr(FusionEngine, "from_models_dir", classmethod(counting))
    app = make_app(tmp_path)
    client = signed_in(app)
    for _ in range(3):
        assert "stacker (not installed)" in html_of(client, "/analyse")
    assert len(built) == 1  # one engine per process, not one per page view
    assert get_predictor(app).fusion is not None


def test_the_jobs_pages_offer_an_upload_and_a_progress_bar_and_history_links_them(member: Any, tmp_path: Path) -> None:
    listing = html_of(member, "/jobs")
    assert 'id="job-form"' in listing and 'accept=".zip,.csv' in listing and "500 files" in listing
    one = html_of(member, "/jobs/7")
    assert '<progress id="job-progress"' in one and 'href="/api/jobs/7/results.csv"' in one
    history = html_of(member, "/history")
    assert 'id="jobs-link" href="/jobs"' in history and "export.csv?timeline=1" in history
    anonymous = make_app(tmp_path / "other").test_client()
    assert anonymous.get("/jobs").status_code == 302
