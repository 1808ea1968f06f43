"""Deployment keys: the SuperLink certificate chains to the CA for the loopback names, private
keys are 0600, SuperNode keys are EC P-384 in the OpenSSH format flower-supernode reads."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

from tools.flower.tls import ensure_keys, supernode_keypair


def test_superlink_certificate_is_issued_by_the_ca(tmp_path: Path) -> None:
    keys = ensure_keys(tmp_path, ["127.0.0.1", "localhost"])
    ca = x509.load_pem_x509_certificate(keys.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(keys.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    for private in (keys.ca_key, keys.server_key):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    before = keys.server_cert.read_bytes()
    assert ensure_keys(tmp_path, ["127.0.0.1"]).server_cert.read_bytes() == before  # kept


def test_supernode_keys_are_p384_openssh(tmp_path: Path) -> None:
    private, public = supernode_keypair(tmp_path, "board-1")
    key = load_ssh_private_key(private.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    assert load_ssh_public_key(public.read_bytes()) == key.public_key()
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
