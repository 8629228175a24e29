"""Public pages: what anyone sees before logging in, and the rules every page follows
(no inline script for the CSP, assets served by the app itself, privacy link in every footer)."""

from __future__ import annotations

import html as html_lib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from inference.labels import EMOTIONS
from tests.conftest import make_pages_app

PUBLIC_PAGES = ("/", "/login", "/register", "/privacy", "/docs")
PRIVATE_PAGES = ("/analyse", "/history", "/statistics", "/account", "/predictions/1")


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_pages_app(tmp_path)


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def member(app: Flask) -> Any:
    """A second browser, logged in as a fresh user."""
    client = app.test_client()
    response = client.post(
        "/register",
        data={"name": "Ada", "email": "ada@example.org", "password": "Lovelace-1815", "confirm": "Lovelace-1815"},
    )
    assert response.status_code == 302
    return client


class PageAudit(HTMLParser):
    """Collects what the CSP and the asset rules care about."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self.style_attributes = 0
        self.assets: list[str] = []
        self.footer_links: list[str] = []
        self._in_footer = False
        self._in_script = False
        self.csrf_meta = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if "style" in values:
            self.style_attributes += 1
        if tag == "script":
            self._in_script = True
            if values.get("src"):
                self.assets.append(values["src"] or "")
        if tag == "link" and values.get("href"):
            self.assets.append(values["href"] or "")
        if tag == "img" and values.get("src"):
            self.assets.append(values["src"] or "")
        if tag == "meta" and values.get("name") == "csrf-token" and values.get("content"):
            self.csrf_meta = True
        if tag == "footer":
            self._in_footer = True
        if tag == "a" and self._in_footer:
            self.footer_links.append(values.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "footer":
            self._in_footer = False
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def audit(html: str) -> PageAudit:
    parser = PageAudit()
    parser.feed(html)
    return parser


def test_landing_page_says_what_it_does_and_does_not_do(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "What it does" in html and "What it does not do" in html
    assert 'href="/register"' in html and 'href="/login"' in html


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_public_pages_open_without_an_account(client: Any, path: str) -> None:
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", PRIVATE_PAGES)
def test_private_pages_send_anonymous_visitors_to_login_and_back(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=" + path.replace("/", "%2F")) or response.headers[
        "Location"
    ].startswith("/login?next=" + path)


@pytest.mark.parametrize("path", PUBLIC_PAGES + PRIVATE_PAGES)
def test_every_page_obeys_the_csp_and_links_responsible_use(client: Any, member: Any, path: str) -> None:
    response = (client if path in PUBLIC_PAGES else member).get(path)
    assert response.status_code == 200
    page = audit(response.get_data(as_text=True))
    assert page.inline_scripts == 0, "inline <script> is blocked by the Content-Security-Policy"
    assert page.handlers == [], f"inline event handlers are blocked by the CSP: {page.handlers}"
    assert page.style_attributes == 0, "style attributes are blocked by style-src 'self'"
    assert "/privacy" in page.footer_links
    assert page.csrf_meta


@pytest.mark.parametrize("path", PUBLIC_PAGES + PRIVATE_PAGES)
def test_every_asset_a_page_uses_is_served_by_the_app_itself(client: Any, member: Any, path: str) -> None:
    browser = client if path in PUBLIC_PAGES else member
    page = audit(browser.get(path).get_data(as_text=True))
    assert page.assets
    for asset in page.assets:
        assert asset.startswith("/static/"), f"{asset} is not served by the app (no CDN)"
        assert browser.get(asset).status_code == 200, asset


def test_the_csp_header_allows_only_our_own_scripts(client: Any) -> None:
    policy = client.get("/").headers.get("Content-Security-Policy", "")
    assert re.search(r"script-src 'self'(;|$)", policy)


def test_privacy_page_explains_storage_deletion_and_the_ai_act(client: Any) -> None:
    html = client.get("/privacy").get_data(as_text=True)
    assert "not kept" in html
    assert "Export or delete your data" in html
    assert "Transcripts are personal data" in html and "deleted with the" in html
    assert "Article 5(1)(f)" in html and "workplace" in html and "education" in html


def test_unknown_address_renders_the_error_page_with_404(client: Any) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "Error 404" in html and 'href="/privacy"' in html


def test_api_docs_page_loads_its_description_from_the_openapi_document(client: Any) -> None:
    html = client.get("/docs").get_data(as_text=True)
    assert "/static/js/docs.js" in html
    assert client.get("/api/openapi.json").status_code == 200


@pytest.mark.parametrize("path", PUBLIC_PAGES + PRIVATE_PAGES)
def test_every_page_hands_its_scripts_the_label_order_from_the_server(client: Any, member: Any, path: str) -> None:
    page = (client if path in PUBLIC_PAGES else member).get(path).get_data(as_text=True)
    body = re.search(r"<body\b[^>]*>", page)
    assert body is not None
    labels = re.search(r"\sdata-emotions='([^']*)'", body.group(0))
    assert labels is not None, "<body> must carry data-emotions for static/js/common.js"
    assert json.loads(html_lib.unescape(labels.group(1))) == list(EMOTIONS)


def test_no_script_hard_codes_the_emotion_labels() -> None:
    scripts = sorted((Path(__file__).resolve().parents[1] / "static" / "js").glob("*.js"))
    for script in scripts:
        source = script.read_text(encoding="utf-8")
        named = [label for label in EMOTIONS if re.search(rf"""["']{label}["']\s*[:,\]]|\b{label}\s*:""", source)]
        assert len(named) <= 1, f"{script.name} lists the labels {named}; read them from M.EMOTIONS"


def test_the_scripts_colour_each_label_by_its_position_in_the_servers_list() -> None:
    import shutil
    import subprocess

    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed; the browser tests still draw the charts")
    common = Path(__file__).resolve().parents[1] / "static" / "js" / "common.js"
    probe = (
        "globalThis.window = {};"
        "globalThis.document = {body: {dataset: {emotions: process.argv.at(-1)}}};"
        f"require({json.dumps(str(common))});"
        "const M = window.Moodlens;"
        "console.log(JSON.stringify({emotions: M.EMOTIONS, colors: M.COLORS, palette: M.PALETTE}));"
    )

    def run(labels: list[str]) -> dict[str, Any]:
        result = subprocess.run(
            [node, "-e", probe, json.dumps(labels)], check=True, capture_output=True, text=True, timeout=60
        )
        return json.loads(result.stdout)

    served = run(list(EMOTIONS))
    assert served["emotions"] == list(EMOTIONS)
    assert served["colors"] == dict(zip(EMOTIONS, served["palette"], strict=True))
    assert len(set(served["palette"])) == len(EMOTIONS)
    reordered = run(["calm", *EMOTIONS])
    assert reordered["emotions"][0] == "calm"
    assert reordered["colors"]["calm"] == served["palette"][0]


def test_every_script_is_valid_javascript() -> None:
    import shutil
    import subprocess

    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed; the browser tests still run every script")
    scripts = sorted((Path(__file__).resolve().parents[1] / "static" / "js").glob("*.js"))
    assert scripts
    for script in scripts:
        result = subprocess.run([node, "--check", str(script)], check=False, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"
