"""The long-lived owner of one board's serial port on a gateway.

Flower starts a fresh `flwr-clientapp` subprocess for every message, so no ClientApp can hold
a serial port (or a DeviceClient's sequence numbers and pending UPDATE_READYs) across
messages. A `Bridge` does: it opens the port once, serves requests one at a time on a Unix
socket (mode 0600, reachable only by the gateway's own user) and runs the device side of a
round with the aggregator's own `device_round` (plain link, boards not enrolled with the
ServerApp) or relays frames the ServerApp built (op `relay`: enrolled boards, whose link is
authenticated end to end between the device and the ServerApp). The ClientApp is a thin
forwarder (tools/flower/client_app.py) that finds the socket in its node config
(`bridge=PATH`).

Wire format on the socket: one request per connection, a 4-byte big-endian length followed
by a JSON object; the reply is framed the same way. Bytes travel as base64. The bridge never
decodes an update: it returns the device's bytes unchanged (noised and quantized by the device;
for an enrolled board also encrypted and authenticated for the ServerApp, so the relay holds
no key and sees no update in the clear).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools.aggregator.core import device_round
from tools.link import messages as m
from tools.link.client import DAMAGE_GRACE, RESEND_CODES, DeviceClient
from tools.link.errors import LinkError
from tools.link.faults import FaultPlan, FaultyTransport
from tools.link.frame import (
    BROADCAST_DEVICE,
    FLAG_AUTH,
    FLAG_REPLY,
    Frame,
    FrameError,
    StreamDecoder,
    decode_frame,
    encode_frame,
)
from tools.link.messages import MsgType
from tools.link.transport import open_transport

_LENGTH = struct.Struct(">I")
MAX_REQUEST = 1 << 20  # a head of 64×64 floats is 16 KiB; anything near 1 MiB is hostile
MAX_RELAY_FRAMES = 256  # a head of 64×64 floats is 9 MODEL_CHUNKs; a batch is far smaller
MAX_RELAY_WAIT_S = 600.0


MAX_RESENDS = 5


def _damaged(frame: Frame) -> bool:
    """A plain NACK saying the device could not read a frame (BAD_CRC / BAD_FRAME, ack_seq 0)."""
    if frame.type != MsgType.NACK or frame.flags & FLAG_AUTH:
        return False
    try:
        nack = m.Nack.unpack(frame.payload)
    except m.MessageError:
        return False
    return nack.ack_seq == 0 and nack.code in RESEND_CODES


class BridgeError(RuntimeError):
    """The bridge could not be reached or answered with an error."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _send(sock: socket.socket, obj: dict[str, Any]) -> None:
    body = json.dumps(obj).encode()
    sock.sendall(_LENGTH.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise BridgeError("connection closed mid-message")
        data += chunk
    return bytes(data)


def _recv(sock: socket.socket) -> dict[str, Any]:
    (length,) = _LENGTH.unpack(_recv_exact(sock, _LENGTH.size))
    if length > MAX_REQUEST:
        raise BridgeError(f"message of {length} B exceeds {MAX_REQUEST} B")
    value = json.loads(_recv_exact(sock, length))
    if not isinstance(value, dict):
        raise BridgeError("expected a JSON object")
    return value


def request(path: str | Path, obj: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one request to the bridge at `path`; raises BridgeError with what to do next."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            _send(sock, obj)
            reply = _recv(sock)
    except (OSError, ValueError) as exc:
        raise BridgeError(
            f"bridge {path} unreachable ({exc}); is `invoke gateway` running for this board?"
        ) from exc
    if "error" in reply and reply.get("op") == "failed":
        raise BridgeError(f"bridge {path}: {reply['error']}")
    return reply


def info_reply(info: m.Info, device_id: int, url: str) -> dict[str, Any]:
    return {"op": "info", "device_id": device_id, "url": url, "info": b64(info.pack())}


@dataclass
class Bridge:
    """Owns `url` (a pyserial URL) and serves the Unix socket at `socket_path`."""

    url: str
    socket_path: Path
    link_timeout: float = 2.0
    link_retries: int = 5
    on_request: Callable[[str, dict[str, Any]], None] | None = None  # (op, summary): a UI's log
    tap: Path | None = None  # append every relayed frame here (an audit of what the gateway saw)
    faults: FaultPlan | None = None  # tests: the serial line loses/damages frames (tools/link)
    _client: DeviceClient | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _decoder: StreamDecoder = field(default_factory=StreamDecoder)  # relayed device frames
    _pending: list[Frame] = field(default_factory=list)  # decoded, not handed out yet

    # ---- serving ----------------------------------------------------------------------------

    def start(self) -> Bridge:
        """Bind the socket (0600) and serve in a background thread."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            server.bind(str(self.socket_path))
        finally:
            os.umask(old_umask)
        server.listen(4)
        server.settimeout(0.2)
        self._server = server
        self._thread = threading.Thread(target=self._serve, name=f"bridge {self.url}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._server is not None:
            self._server.close()
        self.socket_path.unlink(missing_ok=True)
        with self._lock:
            self._close_client()

    def _serve(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(None)
                try:
                    reply = self.handle(_recv(conn))
                except (BridgeError, ValueError, KeyError) as exc:
                    reply = {"op": "failed", "error": f"bad request: {exc}"}
                # the ClientApp may have gone (its SuperNode was stopped): nothing to keep
                with contextlib.suppress(OSError):
                    _send(conn, reply)

    # ---- requests ---------------------------------------------------------------------------

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        """One request, serialized with every other on this board."""
        with self._lock:
            if req.get("op") == "info":
                return self._info()
            if req.get("op") == "round":
                return self._round(req)
            if req.get("op") == "relay":
                return self._relay(req)
            return {"op": "failed", "error": f"unknown op {req.get('op')!r}"}

    def _device(self) -> DeviceClient:
        if self._client is None:
            transport = open_transport(self.url)
            if self.faults is not None:
                transport = FaultyTransport(transport, self.faults)
            self._client = DeviceClient(
                transport, timeout=self.link_timeout, retries=self.link_retries
            )
        return self._client

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._pending.clear()
        self._decoder = StreamDecoder()

    def _info(self) -> dict[str, Any]:
        try:
            client = self._device()
            info = client.hello()
        except (LinkError, OSError) as exc:
            self._close_client()  # reopened on the next request (a board plugged back in)
            return {"op": "failed", "error": f"{type(exc).__name__}: {exc}"}
        return info_reply(info, client.device_id, self.url)

    def _round(self, req: dict[str, Any]) -> dict[str, Any]:
        rows, cols = int(req["rows"]), int(req["cols"])
        blob = np.frombuffer(unb64(req["head"]), dtype="<f4")
        if blob.size != rows * cols + cols:
            raise BridgeError(f"head of {blob.size} floats, expected {rows}×{cols}+{cols}")
        w, b = blob[: rows * cols].reshape(rows, cols), blob[rows * cols :]
        params = m.Train.unpack(unb64(req["train"]))
        if self.on_request is not None:
            self.on_request("round", {"round": params.round, "head_version": req["head_version"]})
        deadline = time.monotonic() + float(req["deadline_s"])
        try:
            client = self._device()
        except (LinkError, OSError) as exc:
            return {"op": "round", "error": f"port_gone: {exc}", "late": False}
        result = device_round(client, w, b, int(req["head_version"]), params, deadline)
        if result.error.startswith("port_gone"):
            self._close_client()
        reply: dict[str, Any] = {
            "op": "round",
            "device_id": client.device_id,
            "url": self.url,
            "error": result.error,
            "late": result.late,
            "head_pushed": result.head_pushed,
        }
        if result.info is not None:
            reply["info"] = b64(result.info.pack())
        if result.update is not None:
            reply["ready"] = b64(result.update.ready.pack())
            reply["data"] = b64(result.update.data)
        return reply

    def _relay(self, req: dict[str, Any]) -> dict[str, Any]:
        """Write the ServerApp's frames in order, each once its predecessor was answered (a
        reply frame with its seq), and return every frame the device sent, as it sent it. A
        request left unanswered (lost or damaged on the line) is sent again as one of its
        `resends` spares, which the ServerApp sealed beforehand: the bridge cannot seal.
        Stops at a NACK or a silent device (the ServerApp reads why in what came back); then,
        with `until_type`, keeps reading until a frame of that type arrives or `deadline_s`
        passes. Only frame headers are read here: sealed payloads stay sealed."""
        frames = [unb64(text) for text in req["frames"]]
        resends = min(max(int(req.get("resends", 0)), 0), MAX_RESENDS)
        spares = [unb64(text) for text in req.get("spares", [])]
        if len(frames) > MAX_RELAY_FRAMES:
            raise BridgeError(f"{len(frames)} frames in one relay, at most {MAX_RELAY_FRAMES}")
        if len(spares) != len(frames) * resends:
            raise BridgeError(f"{len(spares)} spare frames for {len(frames)} × {resends} resends")
        try:
            headers = [decode_frame(wire) for wire in frames + spares]
        except FrameError as exc:
            raise BridgeError(f"a relayed frame does not decode: {exc}") from exc
        tries = [
            [(frames[i], headers[i])]
            + [(spares[j], headers[len(frames) + j]) for j in range(i * resends, (i + 1) * resends)]
            for i in range(len(frames))
        ]
        reply_timeout = min(float(req.get("reply_timeout_s", self.link_timeout)), MAX_RELAY_WAIT_S)
        wait_s = min(float(req.get("deadline_s", 0.0)), MAX_RELAY_WAIT_S)
        until = int(req.get("until_type", -1))
        polls = [unb64(text) for text in req.get("polls", [])][:MAX_RELAY_FRAMES]
        poll_every = max(float(req.get("poll_every_s", 1.0)), 0.1)
        if self.on_request is not None:
            self.on_request("relay", {"frames": len(frames), "until_type": until})
        sent: list[bytes] = []
        try:
            client = self._device()
            got = self._relay_frames(client, tries, reply_timeout, sent)
            if until >= 0 and not any(f.type == until for f in got):
                got += self._wait_for(client, until, wait_s, polls, poll_every, sent)
        except (LinkError, OSError) as exc:
            self._close_client()
            return {"op": "relay", "error": f"port_gone: {exc}", "frames": []}
        self._tap(sent, got)
        if self.on_request is not None:
            self.on_request("relayed", {"frames_back": len(got), "types": [f.type for f in got]})
        return {
            "op": "relay",
            "device_id": client.device_id,
            "url": self.url,
            "error": "",
            "frames": [b64(encode_frame(f)) for f in got],
        }

    def _wait_for(
        self,
        client: DeviceClient,
        until: int,
        wait_s: float,
        polls: list[bytes],
        poll_every: float,
        sent: list[bytes],
    ) -> list[Frame]:
        """Read until a frame of type `until` or `wait_s`; every `poll_every` s write the next
        of the ServerApp's poll frames (sealed there: an unsolicited answer may be lost)."""
        deadline = time.monotonic() + wait_s
        got: list[Frame] = []
        pending = list(polls)
        while time.monotonic() < deadline:
            window = min(deadline, time.monotonic() + poll_every)
            got += self._read_frames(client, lambda f: f.type == until, window)
            if got and got[-1].type == until:
                break
            if pending and time.monotonic() < deadline:
                poll = pending.pop(0)
                client.transport.write(poll)
                sent.append(poll)
        return got

    def _tap(self, sent: list[bytes], got: list[Frame]) -> None:
        """One JSON line per frame: direction and wire bytes (hex), exactly as relayed."""
        if self.tap is None:
            return
        lines = [{"to": "device", "wire": wire.hex()} for wire in sent]
        lines += [{"to": "server", "wire": encode_frame(f).hex()} for f in got]
        with open(self.tap, "a") as out:
            out.writelines(json.dumps(line) + "\n" for line in lines)

    def _relay_frames(
        self,
        client: DeviceClient,
        tries: list[list[tuple[bytes, Frame]]],
        timeout: float,
        sent: list[bytes],
    ) -> list[Frame]:
        """Each request in turn: its frame, then, while the device gives no answer (a frame or
        its reply lost on the line), its spares. Stops at a request nothing answered or at a
        NACK (the ServerApp reads why)."""
        got: list[Frame] = []
        for attempts in tries:
            seqs: set[int] = set()

            def answers(frame: Frame, seqs: set[int] = seqs) -> bool:
                return frame.seq in seqs and bool(frame.flags & FLAG_REPLY)

            answer = None
            for wire, header in attempts:
                client.transport.write(wire)
                sent.append(wire)
                seqs.add(header.seq)
                replies = self._await_answer(client, answers, time.monotonic() + timeout)
                got += replies
                if replies and answers(replies[-1]):
                    answer = replies[-1]
                    break
            if answer is None or answer.type == MsgType.NACK:
                break
        return got

    def _await_answer(
        self, client: DeviceClient, answers: Callable[[Frame], bool], deadline: float
    ) -> list[Frame]:
        """Frames until an answer or the deadline; a NACK for a frame the device could not read
        (ack_seq 0: damaged on the line) cuts the wait to DAMAGE_GRACE, as DeviceClient does:
        its answer, if any, would come right behind it."""
        got: list[Frame] = []
        while True:
            frames = self._read_frames(client, lambda f: answers(f) or _damaged(f), deadline)
            got += frames
            if not frames or answers(frames[-1]) or not _damaged(frames[-1]):
                return got
            deadline = min(deadline, time.monotonic() + DAMAGE_GRACE)

    def _read_frames(
        self, client: DeviceClient, done: Callable[[Frame], bool], deadline: float
    ) -> list[Frame]:
        """Frames from the device until one satisfies `done` (included) or the deadline. Frames
        that came in the same read after that one are kept for the next call (an unsolicited
        UPDATE_READY right behind the ACK of TRAIN, say), as DeviceClient keeps them."""
        got: list[Frame] = []
        while True:
            while self._pending:
                frame = self._pending.pop(0)
                got.append(frame)
                if frame.device_id != BROADCAST_DEVICE and client.device_id == BROADCAST_DEVICE:
                    client.device_id = frame.device_id
                if done(frame):
                    return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return got
            data = client.transport.read(min(remaining, 0.2))
            if data:
                self._pending.extend(self._decoder.feed(data))
