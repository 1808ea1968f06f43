"""The gateway bridge on a host virtual board: it answers INFO, refuses hostile requests with a
clear error and keeps serving, and its socket is private to the gateway's user."""

from __future__ import annotations

import json
import socket
import stat
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.support.firmware import build_host_firmware
from tools.fleet.launch import host_fleet
from tools.flower.bridge import MAX_REQUEST, Bridge, BridgeError, b64, request, unb64
from tools.link import messages as m
from tools.link.frame import Frame, decode_frame, encode_frame
from tools.link.messages import MsgType


@pytest.fixture
def bridge(tmp_path: Path):
    with host_fleet(build_host_firmware("replay"), 1, first_id=7) as devices:
        served = Bridge(devices[0].url, tmp_path / "board.sock").start()
        try:
            yield served
        finally:
            served.stop()


def _raw(path: Path, payload: bytes) -> dict:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(payload)
        (length,) = struct.unpack(">I", sock.recv(4))
        data = b""
        while len(data) < length:
            data += sock.recv(length - len(data))
    return json.loads(data)


def test_info_names_the_board(bridge: Bridge) -> None:
    reply = request(bridge.socket_path, {"op": "info"}, timeout=10)
    assert reply["device_id"] == 7
    assert m.Info.unpack(unb64(reply["info"])).board_name
    assert stat.S_IMODE(bridge.socket_path.stat().st_mode) == 0o600


def test_hostile_requests_get_errors_and_the_bridge_keeps_serving(bridge: Bridge) -> None:
    with pytest.raises(BridgeError, match="unknown op"):
        request(bridge.socket_path, {"op": "format_flash"}, timeout=10)
    not_json = b"\x00\x00\x00\x05hello"
    assert "bad request" in _raw(bridge.socket_path, not_json)["error"]
    huge = struct.pack(">I", MAX_REQUEST + 1)
    assert "exceeds" in _raw(bridge.socket_path, huge)["error"]
    head = np.zeros(10, dtype="<f4").tobytes()  # not rows×cols+cols floats
    train = m.Train(round=1).pack()
    bad_round = {
        "op": "round",
        "head": b64(head),
        "rows": 4,
        "cols": 3,
        "head_version": 0,
        "train": b64(train),
        "deadline_s": 5,
    }
    with pytest.raises(BridgeError, match="head of 10 floats"):
        request(bridge.socket_path, bad_round, timeout=10)
    assert request(bridge.socket_path, {"op": "info"}, timeout=10)["device_id"] == 7


def test_relay_returns_the_device_frames_unopened_and_refuses_garbage(bridge: Bridge) -> None:
    hello = encode_frame(Frame(MsgType.HELLO, b"", 7, 41))
    stats = encode_frame(Frame(MsgType.STATS_GET, b"", 7, 42))
    reply = request(
        bridge.socket_path,
        {"op": "relay", "frames": [b64(hello), b64(stats)], "reply_timeout_s": 5},
        timeout=10,
    )
    frames = [decode_frame(unb64(text)) for text in reply["frames"]]
    assert [(f.type, f.seq) for f in frames] == [(MsgType.INFO, 41), (MsgType.STATS, 42)]
    assert reply["device_id"] == 7
    with pytest.raises(BridgeError, match="does not decode"):
        request(bridge.socket_path, {"op": "relay", "frames": [b64(b"\x01\x02\x00")]}, timeout=10)
    assert request(bridge.socket_path, {"op": "info"}, timeout=10)["device_id"] == 7
