"""The token-timeline page in real headless Chromium: send a prompt to a backtracking mod, watch
it stream, see erased and forced tokens marked, inspect a token's top-k, share the trace, and
arrive from every Grafana data link of the generated dashboards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from quote_serving.observability.dashboards import data_links
from tests.observability.conftest import Served
from tests.observability.support import MODEL, chat_body

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1400,1200",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("headless Chromium is not installed (Debian packages `chromium` and `chromium-driver`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="quote-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, condition: Any, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def by_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def visible(driver: Any, element_id: str) -> bool:
    return bool(driver.execute_script(f"return !document.getElementById('{element_id}').hidden"))


def test_a_backtracking_request_fills_in_live_and_shows_its_erased_tokens(
    browser: Any, served: Served, http_served: httpx.Client, artifacts_dir: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    browser.get(f"{served.server.base_url}/timeline?model={MODEL}/rewriter")
    wait(browser, lambda d: Select(by_css(d, "#model")[0]).first_selected_option.text == f"{MODEL}/rewriter")
    prompt = by_css(browser, "#prompt")[0]
    prompt.clear()
    prompt.send_keys("Tell me about the sea.")
    tokens_box = by_css(browser, "#max-tokens")[0]
    tokens_box.clear()
    tokens_box.send_keys("40")
    by_css(browser, "#send")[0].click()

    wait(browser, lambda d: by_css(d, "#live-status")[0].text == "done" and by_css(d, "#tokens .tok"))
    request_id = by_css(browser, "#trace-title")[0].text
    trace = http_served.get(f"/v1/traces/{request_id}").json()
    streamed = by_css(browser, "#live-text")[0].text
    assert trace["mod"] == "rewriter" and streamed  # the live box received the streamed text

    # Every token in generation order, marked by kind, as the trace has them.
    chips = by_css(browser, "#tokens .tok")
    assert len(chips) == len(trace["tokens"])
    erased = by_css(browser, "#tokens .tok.erased")
    assert len(erased) == sum(t["erased"] for t in trace["tokens"]) > 0
    assert erased[0].value_of_css_property("text-decoration-line") == "line-through"
    assert len(by_css(browser, "#tokens .tok.forced")) == sum(t["kind"] == "forced" for t in trace["tokens"]) > 0
    acted_steps = {c["step"] for c in trace["mod_calls"] if c["action"] != "noop"}
    assert {int(c.get_attribute("data-step")) for c in by_css(browser, "#tokens .tok.acted")} == acted_steps
    assert len(by_css(browser, "#actions tbody tr")) == sum(c["action"] != "noop" for c in trace["mod_calls"])
    assert request_id in [li.get_attribute("data-id") for li in by_css(browser, "#trace-list li")]

    # A sampled token's top-k on click (pinned) and on hover (tooltip), with the mod's actions.
    sampled = next(
        c for c in chips if "sampled" in c.get_attribute("class").split() and "erased" in c.get_attribute("class")
    )
    sampled.click()
    assert visible(browser, "detail")
    browser.execute_script("window.scrollTo(0, 0)")
    assert (
        len(by_css(browser, "#detail .topk tr"))
        == len(trace["tokens"][int(sampled.get_attribute("data-index"))]["top_logprobs"])
        > 0
    )
    ActionChains(browser).move_to_element(erased[-1]).perform()
    wait(browser, lambda d: visible(d, "tip"))
    assert by_css(browser, "#tip .topk tr")
    browser.save_screenshot(str(artifacts_dir / "timeline.png"))


def test_a_share_link_shows_that_trace_read_only(
    browser: Any, served: Served, http_served: httpx.Client, artifacts_dir: Path
) -> None:
    response = http_served.post(
        "/v1/chat/completions",
        json={
            "model": f"{MODEL}/rewriter",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 30,
            "temperature": 0,
        },
    ).json()
    browser.get(f"{served.server.base_url}/timeline?trace={response['id']}")
    wait(browser, lambda d: by_css(d, "#tokens .tok"))
    by_css(browser, "#share")[0].click()
    wait(browser, lambda d: visible(d, "share-link") and by_css(d, "#share-url")[0].text)
    link = by_css(browser, "#share-url")[0].text

    browser.get(link)
    wait(browser, lambda d: by_css(d, "#tokens .tok"))
    assert "shared" in by_css(browser, "body")[0].get_attribute("class")
    assert not visible(browser, "sidebar") and visible(browser, "shared-banner")
    assert not by_css(browser, "#api-key")[0].is_displayed()
    assert by_css(browser, "#trace-title")[0].text == response["id"] and by_css(browser, "#tokens .tok.erased")
    browser.save_screenshot(str(artifacts_dir / "timeline-shared.png"))

    browser.get(link[:-3] + "abc")  # a tampered token
    wait(browser, lambda d: visible(d, "error"))
    assert "invalid or has expired" in by_css(browser, "#error")[0].text


def grafana_link(template: str, timeline: str, trace_id: str) -> str:
    """The URL Grafana opens: `$timeline` is the dashboard variable, `__value.raw` the trace_id field's value."""
    url = template.replace("${timeline}", timeline).replace("${__value.raw}", trace_id)
    assert "$" not in url, template
    return url


def test_every_dashboard_data_link_opens_the_trace_it_names(
    browser: Any, served: Served, http_served: httpx.Client
) -> None:
    request_id = http_served.post("/v1/chat/completions", json=chat_body(f"{MODEL}/rewriter")).json()["id"]
    links = list(data_links())
    assert {name for name, _, _ in links} == {
        "quote-interventions.json",
        "quote-recent-errors.json",
        "quote-serving.json",
    }
    for name, title, template in links:
        browser.get(grafana_link(template, served.server.base_url, request_id))
        wait(browser, lambda d: by_css(d, "#trace-title")[0].text == request_id and by_css(d, "#tokens .tok"))
        assert not visible(browser, "error"), (name, title)
