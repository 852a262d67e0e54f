"""Replica choice: least outstanding, ties rotated, refused ones set aside, tried ones last."""

from __future__ import annotations

from collections import Counter

from quote_serving.gateway.replicas import ReplicaSet

URLS = ["http://a/v1", "http://b/v1", "http://c/v1"]


def test_the_replica_with_the_fewest_outstanding_requests_is_chosen() -> None:
    replicas = ReplicaSet()
    replicas.get(URLS[0]).outstanding = 3
    replicas.get(URLS[1]).outstanding = 1
    replicas.get(URLS[2]).outstanding = 2
    assert replicas.pick(URLS).url == URLS[1]


def test_ties_rotate_so_idle_replicas_share_sequential_requests() -> None:
    replicas = ReplicaSet()
    assert Counter(replicas.pick(URLS).url for _ in range(30)) == {url: 10 for url in URLS}


def test_concurrent_requests_spread_evenly() -> None:
    replicas = ReplicaSet()
    for _ in range(9):
        replicas.pick(URLS).outstanding += 1
    assert [replicas.get(u).outstanding for u in URLS] == [3, 3, 3]


def test_ejected_and_tried_replicas_come_last() -> None:
    replicas = ReplicaSet(eject_s=60)
    replicas.eject(replicas.get(URLS[0]))
    replicas.get(URLS[1]).outstanding = 5
    assert replicas.pick(URLS, tried=[URLS[2]]).url == URLS[1]
    assert replicas.pick(URLS, tried=URLS[1:]).url == URLS[0]
    assert replicas.pick(URLS[:1]).url == URLS[0]  # all set aside: still try one
