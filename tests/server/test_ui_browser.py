"""The web UI in a real headless Chromium (Debian's package, driven by Playwright) over the example repository."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import ADMIN_KEY, SCOPED_KEY, ExampleServer
from tests.server.example_repo import ROOT

CHROMIUM = "/usr/bin/chromium"
# The closed network refuses Chromium's background connections; these flags stop it making any.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "out" / "ui-screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        pytest.fail("chromium is not installed; `make test` installs it with apt-get")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


class Page:
    """One browser tab on the UI that records console errors, failed requests and requests leaving the server."""

    def __init__(self, browser: Any, server: ExampleServer) -> None:
        self.server = server
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._request)

    def _request(self, request: Any) -> None:
        url = request.url
        if not (url.startswith(self.server.url) or url.startswith("data:")):
            self.foreign.append(url)

    def login(self, key: str) -> None:
        self.page.goto(self.server.url + "/ui")
        self.page.wait_for_selector("body[data-rendered='key']")
        self.page.fill("#api-key", key)
        self.page.click("form.keybox button")
        self.page.wait_for_selector("body[data-rendered='#/']")

    def open(self, hash_: str) -> str:
        self.page.evaluate(f"location.hash = {hash_!r}")
        self.page.wait_for_selector(f"body[data-rendered='{hash_}']")
        self.page.wait_for_load_state("networkidle")
        return str(self.page.inner_text("main"))

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


def test_every_page_shows_the_example_without_errors(browser: Any, example_server: ExampleServer) -> None:
    tab = Page(browser, example_server)
    try:
        tab.login(ADMIN_KEY)
        overview = tab.open("#/")
        for view in ("weather", "planes", "carrier_delays", "route_delays", "delay_model"):
            assert view in overview
        # weather was pushed seconds ago: fresh (within its 3 h ttl), shown in seconds or minutes
        fresh = tab.page.locator("tr", has_text="weather").locator(".pill.ok").first.inner_text()
        assert fresh.endswith(("s", "min"))
        assert "quarantined" in overview or "passed" in overview
        assert tab.shot("overview").stat().st_size > 10_000

        view = tab.open("#/view/weather")
        for text in ("wind_speed", "in_range(0, 150)", "not_null()", "max_null_fraction", "min_rows", "Lineage"):
            assert text in view, text
        assert "delay_model" in view and "admin" in view  # lineage: services and the keys that read it
        assert "date=2013-" in view or "2013-" in view  # offline partitions
        tab.shot("view-weather")

        transform = tab.open("#/view/carrier_delays")
        assert "def " in transform or "rolling" in transform  # the transform's code
        tab.shot("view-carrier_delays")

        quality = tab.open("#/quality/weather")
        assert "1048.36" in quality  # the quarantined 1,048 mph reading, with its reason
        assert "in_range(0, 150) on wind_speed" in quality
        assert tab.page.locator("svg polyline").count() >= 2  # history charts
        assert "PSI" in quality and tab.page.locator(".hist svg rect").count() > 10  # drift histograms
        tab.page.select_option("#q-check", "not_null()")
        tab.page.wait_for_selector("#quarantine[data-loaded='not_null()||0']")
        filtered = tab.page.inner_text("#quarantine")
        assert "1048.36" not in filtered and "of 5" in filtered  # four missing wind speeds, one temperature
        tab.page.select_option("#q-check", "")
        tab.page.wait_for_selector("#quarantine[data-loaded='||0']")
        tab.shot("quality-weather")

        training = tab.open("#/training")
        assert "featurestore training-set --manifest" in training and "delay_model" in training
        tab.shot("training-sets")

        tab.open("#/playground")
        tab.page.select_option("#pg-kind", "view:weather")
        tab.page.fill("input[data-key='origin']", "JFK, LGA")
        tab.page.click("#pg-go")
        tab.page.wait_for_selector("#pg-out table")
        result = tab.page.inner_text("#pg-out")
        assert "PRESENT" in result and "wind_speed" in result and "curl" in result
        assert "FeatureClient" in result
        tab.shot("playground")

        service = tab.open("#/service/delay_model")
        assert "skew" in service.lower()
        assert tab.errors == [], tab.errors
        assert tab.foreign == [], tab.foreign
    finally:
        tab.close()


def test_a_key_scoped_to_one_service_sees_only_its_view(browser: Any, example_server: ExampleServer) -> None:
    tab = Page(browser, example_server)
    try:
        tab.login(SCOPED_KEY)
        overview = tab.open("#/")
        assert "weather" in overview and "weather_now" in overview
        for hidden in ("planes", "carrier_delays", "route_delays", "delay_model"):
            assert hidden not in overview, hidden
        tab.shot("overview-scoped")
        denied = tab.open("#/view/planes")
        assert "403" in denied and "may not read" in denied
        quality = tab.open("#/quality/weather")  # its reports, not its rows: the service reads a few columns
        assert "Gate report history" in quality and "through its feature services only" in quality
        playground = tab.open("#/playground")
        assert "planes" not in playground
    finally:
        tab.close()


def test_a_wrong_key_is_refused_and_assets_load_without_one(browser: Any, example_server: ExampleServer) -> None:
    import httpx

    assert httpx.get(example_server.url + "/ui/static/app.js").status_code == 200
    assert httpx.get(example_server.url + "/ui/api/overview").status_code == 401
    tab = Page(browser, example_server)
    try:
        tab.page.goto(example_server.url + "/ui")
        tab.page.wait_for_selector("body[data-rendered='key']")
        tab.page.fill("#api-key", "fs_wrong")
        tab.page.click("form.keybox button")
        tab.page.wait_for_selector("text=That key was refused.")
    finally:
        tab.close()
