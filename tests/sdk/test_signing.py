"""Ed25519 signatures over the canonical bundle digest."""

from __future__ import annotations

import pytest

from quote_mod_sdk import (
    SignatureError,
    SignatureVerificationError,
    keygen,
    serialize_mod,
    sign_bundle,
    verify_bundle,
)
from quote_mod_sdk.signing import BundleSignature, load_private_key, load_public_key

from .conftest import load_seed


@pytest.fixture
def bundle() -> dict:  # type: ignore[type-arg]
    return serialize_mod(load_seed("skeleton").my_mod, name="my_mod")


def test_signature_verifies_for_the_same_bundle(bundle) -> None:  # type: ignore[no-untyped-def]
    key = keygen()
    signature = sign_bundle(bundle, key)
    assert verify_bundle(bundle, signature, key.public_key) == signature.digest
    assert verify_bundle(bundle, signature.as_dict(), load_public_key(key.public_b64())) == signature.digest


def test_keys_round_trip_through_text(bundle) -> None:  # type: ignore[no-untyped-def]
    key = keygen()
    again = load_private_key(key.private_pem())
    assert again.key_id == key.key_id and key.key_id.startswith("ed25519:")
    verify_bundle(bundle, sign_bundle(bundle, again), key.public_key)


def test_tampered_bundle_is_rejected(bundle) -> None:  # type: ignore[no-untyped-def]
    key = keygen()
    signature = sign_bundle(bundle, key)
    tampered = {**bundle, "source": bundle["source"].replace("noop", "force_output")}
    with pytest.raises(SignatureVerificationError, match="does not match the signed digest"):
        verify_bundle(tampered, signature, key.public_key)


def test_forged_signature_is_rejected(bundle) -> None:  # type: ignore[no-untyped-def]
    key, other = keygen(), keygen()
    forged = sign_bundle(bundle, other)
    relabelled = BundleSignature(forged.digest, key.key_id, forged.signature)
    with pytest.raises(SignatureVerificationError, match="does not verify"):
        verify_bundle(bundle, relabelled, key.public_key)
    with pytest.raises(SignatureVerificationError, match="signed by key"):
        verify_bundle(bundle, forged, key.public_key)


def test_malformed_signatures_and_keys_fail_clearly(bundle) -> None:  # type: ignore[no-untyped-def]
    key = keygen()
    with pytest.raises(SignatureVerificationError, match="missing field"):
        verify_bundle(bundle, {"digest": "x"}, key.public_key)
    good = sign_bundle(bundle, key)
    with pytest.raises(SignatureVerificationError):
        verify_bundle(bundle, BundleSignature(good.digest, good.key_id, "not base64!!"), key.public_key)
    with pytest.raises(SignatureError, match="not an Ed25519 public key"):
        load_public_key("garbage")
    with pytest.raises(SignatureError, match="not a PEM private key"):
        load_private_key("garbage")


def test_verification_failure_is_a_distinct_exception() -> None:
    assert issubclass(SignatureVerificationError, SignatureError)
    assert not issubclass(SignatureError, SignatureVerificationError)
