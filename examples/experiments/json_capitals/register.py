"""Register the example's mod (the tour's capital_json) with a running `quote serve`.

.venv/bin/python examples/experiments/json_capitals/register.py [http://127.0.0.1:8000]
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tour"))
import tour_mods

from quote_mod_sdk import serialize_mod


def main(base: str = "http://127.0.0.1:8000") -> None:
    body = serialize_mod(tour_mods.capital_json, name="capital_json")
    httpx.post(f"{base}/v1/mods", json=body, timeout=30).raise_for_status()


if __name__ == "__main__":
    main(*sys.argv[1:2])
