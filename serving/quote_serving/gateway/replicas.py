"""Choosing a replica: the one with the fewest requests this gateway has outstanding on it.

Generation time varies a hundredfold between requests, so round-robin piles long requests on
one replica; counting what is still in flight follows the real load without asking replicas.
Ties rotate. A replica that refused a connection is set aside for `eject_s` (unless every
replica is), so one dead pod costs one retry, not one per request. State is kept per URL, so
it survives route table reloads.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = ["Replica", "ReplicaSet"]


@dataclass(slots=True)
class Replica:
    url: str
    outstanding: int = 0
    ejected_until: float = 0.0
    ready: bool = True  # the last /readyz check (health.py); never checked counts as ready
    checked_at: float = 0.0
    failures_in_a_row: int = 0  # 5xx answers and dropped requests since the last success
    slow_checks: int = 0  # /readyz checks in a row that got no answer in time (health.py)


class ReplicaSet:
    def __init__(self, *, eject_s: float = 5.0) -> None:
        self.eject_s = eject_s
        self._by_url: dict[str, Replica] = {}
        self._turn = 0

    def get(self, url: str) -> Replica:
        replica = self._by_url.get(url)
        if replica is None:
            replica = self._by_url[url] = Replica(url)
        return replica

    def pick(self, urls: Sequence[str], tried: Collection[str] = ()) -> Replica:
        """The least loaded of `urls`, preferring ones not yet tried for this request and not set aside."""
        now = time.monotonic()
        self._turn += 1
        n, best, best_key = len(urls), None, None
        for i, url in enumerate(urls):
            replica = self.get(url)
            key = (url in tried, replica.ejected_until > now, replica.outstanding, (i - self._turn) % n)
            if best_key is None or key < best_key:
                best, best_key = replica, key
        assert best is not None, "a route always has at least one replica"
        return best

    def ready(self, urls: Sequence[str]) -> list[str]:
        """The URLs whose last readiness check passed (or that were never checked)."""
        return [url for url in urls if self.get(url).ready]

    def eject(self, replica: Replica) -> None:
        replica.ejected_until = time.monotonic() + self.eject_s

    def succeeded(self, replica: Replica) -> None:
        replica.failures_in_a_row = 0

    def failed(self, replica: Replica, *, outlier_after: int) -> None:
        """Passive outlier detection: `outlier_after` failures in a row set the replica aside."""
        replica.failures_in_a_row += 1
        if replica.failures_in_a_row >= outlier_after:
            self.eject(replica)
