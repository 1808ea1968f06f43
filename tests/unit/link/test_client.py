"""DeviceClient over a real pty and pyserial, against the Python protocol peer."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import numpy as np
import pytest

from tests.unit.link.peer import PyPeer, peer_delta_q
from tools.link import messages as m
from tools.link.client import DeviceClient, head_blob
from tools.link.errors import LinkTimeoutError, NackError, PortGoneError


def test_hello_learns_device_and_shows_boot_text(peer: PyPeer) -> None:
    unframed: list[bytes] = []
    infos: list[m.Info] = []
    with DeviceClient.open(
        peer.path, on_unframed=unframed.append, on_info=lambda info, dev: infos.append(info)
    ) as client:
        peer.boot()
        info = client.hello()
        assert (info.embed_dim, info.num_classes, info.board_name) == (4, 3, "pypeer")
        assert client.device_id == peer.device_id
        assert infos and infos[0].board_name == "pypeer"  # the unsolicited boot INFO
        assert b"".join(unframed) == peer.boot_text


def test_install_head_chunks_and_commits(peer: PyPeer) -> None:
    peer_big = PyPeer(embed_dim=64, num_classes=10).start()  # 2600 B: two chunks
    try:
        w = np.arange(640, dtype=np.float32).reshape(64, 10) / 700  # within HEAD_MAX_ABS
        b = np.ones(10, dtype=np.float32)
        with DeviceClient.open(peer_big.path) as client:
            client.install_head(w, b, version=3)
            info = client.hello()
        assert info.head_sha256 == hashlib.sha256(head_blob(w, b)).digest()
        assert info.head_version == 3
        chunks = [f for f in peer_big.received if f.type == m.MsgType.MODEL_CHUNK]
        assert len(chunks) == 2
    finally:
        peer_big.stop()


def test_nack_raises_with_code_name(peer: PyPeer) -> None:
    with DeviceClient.open(peer.path) as client, pytest.raises(NackError) as err:
        client.install_head(np.zeros((5, 3)), np.zeros(3), version=1)  # D=5, device has 4
    assert err.value.code_name == "SHAPE"
    assert "MODEL_BEGIN" in str(err.value)


def test_train_and_fetch_update(peer: PyPeer) -> None:
    logs: list[str] = []
    with DeviceClient.open(
        peer.path, on_log=lambda log, dev: logs.append(log.text.decode())
    ) as client:
        peer.log("training")
        client.train(m.Train(round=5, bits=16, scale=0.001))
        update = client.fetch_update(5, timeout=5)
        stats = client.stats()
    expected = peer_delta_q(peer.device_id, 5, peer.n_params, 16, 1.0, 0.001)
    assert np.array_equal(update.q, expected)
    assert np.allclose(update.delta, expected * np.float32(0.001))
    assert logs == ["training"]
    assert stats.frames_ok > 0


def test_sample_and_infer(peer: PyPeer) -> None:
    with DeviceClient.open(peer.path) as client:
        stored = client.sample(np.arange(16, dtype=np.int8), label=2)
        plain = client.infer(bytes(16))
    assert stored.stored == 1 and plain.stored == 0
    assert len(plain.logits) == 3


def test_silent_port_times_out() -> None:
    master, slave = os.openpty()
    try:
        with (
            DeviceClient.open(os.ttyname(slave), timeout=0.2, retries=1) as client,
            pytest.raises(LinkTimeoutError, match="2 attempts"),
        ):
            client.hello()
    finally:
        os.close(master)
        os.close(slave)


def test_vanished_socket_raises_port_gone() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def accept_and_close() -> None:
        conn, _ = server.accept()
        conn.close()

    thread = threading.Thread(target=accept_and_close)
    thread.start()
    try:
        with DeviceClient.open(f"socket://127.0.0.1:{port}", timeout=0.5) as client:
            thread.join()
            with pytest.raises(PortGoneError):
                for _ in range(3):  # the first write may still be buffered by the kernel
                    client.hello()
    finally:
        server.close()


def test_unopenable_port_says_what_to_check() -> None:
    with pytest.raises(PortGoneError, match="Check the path"):
        DeviceClient.open("/dev/does-not-exist-fedhead", open_timeout=0.2)
