"""`invoke provision`: enroll one device with this aggregator (PROTOCOL.md §6.2).

1. HELLO and ENROLL_GET: the device's id and its public key (made on the device at first boot).
2. The store checks the id ↔ key binding (trust on first use; another key needs --force).
3. ENROLL_SET with the server's public key: the device records it (trust on first use; a
   device enrolled with another server honours --force only right after a power-on, or when
   the old server sends it authenticated).
4. The store records device id ↔ public key; with --user, the user of the device for user-level
   accounting (table `enrollment`, `Store.enroll`).
5. An authenticated request checks that both sides now derive the same link keys.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from tools.aggregator.keys import EnrollmentError, KeyStore
from tools.aggregator.store import Store
from tools.link import messages as m
from tools.link.client import DeviceClient
from tools.link.errors import LinkError, NackError
from tools.link.messages import MsgType, NackCode

DEFAULT_STORE = Path("build/aggregator/aggregate.sqlite")
_NACK_ADVICE = {
    NackCode.ENROLLED: "the device is enrolled with another server; run again with --force "
    "right after power-cycling the board (or from the old server)",
    NackCode.FORCE_REFUSED: "--force is honoured only within 30 s of a power-on boot (not after "
    "a link RESET): power-cycle the board and run again at once",
    NackCode.NO_IDENTITY: "the device has no entropy yet (QEMU: send SEED first)",
}


@dataclass(frozen=True)
class Provisioned:
    device_id: int
    device_public: bytes
    key_id: int
    user: str | None


def _verify_session(client: DeviceClient, secret: bytes) -> None:
    """An authenticated UPDATE_GET must come back as an authenticated NACK (not AUTH_*)."""
    client.start_session(secret)
    try:
        client.request(m.UpdateGet(0xFFFFFFFE, 0, 1), expect=MsgType.UPDATE_CHUNK, retries=0)
    except NackError as err:
        if err.code not in (NackCode.NO_DATA, NackCode.BAD_STATE):
            raise
    if client.counters.auth_rejected:
        raise EnrollmentError("the device's authenticated answer did not verify")


def provision_client(
    client: DeviceClient, store: Store, user: str | None = None, force: bool = False
) -> Provisioned:
    """Enroll the device behind an open client with the aggregator of `store`."""
    keys = KeyStore(store.conn, store.path)
    secret = keys.server_secret()
    client.hello()
    info = client.enroll_info()
    keys.check_device_key(client.device_id, info.device_public, force)
    try:
        key_id = client.enroll(keys.server_public(), force=force)
    except NackError as err:
        advice = _NACK_ADVICE.get(NackCode(err.code), "")
        raise EnrollmentError(f"{err}: {advice}" if advice else str(err)) from err
    keys.record_device_key(client.device_id, info.device_public, key_id)
    if user is not None:
        store.enroll({client.device_id: user})  # user-level accounting's table
    _verify_session(client, secret)
    return Provisioned(client.device_id, info.device_public, key_id, user)


def provision(
    url: str, store_path: Path, user: str | None = None, force: bool = False, timeout: float = 5.0
) -> Provisioned:
    store = Store(store_path)
    try:
        with DeviceClient.open(url, timeout=timeout) as client:
            return provision_client(client, store, user, force)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="provision", description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True)
    parser.add_argument("--user", default=None)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    args = parser.parse_args(argv)
    try:
        done = provision(args.port, args.store, args.user, args.force)
    except (EnrollmentError, LinkError) as err:
        raise SystemExit(f"provision: {err}") from None
    print(
        f"device {done.device_id:#x} enrolled (key_id {done.key_id}, device key "
        f"{done.device_public.hex()}) in {args.store}"
    )
    if done.user is not None:
        print(f"device {done.device_id:#x} belongs to user {done.user!r} (table enrollment)")
