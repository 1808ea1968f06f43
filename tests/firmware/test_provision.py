"""`invoke provision` against the real host firmware: the store and the device agree on keys,
trust on first use on both sides, --force, and --user into the `enrollment` table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.firmware.conftest import assert_clean_exit
from tests.support.cbuild import SANITIZER_ENV
from tools.aggregator.keys import EnrollmentError, KeyStore
from tools.aggregator.provision import provision
from tools.fleet import start_host_device
from tools.link import crypto
from tools.link.client import DeviceClient


def test_provision_records_both_sides_and_is_idempotent(
    host_firmware: Path, tmp_path: Path
) -> None:
    store_path = tmp_path / "agg.sqlite"
    device = start_host_device(
        host_firmware, 0x4601, tmp_path, tmp_path / "state", env=SANITIZER_ENV
    )
    try:
        first = provision(device.url, store_path, user="alice")
        assert first.key_id == 1
        again = provision(device.url, store_path)
        assert (again.key_id, again.device_public) == (1, first.device_public)
        conn = sqlite3.connect(store_path)
        keys = KeyStore(conn)
        [row] = keys.enrolled_devices()
        assert (row.device_id, row.public_key, row.key_id) == (0x4601, first.device_public, 1)
        with DeviceClient.open(device.url, timeout=5.0) as client:
            client.hello()
            info = client.enroll_info()
        assert info.server_public == crypto.x25519_public(keys.server_secret())
        assert info.device_public == first.device_public
        # The device holds this server; another aggregator (its own store and key) is refused.
        with pytest.raises(EnrollmentError, match="ENROLLED"):
            provision(device.url, tmp_path / "other.sqlite")
        # --user lands in user-level accounting's enrollment table.
        assert conn.execute("SELECT device_id, user_id FROM enrollment").fetchall() == [
            (0x4601, "alice")
        ]
        conn.close()
    finally:
        assert_clean_exit(device)


def test_store_refuses_another_key_for_a_known_id_unless_forced(
    host_firmware: Path, tmp_path: Path
) -> None:
    store_path = tmp_path / "agg.sqlite"
    original = start_host_device(host_firmware, 0x4602, tmp_path, tmp_path / "a", env=SANITIZER_ENV)
    try:
        provision(original.url, store_path)
    finally:
        assert_clean_exit(original)
    impostor = start_host_device(
        host_firmware, 0x4602, tmp_path, tmp_path / "b", env=SANITIZER_ENV
    )  # same id, fresh storage: another key
    try:
        with pytest.raises(EnrollmentError, match="another device key"):
            provision(impostor.url, store_path)
        replaced = provision(impostor.url, store_path, force=True)
        conn = sqlite3.connect(store_path)
        assert KeyStore(conn).device_key(0x4602).public_key == replaced.device_public
        assert KeyStore(conn).device_key(0x4602).replaced == 1
        conn.close()
    finally:
        assert_clean_exit(impostor)
