"""examples/tour/tour.py runs as written against the default `quote serve` and shows each effect."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.serving.conftest import Server

pytestmark = pytest.mark.real_model

TOUR = Path(__file__).resolve().parents[2] / "examples" / "tour" / "tour.py"


def test_the_tour_shows_every_effect(default_server: Server) -> None:
    spec = importlib.util.spec_from_file_location("quote_tour", TOUR)
    assert spec and spec.loader
    tour = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tour)
    lines: dict[str, str] = {}
    tour.main(default_server.base_url, out=lambda label, *rest: lines.__setitem__(label.strip(" :"), " ".join(rest)))
    assert "Paris" in lines["plain"]
    assert "Paris" not in lines["no_paris"] and lines["no_paris"]
    assert "the City of Light" in lines["city_light"] and "Paris" not in lines["city_light"]
    assert lines["capital"] == "Berlin"
    name, arguments = lines["weather_tool"].split(" ", 1)
    assert name == "get_weather" and json.loads(arguments) == {"city": "Tokyo"}
    assert json.loads(lines["capital_json"]) == {"capital": "Madrid"}
