"""Device identity, enrollment and the authenticated link against the real host firmware
(ASan/UBSan): the Python twin tools/link/auth.py and fedcore/auth.c interoperate byte for byte,
and forged, replayed, reordered, cross-device and unauthenticated frames are refused, counted,
and change nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.firmware.conftest import ReplayData, assert_clean_exit, perturbed_head
from tests.firmware.test_hostile_input import RawLink, _nacks
from tests.support.cbuild import SANITIZER_ENV
from tools.fleet import VirtualDevice, start_host_device
from tools.link import crypto
from tools.link import frame as fr
from tools.link import messages as m
from tools.link.auth import LinkSession
from tools.link.client import DeviceClient
from tools.link.errors import NackError
from tools.link.messages import MsgType, NackCode

SERVER_A = bytes(range(1, 33))
SERVER_B = bytes(range(101, 133))


def _start(firmware: Path, device_id: int, tmp_path: Path, state: str = "state"):
    return start_host_device(firmware, device_id, tmp_path, tmp_path / state, env=SANITIZER_ENV)


@pytest.fixture
def two_devices(host_firmware: Path, tmp_path: Path) -> Iterator[list[VirtualDevice]]:
    devices = [
        _start(host_firmware, 0x4301, tmp_path, "a"),
        _start(host_firmware, 0x4302, tmp_path, "b"),
    ]
    try:
        yield devices
    finally:
        for device in devices:
            assert_clean_exit(device)


def _client(device: VirtualDevice) -> DeviceClient:
    client = DeviceClient.open(device.url, timeout=5.0)
    client.hello()
    return client


def _exchange_nacks(raw: RawLink, frame: fr.Frame) -> list[tuple[int, int]]:
    return [(n.ack_seq, n.code) for n in _nacks(raw.exchange(fr.encode_frame(frame)))]


def _add_examples(client: DeviceClient, replay: ReplayData, n: int = 12) -> None:
    for window, label in zip(replay.windows[:n], replay.labels[:n], strict=True):
        client.sample(window, label=int(label))


def test_identity_is_made_once_and_kept(
    host_device: VirtualDevice, host_firmware: Path, tmp_path: Path
) -> None:
    with _client(host_device) as client:
        info = client.enroll_info()
        assert not info.enrolled and info.key_id == 0
        assert info.flags & m.ENROLL_INFO_FORCE_WINDOW and info.flags & m.ENROLL_INFO_REPLAY_PROFILE
        assert len(set(info.device_public)) > 8 and info.server_public == bytes(32)
        client.reset(wait_boot=5.0)
        again = client.enroll_info()
        assert again.device_public == info.device_public
        assert again.session_nonce != info.session_nonce  # every boot is a new session
        assert not again.flags & m.ENROLL_INFO_FORCE_WINDOW  # a link RESET is no power-on
    other = _start(host_firmware, 0x4343, tmp_path, "other")
    try:
        with _client(other) as client:
            assert client.enroll_info().device_public != info.device_public
    finally:
        assert_clean_exit(other)


def test_enrollment_is_trust_on_first_use(host_firmware: Path, tmp_path: Path) -> None:
    device = _start(host_firmware, 0x4401, tmp_path)
    pk_a, pk_b = crypto.x25519_public(SERVER_A), crypto.x25519_public(SERVER_B)
    try:
        with _client(device) as client:
            with pytest.raises(NackError) as low_order:
                client.enroll(bytes(32))
            assert low_order.value.code == NackCode.BAD_KEY
            assert client.enroll(pk_a) == 1
            assert client.enroll(pk_a) == 1  # the same server again: idempotent
            with pytest.raises(NackError) as refused:
                client.enroll(pk_b)
            assert refused.value.code == NackCode.ENROLLED
            client.reset(wait_boot=5.0)
            with pytest.raises(NackError) as no_presence:
                client.enroll(pk_b, force=True)  # after a link RESET: nobody pressed anything
            assert no_presence.value.code == NackCode.FORCE_REFUSED
            info = client.enroll_info()
            assert (info.server_public, info.key_id) == (pk_a, 1)
            # The enrolled server hands the device over: FORCE inside an authenticated frame.
            session = client.start_session(SERVER_A)
            raw = RawLink(client)
            handover = session.seal(
                fr.Frame(
                    MsgType.ENROLL_SET,
                    m.EnrollSet(pk_b, m.ENROLL_FORCE).pack(),
                    client.device_id,
                    77,
                )
            )
            acks = [
                m.Ack.unpack(f.payload)
                for f in raw.exchange(fr.encode_frame(handover))
                if f.type == MsgType.ACK
            ]
            assert [(a.ack_seq, a.value) for a in acks] == [(77, 2)]
            assert client.enroll_info().server_public == pk_b
    finally:
        assert_clean_exit(device)
    # Physical presence: right after a power-on boot FORCE is honoured.
    device = _start(host_firmware, 0x4401, tmp_path)
    try:
        with _client(device) as client:
            assert client.enroll_info().server_public == pk_b  # kept in storage
            assert client.enroll(pk_a, force=True) == 3
    finally:
        assert_clean_exit(device)


def test_authenticated_round_trip_encrypts_the_update(
    host_device: VirtualDevice, replay: ReplayData
) -> None:
    with _client(host_device) as client:
        client.enroll(crypto.x25519_public(SERVER_A))
        session = client.start_session(SERVER_A)
        w, b = perturbed_head(replay, 13)
        client.install_head(w, b, version=5)
        assert client.hello().head_version == 5
        _add_examples(client, replay)
        client.train(m.Train(round=1, lr=0.05, clip=1.0, scale=1e-3, bits=16, flags=1, seed=9))
        update = client.fetch_update(1, timeout=30)
        assert len(update.data) == update.ready.total_len > 0
        # The same chunk on the wire: sealed, and the payload is cipher text.
        raw = RawLink(client)
        ask = session.seal(
            fr.Frame(MsgType.UPDATE_GET, m.UpdateGet(1, 0, 64).pack(), client.device_id, 600)
        )
        [wire_chunk] = [
            f for f in raw.exchange(fr.encode_frame(ask)) if f.type == MsgType.UPDATE_CHUNK
        ]
        assert wire_chunk.flags & fr.FLAG_AUTH and wire_chunk.key_id == 1
        opened = session.open(wire_chunk)
        assert m.UpdateChunk.unpack(opened.payload).data == update.data[:64]
        assert update.data[:64] not in wire_chunk.payload
        info = client.enroll_info()
        assert (info.rejected_tag, info.rejected_replay, info.rejected_required) == (0, 0, 0)
        assert client.counters.auth_rejected == 0


def test_forged_replayed_reordered_and_cross_device_frames_are_refused(
    two_devices: list[VirtualDevice], replay: ReplayData
) -> None:
    pk_a = crypto.x25519_public(SERVER_A)
    clients = [_client(d) for d in two_devices]
    try:
        for client in clients:
            client.enroll(pk_a)
            client.start_session(SERVER_A)
        client, other = clients
        session = client.session
        assert session is not None
        _add_examples(client, replay)
        raw = RawLink(client)
        before_info = client.hello()
        train = m.Train(round=7, lr=0.05, clip=1.0, scale=1e-3, bits=16, flags=1, seed=3)

        def sealed(msg: m.Message, seq: int) -> fr.Frame:
            return session.seal(fr.Frame(msg.TYPE, msg.pack(), client.device_id, seq))

        # Plain TRAIN to an enrolled device.
        assert _exchange_nacks(
            raw, fr.Frame(MsgType.TRAIN, train.pack(), client.device_id, 801)
        ) == [(801, NackCode.AUTH_REQUIRED)]
        # Forged: one bit of cipher text, of the tag, of the header (associated data).
        good = sealed(train, 802)
        flipped_payload = bytearray(good.payload)
        flipped_payload[0] ^= 1
        flipped_tag = bytearray(good.auth)
        flipped_tag[10] ^= 1
        for forged in (
            dataclasses.replace(good, payload=bytes(flipped_payload)),
            dataclasses.replace(good, auth=bytes(flipped_tag)),
            dataclasses.replace(good, seq=803),
        ):
            assert _exchange_nacks(raw, forged) == [(forged.seq, NackCode.AUTH_TAG)]
        # Wrong key id.
        assert _exchange_nacks(raw, dataclasses.replace(good, key_id=9)) == [
            (802, NackCode.AUTH_KEY)
        ]
        # A frame sealed under another server's key (an unenrolled server).
        info = client.enroll_info()
        intruder = LinkSession.derive(
            SERVER_B, info.device_public, client.device_id, info.session_nonce, info.key_id
        )
        fake = intruder.seal(fr.Frame(MsgType.TRAIN, train.pack(), client.device_id, 804))
        assert _exchange_nacks(raw, fake) == [(804, NackCode.AUTH_TAG)]
        # Cross-device: a frame sealed for this device, re-addressed to the other one.
        other_raw = RawLink(other)
        moved = dataclasses.replace(sealed(m.UpdateGet(1, 0, 8), 805), device_id=other.device_id)
        assert _exchange_nacks(other_raw, moved) == [(805, NackCode.AUTH_TAG)]
        # Reordered: the later counter arrives first, then the earlier one is refused.
        first, second = sealed(m.UpdateGet(1, 0, 8), 806), sealed(m.UpdateGet(1, 0, 8), 807)
        assert [f.flags & fr.FLAG_AUTH for f in raw.exchange(fr.encode_frame(second))] == [
            fr.FLAG_AUTH
        ]  # an authenticated NACK NO_DATA: accepted
        assert _exchange_nacks(raw, first) == [(806, NackCode.AUTH_REPLAY)]
        # Replayed: the same authentic frame again.
        assert _exchange_nacks(raw, second) == [(807, NackCode.AUTH_REPLAY)]
        # Nothing of it was accepted: no training, no head, counters say why.
        after_info = client.hello()
        assert (after_info.releases, after_info.last_round) == (
            before_info.releases,
            before_info.last_round,
        )
        assert after_info.head_sha256 == before_info.head_sha256
        counts = client.enroll_info()
        assert (
            counts.rejected_required,
            counts.rejected_tag,
            counts.rejected_key,
            counts.rejected_replay,
        ) == (1, 4, 1, 2)
        assert other.enroll_info().rejected_tag == 1
        # The genuine request still works afterwards.
        client.train(train)
        assert client.fetch_update(7, timeout=30).ready.round == 7
    finally:
        for c in clients:
            c.close()


def test_production_board_takes_training_only_from_its_enrolled_server(
    production_firmware: Path, tmp_path: Path, replay: ReplayData
) -> None:
    device = _start(production_firmware, 0x4501, tmp_path)
    train = m.Train(round=1, lr=0.05, clip=1.0, scale=1e-3, bits=16)
    try:
        with _client(device) as client:
            info = client.enroll_info()
            assert not info.flags & m.ENROLL_INFO_REPLAY_PROFILE
            with pytest.raises(NackError) as unenrolled:
                client.request(train, expect=MsgType.ACK, retries=0)
            assert unenrolled.value.code == NackCode.NOT_ENROLLED
            w, b = perturbed_head(replay, 3)
            with pytest.raises(NackError) as model:
                client.install_head(w, b, version=2)
            assert model.value.code == NackCode.NOT_ENROLLED
            client.enroll(crypto.x25519_public(SERVER_A))
            raw = RawLink(client)
            info = client.enroll_info()
            intruder = LinkSession.derive(
                SERVER_B, info.device_public, client.device_id, info.session_nonce, info.key_id
            )
            fake = intruder.seal(fr.Frame(MsgType.TRAIN, train.pack(), client.device_id, 33))
            assert _exchange_nacks(raw, fake) == [(33, NackCode.AUTH_TAG)]
            client.start_session(SERVER_A)
            client.install_head(w, b, version=2)  # the enrolled server: accepted
            assert client.hello().head_version == 2
    finally:
        assert_clean_exit(device)


def test_random_payloads_of_the_new_types_are_refused_without_harm(
    host_device: VirtualDevice,
) -> None:
    """Enrollment and SecAgg requests with random lengths and bytes, plain (not enrolled: the
    replay profile runs the handlers) and sealed (enrolled): every one is answered, the device
    stays up (ASan/UBSan clean at teardown) and still works."""
    rng = np.random.default_rng(13)
    types = [MsgType.ENROLL_GET, MsgType.ENROLL_SET, *range(0x73, 0x7C)]
    with _client(host_device) as client:
        raw = RawLink(client)

        def blast(seal: LinkSession | None, seq0: int) -> None:
            for i in range(150):
                msg_type = int(rng.choice(types))
                length = int(
                    rng.choice([0, 1, 7, 8, 11, 12, 36, 68, 200, int(rng.integers(0, 2048))])
                )
                frame = fr.Frame(msg_type, rng.bytes(length), client.device_id, seq0 + i)
                if seal is not None:
                    frame = seal.seal(frame)
                answers = raw.exchange(fr.encode_frame(frame), quiet=0.05)
                assert any(f.seq == seq0 + i for f in answers), (msg_type, length)

        blast(None, 1000)
        client.enroll(crypto.x25519_public(SERVER_A))
        session = client.start_session(SERVER_A)
        blast(session, 2000)
        assert client.enroll_info().server_public == crypto.x25519_public(SERVER_A)
        assert client.hello().proto_version == fr.PROTOCOL_VERSION
