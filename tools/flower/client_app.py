"""The ClientApp of a gateway: forwards one board's part of a round to its bridge.

Flower runs this in a fresh subprocess per message, so it holds nothing: it reads the bridge's
socket path from the SuperNode's node config (`bridge=PATH`, set by `invoke gateway`), sends
the global head and the TRAIN parameters, and returns what the device produced, byte for byte.
It imports nothing heavy (no TensorFlow): its start-up is on every round's critical path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from tools.flower.bridge import BridgeError, b64, request, unb64

app = ClientApp()


def _bridge(context: Context) -> str:
    path = context.node_config.get("bridge")
    if not path:
        raise BridgeError("node config has no bridge=PATH: start SuperNodes with `invoke gateway`")
    return str(path)


@app.query()
def board(message: Message, context: Context) -> Message:
    """HELLO through the bridge: which board this SuperNode serves."""
    try:
        reply = request(_bridge(context), {"op": "info"}, timeout=30.0)
        record = {"device_id": int(reply["device_id"]), "url": str(reply["url"]), "error": ""}
        record["info"] = unb64(reply["info"])
    except BridgeError as exc:
        record = {"device_id": -1, "url": "", "error": str(exc), "info": b""}
    return Message(RecordDict({"board": ConfigRecord(record)}), reply_to=message)


@app.train()
def train(message: Message, context: Context) -> Message:
    """Head + TRAIN to the board, its update (opaque bytes) back."""
    job = message.content["round"]
    deadline_s = float(job["deadline_s"])
    req = {
        "op": "round",
        "head": _text(job["head"]),
        "rows": int(job["rows"]),
        "cols": int(job["cols"]),
        "head_version": int(job["head_version"]),
        "train": _text(job["train"]),
        "deadline_s": deadline_s,
    }
    record: dict = {
        "device_id": -1,
        "error": "",
        "late": False,
        "info": b"",
        "ready": b"",
        "data": b"",
    }
    try:
        reply = request(_bridge(context), req, timeout=deadline_s + 30.0)
        record.update(
            device_id=int(reply.get("device_id", -1)),
            error=str(reply.get("error", "")),
            late=bool(reply.get("late", False)),
            info=unb64(reply.get("info", "")),
            ready=unb64(reply.get("ready", "")),
            data=unb64(reply.get("data", "")),
        )
    except BridgeError as exc:
        record["error"] = f"bridge: {exc}"
    return Message(RecordDict({"update": ConfigRecord(record)}), reply_to=message)


def _text(value: object) -> str:
    return b64(bytes(value))  # type: ignore[arg-type]


@app.query("relay")
def relay(message: Message, context: Context) -> Message:
    """Frames the ServerApp built (sealed for the board) to the board, its frames back, unopened
    (tools/flower/relay.py): this process and the bridge hold no key."""
    job = message.content["relay"]
    record: dict = {"device_id": -1, "error": "", "frames": []}
    try:
        req = bridge_relay_request(job)
        reply = request(_bridge(context), req, timeout=float(job["deadline_s"]) + 60.0)
        record.update(
            device_id=int(reply.get("device_id", -1)),
            error=str(reply.get("error", "")),
            frames=[unb64(text) for text in reply.get("frames", [])],
        )
    except BridgeError as exc:
        record["error"] = f"bridge: {exc}"
    return Message(RecordDict({"relayed": ConfigRecord(record)}), reply_to=message)


def bridge_relay_request(job: Mapping[str, Any]) -> dict[str, Any]:
    """The bridge's `relay` request for the ServerApp's relay record (relay.relay_record)."""
    return {
        "op": "relay",
        "frames": [b64(bytes(f)) for f in job["frames"]],
        "reply_timeout_s": float(job["reply_timeout_s"]),
        "until_type": int(job["until_type"]),
        "deadline_s": float(job["deadline_s"]),
        "polls": [b64(bytes(f)) for f in job["polls"]],
        "poll_every_s": float(job["poll_every_s"]),
        "spares": [b64(bytes(f)) for f in job["spares"]],
        "resends": int(job["resends"]),
    }
