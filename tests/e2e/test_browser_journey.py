"""A new user's whole journey in a real headless Chromium, step by step in file order.

Register, log out and in, analyse a text, a photo, an audio file, a microphone recording
(transcribed: its words and three results) and a webcam photo (Chromium's fake devices play
the fixtures), fuse them with a non-default strategy, find the result in history, download
the CSV, delete a result, see the statistics
charts, manage a token, read the API docs and log out. Each step saves a screenshot under
test-output/e2e/ and fails on any browser console error; a step whose model is missing, or
whose earlier step left nothing to work on, fails with the reason.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import OUTPUT_DIR, LiveServer

EMAIL = "journey@example.org"
PASSWORD = "Correct-horse-42"
TIMEOUT = 120  # the first prediction of each modality loads its model


# -- page utilities ------------------------------------------------------------------------
def wait_for(driver: Any, condition: Any, timeout: float = 15, message: str = "") -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Pages re-render while we poll; a vanished element just means "not yet".
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=ignored).until(condition, message)


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def css_all(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def visible(selector: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return ec.visibility_of_element_located((By.CSS_SELECTOR, selector))


def text_of(driver: Any, selector: str) -> str:
    """An element's text read in one script call (safe while the page re-renders it)."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", selector
    )


def attributes(driver: Any, selector: str, name: str) -> list[str]:
    """One attribute of every matching element, read in one script call (re-render safe)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.getAttribute(arguments[1]))",
        selector,
        name,
    )


def console_errors(driver: Any) -> list[str]:
    """Severe browser-console entries since the last call (a failed request counts too)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def screenshot(driver: Any, name: str) -> Path:
    """A full-page PNG under test-output/e2e/ (the window grows to the page's height)."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    full = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
    driver.set_window_size(width, max(height, min(int(full) + 140, 6000)))
    path = OUTPUT_DIR / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(width, height)
    return path


def check_page(driver: Any, name: str) -> None:
    """Screenshot the page, then fail on console errors it produced."""
    screenshot(driver, name)
    errors = console_errors(driver)
    assert not errors, f"browser console errors on {name}: {errors}"


def open_tab(driver: Any, base: str, tab: str) -> None:
    if not driver.current_url.startswith(base + "/analyse"):
        driver.get(base + "/analyse")
    wait_for(driver, lambda d: d.execute_script("return document.getElementById('analyse-app').dataset.modelsLoaded"))
    css(driver, f"#tab-{tab}").click()
    wait_for(driver, visible(f"#panel-{tab}"))


def agree_to_consent_if_asked(driver: Any) -> None:
    """The consent dialog appears before the first face or voice analysis only."""
    time.sleep(0.3)
    dialogs = css_all(driver, "#consent-dialog[open]")
    if dialogs:
        screenshot(driver, "06-consent-dialog")
        css(driver, "#consent-agree").click()
        wait_for(driver, lambda d: not css_all(d, "#consent-dialog[open]"))


def submit_and_wait(driver: Any, panel: str) -> Any:
    """Submit a tab's form and wait for a new result (or fail with the page's error)."""
    previous = driver.execute_script("return document.getElementById('result').dataset.predictionId || ''")
    css(driver, f"#{panel} .predict-submit").click()
    agree_to_consent_if_asked(driver)

    def done(d: Any) -> Any:
        error = d.execute_script(
            "const e = document.getElementById('analyse-error'); return e.hidden ? '' : e.textContent"
        )
        if error.strip():
            raise AssertionError(f"the analysis failed in the page: {error.strip()}")
        current = d.execute_script("return document.getElementById('result').dataset.predictionId || ''")
        return current and current != previous

    wait_for(driver, done, TIMEOUT, "no result appeared")
    return css(driver, "#result")


@pytest.fixture(scope="module")
def journey() -> dict[str, Any]:
    """What earlier steps made (prediction ids), for the later steps."""
    return {"predictions": []}


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Any:
    """The shared browser, with console messages from earlier steps discarded."""
    browser.get_log("browser")
    return browser


def remember(journey: dict[str, Any], result: Any) -> str:
    prediction_id = result.get_attribute("data-prediction-id")
    journey["predictions"].append(prediction_id)
    return prediction_id


# -- the journey -----------------------------------------------------------------------------
def test_landing_page_says_what_the_product_does_and_links_privacy(page: Any, live_server: LiveServer) -> None:
    page.get(live_server.url + "/")
    assert "Moodlens" in page.title
    text = css(page, "main").text
    assert "What it does" in text and "What it does not do" in text
    assert css(page, "footer a[href='/privacy']").text == "Responsible use & privacy"
    check_page(page, "01-landing")


def test_registration_form_shows_clear_errors(page: Any, live_server: LiveServer) -> None:
    page.get(live_server.url + "/register")
    css(page, "#email").send_keys("not-an-address")
    css(page, "#password").send_keys("short")
    css(page, "#confirm").send_keys("different")
    css(page, "#register-form [type=submit]").click()
    wait_for(page, visible(".field-error"))
    errors = " ".join(e.text for e in css_all(page, ".field-error"))
    assert "e-mail address" in errors and "differ" in errors and "Use at least 10 characters." in errors
    assert css(page, "#email").get_attribute("aria-invalid") == "true"
    screenshot(page, "02-register-errors")
    page.get_log("browser")  # the 422 answer itself is expected here


def test_new_user_registers_logs_out_and_logs_in(page: Any, live_server: LiveServer) -> None:
    page.get(live_server.url + "/register")
    css(page, "#name").send_keys("Journey Tester")
    css(page, "#email").send_keys(EMAIL)
    css(page, "#password").send_keys(PASSWORD)
    css(page, "#confirm").send_keys(PASSWORD)
    check_page(page, "03-register")
    css(page, "#register-form [type=submit]").click()
    wait_for(page, lambda d: d.current_url.endswith("/analyse"))
    css(page, "#logout-button").click()
    wait_for(page, lambda d: "/login" in css(d, "nav").get_attribute("innerHTML"))

    page.get(live_server.url + "/login")
    css(page, "#email").send_keys(EMAIL)
    css(page, "#password").send_keys(PASSWORD)
    check_page(page, "04-login")
    css(page, "#login-form [type=submit]").click()
    wait_for(page, lambda d: d.current_url.endswith("/analyse"))
    assert "Journey Tester" in css(page, ".nav-user").text


def test_analyse_page_shows_which_models_are_installed(page: Any, live_server: LiveServer) -> None:
    page.get(live_server.url + "/analyse")
    wait_for(page, lambda d: d.execute_script("return document.getElementById('analyse-app').dataset.modelsLoaded"))
    for modality in ("face", "speech", "text"):
        item = css(page, f"#model-status-list li[data-modality={modality}]")
        expected = "true" if modality in live_server.available else "false"
        assert item.get_attribute("data-available") == expected
    check_page(page, "05-analyse")


def test_analyse_tabs_work_with_the_keyboard_alone(page: Any, live_server: LiveServer) -> None:
    from selenium.webdriver.common.keys import Keys

    page.get(live_server.url + "/analyse")
    css(page, "#tab-multimodal").click()
    css(page, "#tab-multimodal").send_keys(Keys.ARROW_RIGHT)
    wait_for(page, visible("#panel-image"))
    assert page.switch_to.active_element.get_attribute("id") == "tab-image"
    page.switch_to.active_element.send_keys(Keys.END)
    wait_for(page, visible("#panel-video"))
    assert not css(page, "#panel-multimodal").is_displayed()
    page.switch_to.active_element.send_keys(Keys.HOME)
    wait_for(page, visible("#panel-multimodal"))


def test_text_analysis_shows_emotion_confidence_and_chart(
    page: Any, live_server: LiveServer, journey: dict[str, Any]
) -> None:
    live_server.require("text")
    open_tab(page, live_server.url, "text")
    area = css(page, "#txt-text-area")
    area.send_keys("We won the final! I am so happy and proud of everyone.")
    assert css(page, "#txt-text-counter").text.startswith("54 / ")
    result = submit_and_wait(page, "panel-text")
    remember(journey, result)
    assert css(page, "[data-testid=result-emotion]").text.strip().lower() in {
        "angry",
        "disgust",
        "fear",
        "happy",
        "neutral",
        "sad",
        "surprise",
    }
    assert "confidence" in css(page, "[data-testid=result-confidence]").text
    # One modality, no fusion: the 7-bar chart is drawn once (the text card does not repeat it).
    assert len(css_all(page, "#result .probability-chart svg g.bar")) == 7
    check_page(page, "07-result-text")


def test_uploaded_face_photo_is_analysed_and_boxed(
    page: Any, live_server: LiveServer, media_files: dict[str, Path], journey: dict[str, Any]
) -> None:
    live_server.require("face")
    open_tab(page, live_server.url, "image")
    css(page, "#img-image-file").send_keys(str(media_files["photo"]))
    wait_for(page, lambda d: css(d, "#img-image").get_attribute("data-ready") == "true")
    result = submit_and_wait(page, "panel-image")
    remember(journey, result)
    canvas = css(page, "#result .face-canvas")
    assert canvas.get_attribute("data-source") == "photo"
    assert int(canvas.get_attribute("data-faces")) >= 1
    check_page(page, "08-result-photo")


def test_photo_without_a_face_is_refused_with_a_clear_message(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    from PIL import Image

    live_server.require("face")
    blank = tmp_path / "wall.png"
    Image.new("RGB", (320, 240), (180, 190, 200)).save(blank)
    open_tab(page, live_server.url, "image")
    css(page, "#img-image-file").send_keys(str(blank))
    wait_for(page, lambda d: css(d, "#img-image").get_attribute("data-ready") == "true")
    shown_before = page.execute_script("return document.getElementById('result').dataset.predictionId || ''")
    css(page, "#panel-image .predict-submit").click()
    wait_for(page, lambda d: text_of(d, "#analyse-error").strip(), TIMEOUT, "no error was shown")
    assert "No face was detected" in text_of(page, "#analyse-error")
    # No emotion is invented: the previous result stays, no new one appears.
    assert page.execute_script("return document.getElementById('result').dataset.predictionId || ''") == shown_before
    screenshot(page, "08b-no-face-refused")
    errors = console_errors(page)
    assert all("422" in e for e in errors), errors  # only the expected refusal itself


def test_uploaded_audio_file_shows_attention_under_the_waveform(
    page: Any, live_server: LiveServer, media_files: dict[str, Path], journey: dict[str, Any]
) -> None:
    live_server.require("speech")
    open_tab(page, live_server.url, "audio")
    css(page, "#aud-audio-file").send_keys(str(media_files["wav"]))
    wait_for(page, lambda d: css(d, "#aud-audio").get_attribute("data-ready") == "true")
    result = submit_and_wait(page, "panel-audio")
    remember(journey, result)
    canvas = css(page, "#result .speech-canvas")
    assert canvas.get_attribute("data-source") == "audio"
    assert int(canvas.get_attribute("data-attention-points")) >= 1
    check_page(page, "09-result-audio-file")


def test_microphone_recording_has_a_timer_and_a_stop_button(
    page: Any, live_server: LiveServer, journey: dict[str, Any]
) -> None:
    live_server.require("speech")
    open_tab(page, live_server.url, "audio")
    css(page, "#aud-audio .record-start").click()
    agree_to_consent_if_asked(page)
    wait_for(page, visible("#aud-audio .record-stop"))
    wait_for(page, lambda d: css(d, "#aud-audio .record-timer").text >= "0:03", 20, "the timer did not run")
    screenshot(page, "10-recording")
    css(page, "#aud-audio .record-stop").click()
    wait_for(page, lambda d: "microphone-recording.webm" in text_of(d, "#aud-audio .chosen-file"), 20)
    wait_for(page, lambda d: css(d, "#aud-audio").get_attribute("data-ready") == "true", 20)
    # The fake microphone plays the speech fixture: a silent recording means it was not fed.
    assert float(css(page, "#aud-audio").get_attribute("data-rms")) > 0.001
    # Transcription is on by default, with a visible switch to turn it off.
    switch = css(page, "#aud-transcribe")
    assert switch.is_displayed() and switch.is_selected()
    result = submit_and_wait(page, "panel-audio")
    remember(journey, result)
    # The words the fake microphone played ("Kids are talking by the door"), and three results:
    # the voice, the words, and the two fused.
    assert "door" in text_of(page, "#result [data-testid=transcript-text]").lower()
    assert css(page, "#result .modality-card[data-modality=speech]").get_attribute("data-status") == "used"
    assert css(page, "#result .modality-card[data-modality=text]").get_attribute("data-status") == "used"
    assert css(page, "#result .fusion-card").is_displayed()
    check_page(page, "11-result-microphone")


def test_webcam_photo_is_taken_and_analysed(page: Any, live_server: LiveServer, journey: dict[str, Any]) -> None:
    live_server.require("face")
    open_tab(page, live_server.url, "image")
    css(page, "#img-image .webcam-start").click()
    agree_to_consent_if_asked(page)
    wait_for(page, visible("#img-image .webcam-capture"))
    wait_for(page, lambda d: d.execute_script("return document.querySelector('#img-image video').videoWidth > 0"))
    screenshot(page, "12-webcam-live")
    css(page, "#img-image .webcam-capture").click()
    wait_for(page, lambda d: "webcam-photo.jpg" in text_of(d, "#img-image .chosen-file"))
    wait_for(page, lambda d: css(d, "#img-image").get_attribute("data-ready") == "true")
    result = submit_and_wait(page, "panel-image")
    remember(journey, result)
    assert int(css(page, "#result .face-canvas").get_attribute("data-faces")) >= 1
    check_page(page, "13-result-webcam")


def test_multimodal_prediction_with_a_non_default_strategy(
    page: Any, live_server: LiveServer, media_files: dict[str, Path], journey: dict[str, Any]
) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    assert live_server.available, "no model is installed in models/, so nothing can be fused"
    open_tab(page, live_server.url, "multimodal")
    given = []
    if "face" in live_server.available:
        css(page, "#mm-image-file").send_keys(str(media_files["photo"]))
        wait_for(page, lambda d: css(d, "#mm-image").get_attribute("data-ready") == "true")
        given.append("face")
    if "speech" in live_server.available:
        css(page, "#mm-audio-file").send_keys(str(media_files["wav"]))
        wait_for(page, lambda d: css(d, "#mm-audio").get_attribute("data-ready") == "true")
        given.append("speech")
    if "text" in live_server.available:
        css(page, "#mm-text-area").send_keys("What a wonderful surprise, I love it!")
        given.append("text")
    Select(css(page, "#fusion-strategy")).select_by_value("weighted")
    slider = css(page, "#weight-text")
    slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)  # 0.30 -> 0.40 with the keyboard
    assert css(page, "#weight-text-value").text == "0.40"
    result = submit_and_wait(page, "panel-multimodal")
    remember(journey, result)
    journey["multimodal"] = result.get_attribute("data-prediction-id")
    assert css(page, "[data-testid=fusion-strategy]").text == "weighted"
    used = {c.get_attribute("data-modality") for c in css_all(page, "#result .modality-card[data-status=used]")}
    assert used and used <= set(given)
    check_page(page, "14-result-multimodal")

    # The stored result reopens on its own page, boxes drawn on an outline of the photo.
    page.get(f"{live_server.url}/predictions/{journey['multimodal']}")
    wait_for(page, lambda d: d.execute_script("return document.getElementById('prediction-view').dataset.emotion"))
    if "face" in used:
        assert css(page, ".face-canvas").get_attribute("data-source") == "outline"
    check_page(page, "15-stored-result")


def test_history_lists_filters_and_opens_results(page: Any, live_server: LiveServer, journey: dict[str, Any]) -> None:
    assert journey["predictions"], "an earlier step made no prediction"
    page.get(live_server.url + "/history")
    wait_for(page, lambda d: d.execute_script("return document.body.dataset.historyLoaded"))
    ids = attributes(page, "#history-table tbody tr[data-id]", "data-id")
    assert ids == list(reversed(journey["predictions"]))  # newest first
    # Transcribed recordings show their words in the history, like a typed text.
    assert any("door" in e.text.lower() for e in css_all(page, "#history-table [data-testid=history-transcript]"))
    check_page(page, "16-history")

    emotion = attributes(page, "#history-table tbody tr[data-id]", "data-emotion")[0]
    from selenium.webdriver.support.ui import Select

    Select(css(page, "#filter-emotion")).select_by_value(emotion)
    reloaded(page, lambda: css(page, "#history-filters [type=submit]").click())
    assert "emotion=" + emotion in page.current_url
    assert set(attributes(page, "tbody tr[data-id]", "data-emotion")) == {emotion}
    # The download offers what is on screen, not the whole history.
    assert css(page, "#download-csv").get_attribute("href").endswith("/api/predictions/export.csv?emotion=" + emotion)
    reloaded(page, lambda: css(page, "#history-filters [type=reset]").click())
    assert "emotion=" not in page.current_url
    assert css(page, "#download-csv").get_attribute("href").endswith("/api/predictions/export.csv")

    wait_for(page, lambda d: css_all(d, f"tbody tr[data-id='{journey['predictions'][0]}'] a"))
    css(page, f"tbody tr[data-id='{journey['predictions'][0]}'] a").click()
    wait_for(page, lambda d: d.current_url.endswith(f"/predictions/{journey['predictions'][0]}"))
    wait_for(page, lambda d: d.execute_script("return document.getElementById('prediction-view').dataset.emotion"))
    check_page(page, "17-history-opened")


def reloaded(page: Any, action: Any) -> None:
    """Do ``action`` and wait until the history table has finished loading again."""
    before = page.execute_script("return Number(document.body.dataset.historyLoaded || 0)")
    action()
    wait_for(page, lambda d: d.execute_script("return Number(document.body.dataset.historyLoaded || 0)") > before)


def test_csv_download_holds_every_prediction(
    page: Any, live_server: LiveServer, journey: dict[str, Any], download_dir: Path
) -> None:
    assert journey["predictions"], "an earlier step made no prediction"
    page.get(live_server.url + "/history")
    wait_for(page, lambda d: d.execute_script("return document.body.dataset.historyLoaded"))
    css(page, "#download-csv").click()
    target = download_dir / "moodlens-predictions.csv"
    wait_for(page, lambda d: target.is_file() and target.stat().st_size > 0, 30, "the CSV was not downloaded")
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert len(rows) == len(journey["predictions"])
    assert any("door" in row["transcript_text"].lower() for row in rows)  # the recordings' words
    check_page(page, "18-history-csv")


def test_deleting_a_result_asks_for_confirmation(page: Any, live_server: LiveServer, journey: dict[str, Any]) -> None:
    assert journey["predictions"], "an earlier step made no prediction"
    victim = journey["predictions"][0]
    page.get(live_server.url + "/history")
    wait_for(page, lambda d: d.execute_script("return document.body.dataset.historyLoaded"))
    css(page, f"tbody tr[data-id='{victim}'] .delete-row").click()
    wait_for(page, visible("#delete-dialog"))
    css(page, "#delete-cancel").click()  # keeping it first: nothing happens
    assert css_all(page, f"tbody tr[data-id='{victim}']")
    css(page, f"tbody tr[data-id='{victim}'] .delete-row").click()
    wait_for(page, visible("#delete-dialog"))
    screenshot(page, "19-delete-dialog")
    css(page, "#delete-confirm").click()
    wait_for(page, lambda d: not css_all(d, f"tbody tr[data-id='{victim}']"))
    journey["predictions"].remove(victim)
    check_page(page, "20-history-after-delete")


def test_statistics_draws_charts_with_text_beside_them(
    page: Any, live_server: LiveServer, journey: dict[str, Any]
) -> None:
    page.get(live_server.url + "/statistics")
    wait_for(page, lambda d: d.execute_script("return document.body.dataset.statsLoaded"))
    assert css_all(page, "#chart-emotions svg g.bar")
    assert len(css_all(page, "#chart-modalities svg g.bar")) == 3
    assert css_all(page, "#chart-days svg")
    summary = css(page, "#stats-summary").text
    assert journey["predictions"], "an earlier step made no prediction"
    assert f"{len(journey['predictions'])} result" in summary
    assert css_all(page, "#chart-days svg rect")
    check_page(page, "21-statistics")


def test_account_creates_a_token_shown_once_and_revokes_it(page: Any, live_server: LiveServer) -> None:
    page.get(live_server.url + "/account")
    wait_for(page, lambda d: css_all(d, "#token-table tbody tr"))
    css(page, "#token-name").send_keys("e2e script")
    css(page, "#token-form [type=submit]").click()
    wait_for(page, visible("#token-created"))
    assert css(page, "#token-value").text.startswith("ml_")
    wait_for(page, lambda d: css_all(d, "#token-table tbody tr[data-token-id] .btn"))
    screenshot(page, "22-account-token")
    css(page, "#token-table tbody tr[data-token-id] .btn").click()
    wait_for(page, lambda d: "revoked" in text_of(d, "#token-table tbody tr[data-token-id]"))
    check_page(page, "23-account")


def test_api_docs_render_the_openapi_description(page: Any, live_server: LiveServer) -> None:
    page.get(live_server.url + "/docs")
    wait_for(page, lambda d: d.execute_script("return document.body.dataset.docsLoaded"), 20)
    paths = [e.text for e in css_all(page, ".endpoint .path")]
    assert "/api/predict/multimodal" in paths
    check_page(page, "24-api-docs")


def test_privacy_page_and_phone_sized_pages(page: Any, live_server: LiveServer, journey: dict[str, Any]) -> None:
    page.get(live_server.url + "/privacy")
    assert "Article 5(1)(f)" in css(page, "main").text
    check_page(page, "25-privacy")
    size = page.get_window_size()
    page.set_window_size(390, 844)
    try:
        page.get(live_server.url + "/analyse")
        wait_for(page, lambda d: d.execute_script("return document.getElementById('analyse-app').dataset.modelsLoaded"))
        assert_no_sideways_scrolling(page, "analyse")
        rows = page.execute_script("return [...document.querySelectorAll('[role=tab]')].map(t => t.offsetTop)")
        assert len(rows) == 5 and len(set(rows)) == 1, f"the analyse tabs wrap at phone width: {rows}"
        hidden = page.execute_script(
            "const t = document.querySelector('.tablist'); return t.scrollWidth - t.clientWidth"
        )
        assert hidden <= 1, f"{hidden}px of the analyse tabs are hidden at phone width"
        check_page(page, "26-analyse-phone")
        assert journey.get("multimodal"), "the multimodal step stored no result"
        page.get(f"{live_server.url}/predictions/{journey['multimodal']}")
        wait_for(page, lambda d: text_of(d, "#prediction-view [data-testid=result-emotion]"))
        assert_no_sideways_scrolling(page, "result")
        check_page(page, "26b-result-phone")
    finally:
        page.set_window_size(size["width"], size["height"])


def assert_no_sideways_scrolling(page: Any, name: str) -> None:
    overflow = page.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the {name} page scrolls sideways on a phone by {overflow}px"


def test_logging_out_returns_to_the_landing_page(page: Any, live_server: LiveServer) -> None:
    page.get(live_server.url + "/history")
    css(page, "#logout-button").click()
    wait_for(page, lambda d: d.current_url.rstrip("/") == live_server.url)
    assert "You are logged out." in css(page, ".flash-list").text
    page.get(live_server.url + "/history")
    wait_for(page, lambda d: "/login" in d.current_url)
    check_page(page, "27-logged-out")


def test_an_account_is_deleted_only_after_typing_delete(page: Any, live_server: LiveServer) -> None:
    page.get(live_server.url + "/register")
    css(page, "#email").send_keys("leaving@example.org")
    css(page, "#password").send_keys(PASSWORD)
    css(page, "#confirm").send_keys(PASSWORD)
    css(page, "#register-form [type=submit]").click()
    wait_for(page, lambda d: d.current_url.endswith("/analyse"))
    page.get(live_server.url + "/account")
    css(page, "#delete-account").click()
    wait_for(page, visible("#delete-account-dialog"))
    css(page, "#delete-account-confirm").click()  # without typing DELETE nothing happens
    wait_for(page, lambda d: "Nothing was deleted" in text_of(d, "#account-error"))
    css(page, "#delete-account").click()
    wait_for(page, visible("#delete-account-dialog"))
    css(page, "#delete-account-confirm-text").send_keys("DELETE")
    screenshot(page, "28-delete-account-dialog")
    css(page, "#delete-account-confirm").click()
    wait_for(page, lambda d: "account_deleted" in d.current_url)
    assert "have been deleted" in css(page, "main").text
    check_page(page, "29-account-deleted")
