"""Each injected fault kind, and the client still completing requests through them."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.link.peer import PyPeer, peer_delta_q
from tools.link import messages as m
from tools.link.client import DeviceClient
from tools.link.errors import PortGoneError
from tools.link.faults import FaultPlan, FaultyTransport
from tools.link.frame import Frame, StreamDecoder, encode_frame
from tools.link.transport import Transport, open_transport


class _Recorder(Transport):
    """In-memory sink used only to observe what the wrapper writes (no device involved)."""

    url = "recorder"

    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def read(self, timeout: float) -> bytes:
        return b""

    def close(self) -> None:
        pass


def _written_frames(plan: FaultPlan, n: int = 200, seed: int = 1) -> tuple[list[Frame], object]:
    sink = _Recorder()
    faulty = FaultyTransport(sink, plan, seed=seed)
    for i in range(n):
        faulty.write(encode_frame(Frame(3, bytes([i % 256]) * 20, 1, i + 1)))
    decoder = StreamDecoder()
    return decoder.feed(bytes(sink.written)), (faulty, decoder)


@pytest.mark.parametrize(
    ("plan", "kind"),
    [
        (FaultPlan(drop=0.2), "drop"),
        (FaultPlan(corrupt=0.2), "corrupt"),
        (FaultPlan(duplicate=0.2), "duplicate"),
        (FaultPlan(truncate=0.2), "truncate"),
        (FaultPlan(delay=0.2, delay_s=0.001), "delay"),
    ],
)
def test_each_fault_kind_changes_exactly_what_it_says(plan: FaultPlan, kind: str) -> None:
    frames, (faulty, decoder) = _written_frames(plan)
    injected = faulty.counts[("tx", kind)]
    assert injected > 10
    if kind in ("drop", "corrupt", "truncate"):
        assert len(frames) == 200 - injected
        assert decoder.stats.bad_crc + decoder.stats.bad_cobs == (0 if kind == "drop" else injected)
    elif kind == "duplicate":
        assert len(frames) == 200 + injected
    else:
        assert len(frames) == 200


def test_faults_replay_with_the_same_seed() -> None:
    plan = FaultPlan(drop=0.1, corrupt=0.1, duplicate=0.1)
    first, _ = _written_frames(plan, seed=5)
    second, _ = _written_frames(plan, seed=5)
    assert first == second


def test_disconnect_raises_port_gone_and_stays_gone() -> None:
    faulty = FaultyTransport(_Recorder(), FaultPlan(disconnect_after_frames=3))
    for i in range(3):
        faulty.write(encode_frame(Frame(1, b"", seq=i + 1)))
    with pytest.raises(PortGoneError):
        faulty.write(encode_frame(Frame(1, b"")))
    with pytest.raises(PortGoneError):
        faulty.read(0.01)


def test_client_survives_drops_corruption_duplicates_truncation(peer: PyPeer) -> None:
    plan = FaultPlan(drop=0.1, corrupt=0.1, duplicate=0.1, truncate=0.05, delay=0.05, delay_s=0.01)
    faulty = FaultyTransport(open_transport(peer.path), plan, seed=3)
    client = DeviceClient(faulty, timeout=0.3, retries=20)
    try:
        for round_id in range(1, 9):
            client.train(m.Train(round=round_id, bits=8, scale=0.01))
            update = client.fetch_update(round_id, timeout=10)
            assert np.array_equal(
                update.q, peer_delta_q(peer.device_id, round_id, 15, 8, 1.0, 0.01)
            )
        client.install_head(np.ones((4, 3)), np.zeros(3), version=2)
        assert client.hello().head_version == 2
    finally:
        client.close()
    assert sum(faulty.counts.values()) > 5
    assert client.counters.retries > 0
