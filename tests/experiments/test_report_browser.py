"""The HTML report in real headless Chromium, offline: every chart renders, and the screenshot shows the bars."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.experiments.conftest import quote
from tests.observability.test_timeline_browser import CHROMIUM_FLAGS, by_css

BAR_COLORS = [(0x4E, 0x79, 0xA7), (0xF2, 0x8E, 0x2B)]  # the first two arms' colours in report.COLORS


@pytest.fixture(scope="module")
def offline_browser() -> Iterator[Any]:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("headless Chromium is not installed (Debian packages `chromium` and `chromium-driver`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="quote-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9"]:  # no network
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_the_report_renders_its_charts_offline(finished: Path, offline_browser: Any, artifacts_dir: Path) -> None:
    from PIL import Image

    page = finished.with_name("browser-report.html")
    done = quote("experiment", "report", finished, "--html", page)
    assert done.returncode == 0, done.stderr
    offline_browser.get(page.as_uri())
    charts = by_css(offline_browser, "#charts svg")
    assert len(charts) == 5
    for chart in charts:
        assert chart.size["width"] > 200 and chart.size["height"] > 40
    bars = by_css(offline_browser, "#charts svg rect.bar")
    assert any(bar.size["width"] > 50 for bar in bars[:2])  # the mod arm's pass-rate bar is wide (100%)
    assert len(by_css(offline_browser, "#charts svg circle.dot")) >= 3 * 10
    assert by_css(offline_browser, "del") and by_css(offline_browser, "ins")
    offline_browser.execute_script("document.getElementById('charts').scrollIntoView()")
    png = offline_browser.get_screenshot_as_png()
    (artifacts_dir / "experiment-report.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20) or []}
    for colour in BAR_COLORS:
        assert any(sum(abs(a - b) for a, b in zip(c, colour, strict=True)) < 12 for c in colours), colour
