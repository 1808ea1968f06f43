"""The long-lived owner of one board's serial port on a gateway.

Flower starts a fresh `flwr-clientapp` subprocess for every message, so no ClientApp can hold
a serial port (or a DeviceClient's sequence numbers and pending UPDATE_READYs) across
messages. A `Bridge` does: it opens the port once, serves requests one at a time on a Unix
socket (mode 0600, reachable only by the gateway's own user) and runs the device side of a
round with the aggregator's own `device_round`. The ClientApp is a thin forwarder
(tools/flower/client_app.py) that finds the socket in its node config (`bridge=PATH`).

Wire format on the socket: one request per connection, a 4-byte big-endian length followed
by a JSON object; the reply is framed the same way. Bytes travel as base64. The bridge never
decodes an update: it returns the device's bytes unchanged (noised, quantized and — once the
device does secure aggregation — masked and encrypted by the device itself).
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
from tools.link.client import DeviceClient
from tools.link.errors import LinkError

_LENGTH = struct.Struct(">I")
MAX_REQUEST = 1 << 20  # a head of 64×64 floats is 16 KiB; anything near 1 MiB is hostile


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
    _client: DeviceClient | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

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
            return {"op": "failed", "error": f"unknown op {req.get('op')!r}"}

    def _device(self) -> DeviceClient:
        if self._client is None:
            self._client = DeviceClient.open(
                self.url, timeout=self.link_timeout, retries=self.link_retries
            )
        return self._client

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

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
