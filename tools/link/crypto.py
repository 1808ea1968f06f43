"""Python twin of fedcore/platform/crypto.h, on `cryptography` (OpenSSL underneath).

The same five operations the firmware gets from Monocypher/libsodium (host, QEMU) or mbedTLS
(ESP32): X25519 (RFC 7748), ChaCha20-Poly1305 IETF (RFC 8439), HKDF-SHA-256 (RFC 5869).
Tests check both sides against the RFC vectors and against each other byte for byte.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

X25519_LEN = 32
AEAD_KEY_LEN = 32
AEAD_NONCE_LEN = 12
AEAD_TAG_LEN = 16


class CryptoError(ValueError):
    """A tag did not verify, or a peer key is unusable (low-order point)."""


def x25519_public(secret_key: bytes) -> bytes:
    """Public key of a 32-byte X25519 secret (clamped by X25519 itself)."""
    return X25519PrivateKey.from_private_bytes(secret_key).public_key().public_bytes_raw()


def x25519_shared(secret_key: bytes, peer_public: bytes) -> bytes:
    """X25519 shared secret; CryptoError for a low-order peer point (all-zero result)."""
    try:
        return X25519PrivateKey.from_private_bytes(secret_key).exchange(
            X25519PublicKey.from_public_bytes(peer_public)
        )
    except ValueError as exc:  # cryptography refuses the all-zero shared secret
        raise CryptoError(f"unusable X25519 peer key: {exc}") from exc


def aead_seal(key: bytes, nonce: bytes, ad: bytes, plain: bytes) -> tuple[bytes, bytes]:
    """(cipher text, 16-byte tag) like fc_crypto_aead_seal."""
    sealed = ChaCha20Poly1305(key).encrypt(nonce, plain, ad)
    return sealed[:-AEAD_TAG_LEN], sealed[-AEAD_TAG_LEN:]


def aead_open(key: bytes, nonce: bytes, ad: bytes, cipher: bytes, tag: bytes) -> bytes:
    """Plain text, or CryptoError when the tag does not verify."""
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, cipher + tag, ad)
    except InvalidTag as exc:
        raise CryptoError("AEAD tag does not verify") from exc


def hkdf_sha256(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 extract-then-expand (RFC 5869); an empty salt means HashLen zeros."""
    return HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)
