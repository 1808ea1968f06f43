"""Keys for a fedhead Flower deployment, made with `cryptography` (never by hand).

    keys = ensure_keys(Path("build/flower/keys"), hosts=["127.0.0.1", "localhost"])
    keys.ca_cert            # give to every gateway (--root-certificates) and the flwr CLI
    keys.server_cert/key    # the SuperLink's TLS identity (stays on the SuperLink machine)
    supernode_keypair(keys.dir, "gw-1")  # a gateway's node-authentication key pair

The CA's private key signs the SuperLink certificate and is not needed afterwards: keep it
offline in a deployment. SuperNode authentication keys are EC P-384 in OpenSSH format, which
`flower-supernode --auth-supernode-private-key` and `flwr supernode register` read.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 365


@dataclass(frozen=True)
class Keys:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "superlink.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "superlink.key"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def ensure_keys(directory: Path, hosts: list[str]) -> Keys:
    """A CA and a SuperLink certificate for `hosts` (IPs or DNS names); kept if present."""
    keys = Keys(Path(directory))
    if keys.ca_cert.exists() and keys.server_cert.exists() and keys.server_key.exists():
        return keys
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedhead deployment CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA384())
    )
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    _write_private(keys.ca_key, _pem_key(ca_key))
    _write_private(keys.server_key, _pem_key(server_key))
    keys.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    keys.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    return keys


def supernode_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """(private, public) OpenSSH EC P-384 key files for one SuperNode; kept if present."""
    private = Path(directory) / f"{name}.key"
    public = Path(directory) / f"{name}.pub"
    if private.exists() and public.exists():
        return private, public
    key = ec.generate_private_key(ec.SECP384R1())
    _write_private(
        private,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n"
    )
    return private, public
