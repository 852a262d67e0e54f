"""Issue 13 on Ray Serve: with `mod_isolation: process` an engine replica runs mods in confined
worker processes (and its ingress loads bundles there too), exactly as `quote serve` does."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.ray import mods
from tests.ray.conftest import QuoteApp, ServeCluster
from tests.ray.mods import MARK

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(ray_cluster: ServeCluster) -> Iterator[QuoteApp]:
    from ray import serve

    deployed = ray_cluster.deploy("isolated", min_replicas=1, max_replicas=1, mod_isolation="process")
    try:
        for fn, name in ((mods.mark, "mark"), (mods.where, "where"), (mods.vanish, "vanish")):
            deployed.register(fn, name)
        yield deployed
    finally:
        serve.delete("isolated")


def _chat(app: QuoteApp, model: str) -> str:
    answer = app.openai().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0
    )
    return answer.choices[0].message.content or ""


def test_the_mod_runs_in_a_worker_that_sees_none_of_the_replicas_environment(app: QuoteApp) -> None:
    assert _chat(app, "quote-tiny/mark") == MARK
    assert _chat(app, "quote-tiny/where").strip() == "ENV 0"


def test_a_mod_that_ends_its_process_fails_its_request_and_the_replica_serves_on(app: QuoteApp) -> None:
    with pytest.raises(openai.APIStatusError) as failed:
        _chat(app, "quote-tiny/vanish")
    assert "vanish" in str(failed.value.message)
    assert _chat(app, "quote-tiny/mark") == MARK
