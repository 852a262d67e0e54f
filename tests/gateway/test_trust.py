"""The signed tenant header between gateway and replicas."""

from __future__ import annotations

import time

from quote_serving.gateway.trust import MAX_SKEW_S, sign_tenant, verify_tenant

SECRET = b"s" * 32


def test_a_signature_names_one_tenant() -> None:
    signature = sign_tenant(SECRET, "acme")
    assert verify_tenant(SECRET, "acme", signature)
    assert not verify_tenant(SECRET, "globex", signature)
    assert not verify_tenant(b"t" * 32, "acme", signature)


def test_signatures_go_stale() -> None:
    old = sign_tenant(SECRET, "acme", now=time.time() - MAX_SKEW_S - 5)
    assert not verify_tenant(SECRET, "acme", old)


def test_garbage_signatures_are_refused() -> None:
    for signature in ("", "t=abc,v1=00", "v1=" + "0" * 64, "t=1", ",,,"):
        assert not verify_tenant(SECRET, "acme", signature)
