"""Ed25519 signatures over a bundle's canonical digest.

Publishing signs `bundle_digest(bundle)` with the tenant's private key; serving verifies it
against the tenant's trusted public keys before loading the mod. Keys travel as PEM (private)
and base64 raw bytes (public); a key id is derived from the public key so it cannot lie.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from quote_mod_sdk.errors import SignatureError, SignatureVerificationError
from quote_mod_sdk.serialize import bundle_digest

__all__ = [
    "BundleSignature",
    "KeyPair",
    "keygen",
    "load_private_key",
    "load_public_key",
    "public_key_id",
    "sign_bundle",
    "verify_bundle",
]


@dataclass(frozen=True)
class KeyPair:
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return public_key_id(self.public_key)

    def private_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def public_b64(self) -> str:
        return public_key_b64(self.public_key)


@dataclass(frozen=True)
class BundleSignature:
    """What the registry stores beside a version: the digest, who signed it, and the signature."""

    digest: str
    key_id: str
    signature: str  # base64 of the 64-byte Ed25519 signature over the digest string

    def as_dict(self) -> dict[str, str]:
        return {"digest": self.digest, "key_id": self.key_id, "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BundleSignature:
        try:
            return cls(str(data["digest"]), str(data["key_id"]), str(data["signature"]))
        except KeyError as exc:
            raise SignatureVerificationError(f"signature is missing field {exc.args[0]!r}") from exc


def keygen() -> KeyPair:
    return KeyPair(Ed25519PrivateKey.generate())


def public_key_b64(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(pem: str | bytes) -> KeyPair:
    try:
        key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("the private key is not an Ed25519 key; create one with `quote keygen`")
    return KeyPair(key)


def load_public_key(data: str | bytes) -> Ed25519PublicKey:
    """A public key from base64 raw bytes or PEM."""
    text = data.decode() if isinstance(data, bytes) else data
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise SignatureError("the public key is not an Ed25519 key")
            return key
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not an Ed25519 public key (base64 raw or PEM): {exc}") from exc


def sign_bundle(bundle: Mapping[str, Any], key: KeyPair) -> BundleSignature:
    digest = bundle_digest(bundle)
    signature = key.private_key.sign(digest.encode())
    return BundleSignature(digest, key.key_id, base64.b64encode(signature).decode())


def verify_bundle(
    bundle: Mapping[str, Any], signature: BundleSignature | Mapping[str, Any], public_key: Ed25519PublicKey
) -> str:
    """Return the digest if `signature` covers exactly `bundle` under `public_key`; else raise."""
    sig = signature if isinstance(signature, BundleSignature) else BundleSignature.from_dict(signature)
    digest = bundle_digest(bundle)
    if sig.digest != digest:
        raise SignatureVerificationError(f"bundle digest {digest} does not match the signed digest {sig.digest}")
    if sig.key_id != public_key_id(public_key):
        raise SignatureVerificationError(f"signed by key {sig.key_id}, not by {public_key_id(public_key)}")
    try:
        public_key.verify(base64.b64decode(sig.signature, validate=True), digest.encode())
    except (InvalidSignature, ValueError) as exc:
        raise SignatureVerificationError("signature does not verify for this bundle and key") from exc
    return digest
