"""Fault-injecting transport wrapper for tests: drop, corrupt, delay, duplicate, truncate,
disconnect — per frame, in both directions, from a seeded generator so a failure replays.

Faults apply to whole frames: written bytes are split at the 0x00 delimiter, and received bytes
are collected up to each delimiter before a fault is drawn. Bytes between frames pass unchanged.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass

from tools.link.errors import PortGoneError
from tools.link.transport import Transport


@dataclass(frozen=True)
class FaultPlan:
    """Probability of each fault per frame, and when to disconnect for good."""

    drop: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    delay_s: float = 0.05
    duplicate: float = 0.0
    truncate: float = 0.0
    disconnect_after_frames: int | None = None  # None: never
    lose: tuple[tuple[str, int], ...] = ()  # exactly these frames: (direction, n-th frame in it)
    directions: tuple[str, ...] = ("tx", "rx")  # "tx": host → device, "rx": device → host


class FaultyTransport(Transport):
    """Wraps a transport; `counts` records every injected fault as (direction, kind)."""

    def __init__(self, inner: Transport, plan: FaultPlan, seed: int = 0) -> None:
        self.inner = inner
        self.url = f"faulty+{inner.url}"
        self.plan = plan
        self.rng = random.Random(seed)
        self.counts: Counter[tuple[str, str]] = Counter()
        self._rx_partial = bytearray()
        self._frames_seen = 0
        self._seen_by_direction: Counter[str] = Counter()
        self._gone = False

    def write(self, data: bytes) -> None:
        self._check_connected()
        out = bytearray()
        for frame in _split_frames(data):
            out += self._apply("tx", frame)
        if out:
            self.inner.write(bytes(out))

    def read(self, timeout: float) -> bytes:
        self._check_connected()
        data = self.inner.read(timeout)
        self._rx_partial += data
        out = bytearray()
        while True:
            end = self._rx_partial.find(b"\x00")
            if end < 0:
                break
            frame = bytes(self._rx_partial[: end + 1])
            del self._rx_partial[: end + 1]
            out += self._apply("rx", frame)
        return bytes(out)

    def close(self) -> None:
        self.inner.close()

    def _check_connected(self) -> None:
        if self._gone:
            raise PortGoneError(f"{self.url}: disconnected by fault injection")

    def _apply(self, direction: str, frame: bytes) -> bytes:
        if not frame.endswith(b"\x00") or direction not in self.plan.directions:
            return frame
        self._frames_seen += 1
        self._seen_by_direction[direction] += 1
        if (direction, self._seen_by_direction[direction]) in self.plan.lose:
            self.counts[(direction, "lose")] += 1
            return b""
        limit = self.plan.disconnect_after_frames
        if limit is not None and self._frames_seen > limit:
            self.counts[(direction, "disconnect")] += 1
            self._gone = True
            self.inner.close()
            raise PortGoneError(f"{self.url}: disconnected by fault injection")
        return self._mutate(direction, frame)

    def _mutate(self, direction: str, frame: bytes) -> bytes:
        plan, rng = self.plan, self.rng
        if rng.random() < plan.drop:
            self.counts[(direction, "drop")] += 1
            return b""
        if rng.random() < plan.corrupt and len(frame) > 1:
            self.counts[(direction, "corrupt")] += 1
            index = rng.randrange(len(frame) - 1)  # keep the delimiter: corruption, not merging
            flipped = frame[index] ^ (1 << rng.randrange(8))
            frame = frame[:index] + bytes([flipped or 0xFF]) + frame[index + 1 :]
        if rng.random() < plan.truncate and len(frame) > 2:
            self.counts[(direction, "truncate")] += 1
            frame = frame[: rng.randrange(1, len(frame) - 1)] + b"\x00"
        if rng.random() < plan.delay:
            self.counts[(direction, "delay")] += 1
            time.sleep(plan.delay_s)
        if rng.random() < plan.duplicate:
            self.counts[(direction, "duplicate")] += 1
            frame = frame + frame
        return frame


def _split_frames(data: bytes) -> list[bytes]:
    """Split at each 0x00, keeping it; a trailing piece without delimiter is kept as is."""
    pieces = data.split(b"\x00")
    frames = [piece + b"\x00" for piece in pieces[:-1]]
    if pieces[-1]:
        frames.append(pieces[-1])
    return frames
