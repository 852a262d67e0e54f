"""The timeline page and its assets are served from package data, safely."""

from __future__ import annotations

import httpx


def test_the_page_and_its_assets_are_served(http_local: httpx.Client) -> None:
    page = http_local.get("/timeline")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"  # a share token in the URL stays here
    for asset, kind in [("timeline.js", "text/javascript"), ("timeline.css", "text/css")]:
        assert f"timeline/{asset}" in page.text
        response = http_local.get(f"/timeline/{asset}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)


def test_unknown_assets_are_a_404_in_openai_shape(http_local: httpx.Client) -> None:
    for path in ("/timeline/secrets.txt", "/timeline/..%2F__init__.py"):
        response = http_local.get(path)
        assert response.status_code == 404 and "error" in response.json()
