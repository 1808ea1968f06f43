"""The aggregator's key material in its SQLite store (PROTOCOL.md §6, PRIVACY.md threat model).

- `server_identity`: the server's long-term X25519 key pair, made once from the OS CSPRNG. The
  secret sits in the store file, so the store is as sensitive as the key: keep it 0600 on a
  machine you trust (the file is created with the process umask; `provision` tightens it).
- `device_keys`: device id ↔ device public key, recorded at enrollment. Trust on first use on
  this side too: a device id that comes back with another key (another board claiming the id,
  or a wiped board) is refused unless replaced on purpose (`force`).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from dataclasses import dataclass

from tools.link import crypto
from tools.link.client import DeviceClient

KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS server_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1), secret BLOB NOT NULL, public BLOB NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS device_keys (
    device_id INTEGER PRIMARY KEY, public_key BLOB NOT NULL, key_id INTEGER NOT NULL,
    enrolled REAL NOT NULL, replaced INTEGER NOT NULL DEFAULT 0);
"""


class EnrollmentError(RuntimeError):
    """The store refuses a device key (says why and what to do)."""


@dataclass(frozen=True)
class DeviceKey:
    device_id: int
    public_key: bytes
    key_id: int
    enrolled: float
    replaced: int


class KeyStore:
    """Key tables on an open sqlite3 connection (the aggregator Store's `conn`)."""

    def __init__(self, conn: sqlite3.Connection, path: str | os.PathLike[str] | None = None):
        self.conn = conn
        self.conn.executescript(KEYS_SCHEMA)
        if path is not None and os.path.exists(path):
            os.chmod(path, 0o600)  # the server secret lives in this file

    def server_secret(self) -> bytes:
        """The server's X25519 secret, created on first use."""
        row = self.conn.execute("SELECT secret FROM server_identity WHERE id = 1").fetchone()
        if row is not None:
            return bytes(row[0])
        secret = secrets.token_bytes(crypto.X25519_LEN)
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO server_identity VALUES (1, ?, ?, ?)",
                (secret, crypto.x25519_public(secret), time.time()),
            )
        return bytes(self.conn.execute("SELECT secret FROM server_identity").fetchone()[0])

    def server_public(self) -> bytes:
        return crypto.x25519_public(self.server_secret())

    def device_key(self, device_id: int) -> DeviceKey | None:
        row = self.conn.execute(
            "SELECT device_id, public_key, key_id, enrolled, replaced FROM device_keys "
            "WHERE device_id = ?",
            (device_id,),
        ).fetchone()
        return None if row is None else DeviceKey(row[0], bytes(row[1]), *row[2:])

    def check_device_key(self, device_id: int, public_key: bytes, force: bool) -> None:
        """Raise EnrollmentError when the id is known with another key and force is off."""
        known = self.device_key(device_id)
        if known is not None and known.public_key != public_key and not force:
            raise EnrollmentError(
                f"device {device_id:#x} is enrolled with another device key "
                f"({known.public_key[:8].hex()}…, now {public_key[:8].hex()}…): another board "
                "claims its id, or it was wiped. Check the board; --force replaces the key."
            )

    def record_device_key(self, device_id: int, public_key: bytes, key_id: int) -> None:
        known = self.device_key(device_id)
        replaced = 0 if known is None else known.replaced + int(known.public_key != public_key)
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO device_keys VALUES (?, ?, ?, ?, ?)",
                (device_id, public_key, key_id, time.time(), replaced),
            )

    def forget_device(self, device_id: int) -> None:
        """Drop a device's recorded key (a test rig's store following re-flashed boards)."""
        with self.conn:
            self.conn.execute("DELETE FROM device_keys WHERE device_id = ?", (device_id,))

    def enrolled_devices(self) -> list[DeviceKey]:
        rows = self.conn.execute(
            "SELECT device_id, public_key, key_id, enrolled, replaced FROM device_keys "
            "ORDER BY device_id"
        ).fetchall()
        return [DeviceKey(r[0], bytes(r[1]), *r[2:]) for r in rows]


def ensure_session(client: DeviceClient, keys: KeyStore) -> bool:
    """Start the authenticated link with a device this store enrolled (no-op when it runs
    already, False for a device the store does not know: it talks plain, if it still may)."""
    if client.session is not None:
        return True
    if keys.device_key(client.device_id) is None:
        return False
    client.start_session(keys.server_secret())
    return True
