"""The ServerApp's end of an enrolled board's authenticated link, carried through a gateway.

A production board takes TRAIN, MODEL_* and UPDATE_GET only sealed by its enrolled server and
seals its UPDATE_READY / UPDATE_CHUNK for that server (PROTOCOL.md §6). Behind a Flower gateway
the link therefore ends in the ServerApp, which holds the server key (the store's
`server_identity`) and the device keys recorded at enrollment (`device_keys`): it builds every
request frame here, with the same `request_frame` / `authenticate_frame` / LinkSession code as a
serial DeviceClient, and sends the frame bytes in Flower messages (`query.relay`). The gateway's
bridge writes them to the serial port and returns the device's frames unopened (bridge op
`relay`); only this side opens and checks them. The gateway holds no key and sees no update in
the clear: UPDATE_CHUNK payloads are ChaCha20-Poly1305 cipher text under keys derived from the
device↔server X25519 secret.

A round is three relays per board, each one Flower message (a ClientApp start costs about a
second, so requests are batched: the device answers in order):

1. `HELLO`, `ENROLL_GET` (plain): INFO (admission, head hash) and this boot's session nonce and
   counters. The session uses the device key from the store, never the one the relay reports.
2. the head if its hash differs (MODEL_BEGIN, MODEL_CHUNKs, MODEL_COMMIT) and TRAIN, sealed; the
   bridge then waits for the device's UPDATE_READY until the round deadline.
3. UPDATE_GET for every chunk, sealed; the chunks are opened, joined and CRC-checked here.

In a SecAgg round (`--secagg`) step 3 is replaced by the SecAgg steps of tools/secagg/server.py,
one relay each (server_app.RelayedExchange): every SECAGG_* request is sealed here and every
answer (keys, encrypted shares, masked input, revealed shares) sealed by the device.

A frame lost on the serial line must not make the board a dropout. The bridge cannot seal a
retry (no key, and a sealed frame replayed is refused), so every request goes with
RELAY_RESENDS spares sealed here with their own seq and counter, sent only if the device does
not answer; the device takes them as DeviceClient's retries (the same update for a TRAIN of
the same round, the same keys/shares/masked input for a repeated SecAgg step).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tools.aggregator.core import device_train
from tools.link import messages as m
from tools.link.auth import LinkSession
from tools.link.client import (
    CHUNK_BYTES,
    FetchedUpdate,
    LinkCounters,
    authenticate_frame,
    head_blob,
    head_bound_error,
    head_sha256,
    request_frame,
    session_from_enroll_info,
)
from tools.link.errors import LinkError, LinkTimeoutError, NackError, ProtocolError
from tools.link.frame import FLAG_REPLY, Frame, FrameError, crc32, decode_frame, encode_frame
from tools.link.messages import MsgType
from tools.secagg.server import Ask

RELAY_ACTION = "relay"  # message_type "query.relay" (tools/flower/client_app.py)
POLL_EVERY_S = 1.0  # as DeviceClient.wait_update_ready: the unsolicited UPDATE_READY may be lost
# Spare copies of every request, each sealed with its own seq and counter (the bridge cannot
# seal): sent when the device's answer does not come, as DeviceClient.request retries. The
# device takes a retried request as it takes DeviceClient's (PROTOCOL.md: retries).
RELAY_RESENDS = 2


@dataclass
class Batch:
    """Request frames for one relay, and what the bridge should wait for after them."""

    frames: list[bytes]
    # (seqs: the first try's, then each spare's; request type; expected reply type)
    requests: list[tuple[tuple[int, ...], MsgType, MsgType]]
    until_type: int = -1
    wait_s: float = 0.0
    polls: list[bytes] = field(default_factory=list)  # sent one per POLL_EVERY_S while waiting
    spares: list[bytes] = field(default_factory=list)  # `resends` per frame, in frame order
    resends: int = 0


@dataclass
class RelayedLink:
    """One enrolled board's link as the ServerApp drives it (one per board, kept across
    rounds for its sequence numbers; the session is renewed from ENROLL_INFO every round)."""

    device_id: int
    device_public: bytes  # recorded at enrollment (store table device_keys)
    server_secret: bytes
    session: LinkSession | None = None
    counters: LinkCounters = field(default_factory=LinkCounters)
    _seq: int = 0

    def batch(
        self,
        messages: list[tuple[m.Message, MsgType]],
        until_type: int = -1,
        wait_s: float = 0.0,
        resends: int = RELAY_RESENDS,
    ) -> Batch:
        """Frames for `messages` (each with the reply type it expects), sealed where the link
        requires it, with consecutive sequence numbers and counters; each followed by
        `resends` spares (fresh seq and counter) that the bridge sends only if the device does
        not answer: the counters of unused spares are simply skipped (the device accepts
        gaps), and each spare's counter is below the next request's."""
        frames, requests, spares = [], [], []
        for message, expect in messages:
            seqs = []
            for attempt in range(1 + resends):
                self._seq = self._seq % 0xFFFF + 1
                frame = request_frame(message, self.device_id, self._seq, self.session)
                (spares if attempt else frames).append(encode_frame(frame))
                seqs.append(self._seq)
            requests.append((tuple(seqs), message.TYPE, expect))
        return Batch(frames, requests, until_type, wait_s, spares=spares, resends=resends)

    def open(self, wires: list[bytes]) -> list[Frame]:
        """The relayed device frames that decode and authenticate, opened, in arrival order."""
        opened = []
        for wire in wires:
            try:
                frame = decode_frame(wire)
            except FrameError:
                continue
            plain = authenticate_frame(frame, self.session, self.counters)
            if plain is not None:
                opened.append(plain)
        return opened

    def replies(self, batch: Batch, frames: list[Frame]) -> list[Frame]:
        """The reply to every request of `batch`; NackError / ProtocolError / LinkTimeoutError
        as a DeviceClient raises them."""
        by_seq = {f.seq: f for f in frames if f.flags & FLAG_REPLY}
        out = []
        for seqs, request, expect in batch.requests:
            answers = [by_seq[seq] for seq in seqs if seq in by_seq]  # a retry's too
            accepted = [f for f in answers if f.type != MsgType.NACK]
            # a late answer to the first try, then a NACK of the retry (e.g. a MODEL_COMMIT
            # that had already committed): the request was done
            frame = (accepted or answers)[-1] if answers else None
            if frame is None:
                raise LinkTimeoutError(f"device {self.device_id:#x}: no answer to {request.name}")
            if frame.type == MsgType.NACK:
                nack = m.Nack.unpack(frame.payload)
                raise NackError(request.name, nack.code, nack.code_name, nack.detail)
            if frame.type != expect:
                raise ProtocolError(f"{request.name} answered with type {frame.type:#x}")
            out.append(frame)
        return out

    # ---- the three steps of a round (see the module docstring) -------------------------------

    def hello_batch(self) -> Batch:
        self.session = None  # HELLO and ENROLL_GET are plain; the answers renew the session
        return self.batch([(m.Hello(), MsgType.INFO), (m.EnrollGet(), MsgType.ENROLL_INFO)])

    def start(self, batch: Batch, wires: list[bytes]) -> m.Info:
        """INFO, and this boot's session from ENROLL_INFO with the enrolled device key."""
        info_frame, enroll_frame = self.replies(batch, self.open(wires))
        enroll = m.EnrollInfo.unpack(enroll_frame.payload)
        self.session = session_from_enroll_info(
            self.server_secret, self.device_id, enroll, device_public=self.device_public
        )
        return m.Info.unpack(info_frame.payload)

    def train_batch(
        self,
        info: m.Info,
        w: np.ndarray,
        b: np.ndarray,
        version: int,
        params: m.Train,
        wait_s: float,
    ) -> Batch:
        """The head (if the device's hash differs) and TRAIN; then wait for UPDATE_READY."""
        messages: list[tuple[m.Message, MsgType]] = []
        if info.head_sha256 != head_sha256(w, b):
            problem = head_bound_error(w, b)
            if problem is not None:
                raise ValueError(f"the device would refuse this head (NACK HEAD_NORM): {problem}")
            blob = head_blob(w, b)
            d, c = np.shape(w)
            digest = hashlib.sha256(blob).digest()
            messages.append((m.ModelBegin(version, len(blob), d, c, digest), MsgType.ACK))
            for offset in range(0, len(blob), CHUNK_BYTES):
                chunk = blob[offset : offset + CHUNK_BYTES]
                messages.append((m.ModelChunk(version, offset, chunk), MsgType.ACK))
            messages.append((m.ModelCommit(version), MsgType.ACK))
        messages.append((device_train(params, self.device_id), MsgType.ACK))
        batch = self.batch(messages, until_type=MsgType.UPDATE_READY, wait_s=wait_s)
        # Sealed now, sent by the bridge only while it waits (the device accepts counter gaps).
        poll = m.UpdateGet(params.round, m.UPDATE_GET_READY_OFFSET, 0)
        polls = [(poll, MsgType.UPDATE_READY)] * int(wait_s / POLL_EVERY_S)
        batch.polls = self.batch(polls, resends=0).frames  # a lost poll: the next one follows
        return batch

    def ready(self, batch: Batch, wires: list[bytes], round_id: int) -> m.UpdateReady:
        frames = self.open(wires)
        self.replies(batch, frames)
        for frame in reversed(frames):
            if frame.type == MsgType.UPDATE_READY:
                ready = m.UpdateReady.unpack(frame.payload)
                if ready.round == round_id:
                    return ready
        raise LinkTimeoutError(f"device {self.device_id:#x}: no UPDATE_READY for {round_id}")

    def fetch_batch(self, ready: m.UpdateReady) -> Batch:
        gets = [
            (m.UpdateGet(ready.round, offset, min(CHUNK_BYTES, ready.total_len - offset)),
             MsgType.UPDATE_CHUNK)
            for offset in range(0, ready.total_len, CHUNK_BYTES)
        ]  # fmt: skip
        return self.batch(gets)  # type: ignore[arg-type]

    def update(self, batch: Batch, wires: list[bytes], ready: m.UpdateReady) -> FetchedUpdate:
        data = bytearray()
        for frame in self.replies(batch, self.open(wires)):
            chunk = m.UpdateChunk.unpack(frame.payload)
            if chunk.round != ready.round or chunk.offset != len(data) or not chunk.data:
                raise ProtocolError(
                    f"UPDATE_CHUNK round {chunk.round} offset {chunk.offset}, asked round "
                    f"{ready.round} offset {len(data)}"
                )
            data += chunk.data[: ready.total_len - len(data)]
        if crc32(bytes(data)) != ready.crc32:
            raise ProtocolError(f"device {self.device_id:#x}: update CRC-32 mismatch")
        return FetchedUpdate(ready, bytes(data), self.device_id)


def relay_record(batch: Batch, reply_timeout_s: float) -> dict[str, Any]:
    """The `query.relay` message's record for `batch` (client_app.bridge_relay_request turns it
    into the bridge's request)."""
    return {
        "frames": batch.frames,
        "reply_timeout_s": float(reply_timeout_s),
        "until_type": int(batch.until_type),
        "deadline_s": float(batch.wait_s),
        "polls": batch.polls,
        "poll_every_s": POLL_EVERY_S,
        "spares": batch.spares,
        "resends": batch.resends,
    }


Relay = Callable[[dict[int, Batch]], dict[int, list[bytes] | str]]


@dataclass
class RelayedExchange:
    """The SecAgg steps of tools/secagg/server.py over relayed links (an Exchange): each step is
    one relay per board, all boards at once (`relay`: the ServerApp's Flower fan-out); every
    SECAGG_* request is sealed here with the board's session of this round and every answer
    opened here, so a gateway carries only cipher text (keys, shares, masked inputs alike)."""

    links: dict[int, RelayedLink]
    relay: Relay  # device id → batch  ⟶  device id → its frames, or why none came
    on_dropout: Callable[[int, str], None] | None = None

    def ask(self, asks: Mapping[int, Sequence[Ask]]) -> dict[int, list[bytes]]:
        batches = {d: self.links[d].batch(list(requests)) for d, requests in asks.items()}
        answers: dict[int, list[bytes]] = {}
        for device_id, got in self.relay(batches).items():
            link = self.links[device_id]
            try:
                if isinstance(got, str):
                    raise LinkError(got)
                frames = link.replies(batches[device_id], link.open(got))
            except LinkError as exc:  # dropped out of the SecAgg round
                if self.on_dropout is not None:
                    self.on_dropout(device_id, f"{type(exc).__name__}: {exc}")
                continue
            answers[device_id] = [frame.payload for frame in frames]
        return answers
